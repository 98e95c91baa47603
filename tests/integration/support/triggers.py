"""Triggered orders (stop loss, take profit, pending): a trader at a pinned price, their trades,
ended orders and audit events."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.integration.support.orders import Oms
from tests.integration.support.orders import Trader
from tests.integration.support.orders import live_quote
from tests.integration.support.orders import new_group
from tests.integration.support.orders import new_trader
from tests.integration.support.waiting import eventually
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_service_pb2

S = trading_pb2


Pin = Callable[[str, str], None]


def trader_at(oms: Oms, pin: Pin, bid: str, ask: str) -> Trader:
    """A funded trader in a market-execution group without markup, EURUSD pinned at bid/ask."""
    pin(bid, ask)
    trader = new_trader(oms, new_group(oms, types_pb2.EXECUTION_MODE_MARKET))
    await_price(oms, trader, bid, ask)
    return trader


def await_price(oms: Oms, trader: Trader, bid: str, ask: str) -> None:
    eventually(
        lambda: (q := live_quote(oms, trader)).bid == bid and q.ask == ask,
        15,
        f"the group's EURUSD at {bid}/{ask}",
    )
    time.sleep(0.3)  # the OMS reads the same price from NATS


def get_order(oms: Oms, trader: Trader, order_id: str) -> oms_pb2.Order:
    return oms.orders.GetOrder(
        order_service_pb2.GetOrderRequest(account_id=trader.account_id, order_id=order_id),
        metadata=trader.md,
    ).order


def ended(oms: Oms, trader: Trader, order_id: str) -> oms_pb2.Order:
    def probe() -> oms_pb2.Order | None:
        order = get_order(oms, trader, order_id)
        done = order.status in (S.ORDER_STATUS_FILLED, S.ORDER_STATUS_REJECTED)
        return order if done else None

    return eventually(probe, 15, f"order {order_id} filled or rejected")


def audit_events(oms: Oms, order_id: str) -> list[tuple[str, str]]:
    return [
        (str(e), str(a))
        for e, a in oms.rows(
            "SELECT event, actor_id FROM oms.audit_records WHERE entity_id = %s ORDER BY sequence",
            order_id,
        )
    ]

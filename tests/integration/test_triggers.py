"""The trigger engine against the real stack (ADR 0007 "Working orders, SL/TP"): working limit,
stop and stop-limit orders and positions' stop-loss / take-profit fire from the price stream.

EURUSD is pinned at both LP simulators (the same quote, so the aggregated price is the pin) and
each test's trader is in a group of its own with no markup, so every trigger and fill price is
known exactly. Traders and orders come from test_orders.py's helpers.
"""

from __future__ import annotations

import time
from decimal import Decimal

from tests.integration.support.orders import Oms
from tests.integration.support.orders import Trader
from tests.integration.support.orders import place
from tests.integration.support.orders import place_filled
from tests.integration.support.orders import trades_of
from tests.integration.support.triggers import Pin
from tests.integration.support.triggers import S
from tests.integration.support.triggers import audit_events
from tests.integration.support.triggers import await_price
from tests.integration.support.triggers import ended
from tests.integration.support.triggers import get_order
from tests.integration.support.triggers import trader_at
from tests.integration.support.waiting import eventually
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.oms.v1 import position_service_pb2

D = Decimal


def test_a_buy_limit_below_the_market_fills_when_the_ask_drops_to_it(oms: Oms, pinned: Pin) -> None:
    trader = trader_at(oms, pinned, "1.10000", "1.10010")
    order = place(oms, trader, type=S.ORDER_TYPE_LIMIT, price="1.09950")
    assert order.status == S.ORDER_STATUS_WORKING
    pinned("1.09960", "1.09970")  # nearer, not there
    await_price(oms, trader, "1.09960", "1.09970")
    assert get_order(oms, trader, order.id).status == S.ORDER_STATUS_WORKING
    pinned("1.09930", "1.09940")
    filled = ended(oms, trader, order.id)
    assert filled.status == S.ORDER_STATUS_FILLED, filled.status_message
    assert filled.average_fill_price == "1.09940"  # the ask, better than the limit
    (trade,) = trades_of(oms, trader, order.id)
    assert (trade.price, trade.quantity) == ("1.09940", "0.10")
    events = audit_events(oms, order.id)
    assert [e for e, _ in events] == ["CREATED", "SUBMITTED", "ACCEPTED", "ACTIVATED", "FILLED"]
    assert events[-1][1] == "oms-triggers"


def test_a_sell_stop_triggers_when_the_bid_falls_and_fills_at_the_bid(
    oms: Oms, pinned: Pin
) -> None:
    trader = trader_at(oms, pinned, "1.10000", "1.10010")
    order = place(
        oms, trader, side=types_pb2.SIDE_SELL, type=S.ORDER_TYPE_STOP, stop_price="1.09950"
    )
    assert order.status == S.ORDER_STATUS_WORKING
    pinned("1.09900", "1.09910")
    filled = ended(oms, trader, order.id)
    assert filled.status == S.ORDER_STATUS_FILLED, filled.status_message
    assert filled.average_fill_price == "1.09900"
    assert filled.HasField("trigger_time")
    assert [e for e, _ in audit_events(oms, order.id)] == [
        "CREATED",
        "SUBMITTED",
        "ACCEPTED",
        "ACTIVATED",
        "TRIGGERED",
        "FILLED",
    ]


def test_a_stop_limit_triggers_then_fills_only_at_its_limit(oms: Oms, pinned: Pin) -> None:
    trader = trader_at(oms, pinned, "1.10000", "1.10010")
    order = place(oms, trader, type=S.ORDER_TYPE_STOP_LIMIT, stop_price="1.10050", price="1.10070")
    assert order.status == S.ORDER_STATUS_WORKING
    pinned("1.10070", "1.10080")  # the ask passes the stop, but is above the limit

    def probe() -> oms_pb2.Order | None:
        found = get_order(oms, trader, order.id)
        return found if found.HasField("trigger_time") else None

    triggered = eventually(probe, 15, "the stop-limit triggered")
    assert triggered.status == S.ORDER_STATUS_WORKING
    time.sleep(1.0)
    assert get_order(oms, trader, order.id).status == S.ORDER_STATUS_WORKING
    pinned("1.10055", "1.10065")
    filled = ended(oms, trader, order.id)
    assert filled.status == S.ORDER_STATUS_FILLED, filled.status_message
    assert filled.average_fill_price == "1.10065"
    assert [e for e, _ in audit_events(oms, order.id)][-2:] == ["TRIGGERED", "FILLED"]


def _closed_by(oms: Oms, trader: Trader, position_id: str) -> oms_pb2.Position:
    def probe() -> oms_pb2.Position | None:
        position = oms.positions.GetPosition(
            position_service_pb2.GetPositionRequest(
                account_id=trader.account_id, position_id=position_id
            ),
            metadata=trader.md,
        ).position
        return position if position.status == oms_pb2.POSITION_STATUS_CLOSED else None

    return eventually(probe, 15, f"position {position_id} closed")


def _closing_order(oms: Oms, trader: Trader, client_order_id: str) -> oms_pb2.Order:
    (order,) = [
        o
        for o in oms.orders.ListOrders(
            order_service_pb2.ListOrdersRequest(account_id=trader.account_id),
            metadata=trader.md,
        ).orders
        if o.client_order_id == client_order_id
    ]
    return order


def test_a_long_positions_stop_loss_closes_it_when_the_bid_falls(oms: Oms, pinned: Pin) -> None:
    trader = trader_at(oms, pinned, "1.10000", "1.10010")
    opened = place_filled(oms, trader, stop_loss="1.09900")
    (trade,) = trades_of(oms, trader, opened.id)
    assert trade.price == "1.10010"
    pinned("1.09890", "1.09900")
    position = _closed_by(oms, trader, trade.position_id)
    closing = _closing_order(oms, trader, f"tm:sl:{trade.position_id}:1")
    assert closing.origin == S.ORDER_ORIGIN_STOP_LOSS
    assert closing.status == S.ORDER_STATUS_FILLED
    assert closing.average_fill_price == "1.09890"  # a long closes at the bid
    (close_trade,) = trades_of(oms, trader, closing.id)
    # 0.10 x 100000 x (1.09890 - 1.10010) USD
    assert close_trade.realized_pnl == "-12.00"
    assert close_trade.origin == S.ORDER_ORIGIN_STOP_LOSS
    assert D(position.realized_pnl) == D("-12.00")


def test_a_short_positions_take_profit_closes_it_when_the_ask_falls(oms: Oms, pinned: Pin) -> None:
    trader = trader_at(oms, pinned, "1.10000", "1.10010")
    opened = place_filled(oms, trader, side=types_pb2.SIDE_SELL, take_profit="1.09900")
    (trade,) = trades_of(oms, trader, opened.id)
    assert trade.price == "1.10000"
    pinned("1.09880", "1.09890")
    position = _closed_by(oms, trader, trade.position_id)
    closing = _closing_order(oms, trader, f"tm:tp:{trade.position_id}:1")
    assert closing.origin == S.ORDER_ORIGIN_TAKE_PROFIT
    assert closing.average_fill_price == "1.09890"  # a short closes at the ask
    (close_trade,) = trades_of(oms, trader, closing.id)
    assert close_trade.realized_pnl == "11.00"  # 0.10 x 100000 x (1.10000 - 1.09890)
    assert D(position.realized_pnl) == D("11.00")


def test_a_triggered_stop_that_fails_the_risk_check_is_rejected(oms: Oms, pinned: Pin) -> None:
    trader = trader_at(oms, pinned, "1.10000", "1.10010")
    stop = place(oms, trader, type=S.ORDER_TYPE_STOP, stop_price="1.10050", quantity="1.00")
    assert stop.status == S.ORDER_STATUS_WORKING  # resting orders hold no margin
    # 9 lots long take 9 x 1100.10 = 9900.90 of the 10000.00 deposit
    place_filled(oms, trader, quantity="9.00")
    pinned("1.10100", "1.10110")
    # free margin about 10810 - 9909.90 = 900.10 < 1100.50 for one more lot at the stop price
    rejected = ended(oms, trader, stop.id)
    assert rejected.status == S.ORDER_STATUS_REJECTED
    assert rejected.status_reason == ErrorReason.ERROR_REASON_INSUFFICIENT_MARGIN
    assert rejected.HasField("trigger_time")
    assert [e for e, _ in audit_events(oms, stop.id)][-2:] == ["TRIGGERED", "REJECTED"]
    assert trades_of(oms, trader, stop.id) == []

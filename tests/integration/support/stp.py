"""Straight-through processing (STP) against the LP simulators: the pro-stp trader, pinning the
LPs' prices, the hedge orders and their reports, and an order's end state."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

from simulators.lp.control import ControlClient
from stack.paths import StackPaths
from tests.integration.support.orders import Oms
from tests.integration.support.orders import Trader
from tests.integration.support.orders import new_trader
from tests.integration.support.waiting import eventually
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.oms.v1 import position_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc

S = trading_pb2


PRO_STP = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://tradingmesh.local/group/pro-stp"))


ALPHA = ("1.10000", "1.10010")  # the best bid and the best ask


BETA = ("1.09990", "1.10030")


SOH = b"\x01"


def pin_both(
    lps: dict[str, ControlClient],
    alpha: tuple[str, str] = ALPHA,
    beta: tuple[str, str] = BETA,
    size: str | None = None,
) -> None:
    """Pins EURUSD at lp-alpha and lp-beta (by default lp-alpha better on both sides), with
    `size` lots quoted on each side (None: the simulator's usual 50)."""
    lps["lp-alpha"].pin("EURUSD", *alpha, size=size)
    lps["lp-beta"].pin("EURUSD", *beta, size=size)


def stp_trader(oms: Oms) -> Trader:
    return new_trader(oms, PRO_STP)


def await_pinned_price(oms: Oms, trader: Trader) -> None:
    """The pro-stp group's price is the raw best (no markup) once pricing has the pins."""
    await_group_price(oms, trader, *ALPHA)


def await_group_price(oms: Oms, trader: Trader, bid: str, ask: str) -> None:
    """The trader's group's EURUSD is bid/ask (and the OMS has had time to read it)."""

    def probe() -> bool:
        with oms.service("pricing") as channel:
            quote = (
                pricing_service_pb2_grpc.PricingServiceStub(channel)
                .GetQuote(
                    pricing_service_pb2.GetQuoteRequest(
                        symbol="EURUSD", account_id=trader.account_id
                    ),
                    metadata=trader.md,
                    timeout=5,
                )
                .quote
            )
        priced = (Decimal(quote.bid), Decimal(quote.ask)) == (Decimal(bid), Decimal(ask))
        return priced and not quote.stale

    eventually(probe, 20, f"the group's EURUSD at {bid}/{ask}")
    time.sleep(0.5)  # the OMS reads the same price from NATS


def get_order(oms: Oms, trader: Trader, order_id: str) -> oms_pb2.Order:
    return oms.orders.GetOrder(
        order_service_pb2.GetOrderRequest(account_id=trader.account_id, order_id=order_id),
        metadata=trader.md,
        timeout=10,
    ).order


def ended(oms: Oms, trader: Trader, order_id: str) -> oms_pb2.Order:
    terminal = {S.ORDER_STATUS_FILLED, S.ORDER_STATUS_CANCELLED, S.ORDER_STATUS_REJECTED}

    def probe() -> oms_pb2.Order | None:
        order = get_order(oms, trader, order_id)
        return order if order.status in terminal else None

    result: oms_pb2.Order = eventually(probe, 20, f"order {order_id} ended")
    return result


def trades(oms: Oms, trader: Trader, order_id: str) -> list[oms_pb2.Trade]:
    return list(
        oms.orders.ListTrades(
            order_service_pb2.ListTradesRequest(account_id=trader.account_id, order_id=order_id),
            metadata=trader.md,
            timeout=10,
        ).trades
    )


def hedges_of(oms: Oms, order_ids: list[str]) -> list[dict[str, Any]]:
    columns = (
        "id::text, symbol, side, quantity, gross_buy_quantity, gross_sell_quantity,"
        " filled_quantity, average_price, liquidity_provider_id, status, status_reason"
    )
    rows = oms.rows(
        f"SELECT {columns} FROM oms.hedge_orders WHERE id IN (SELECT hedge_order_id"
        " FROM oms.hedge_order_orders WHERE order_id = ANY(%s::uuid[])) ORDER BY created_at",
        order_ids,
    )
    names = [c.strip().split("::")[0] for c in columns.split(",")]
    return [dict(zip(names, row, strict=True)) for row in rows]


def lp_reports(oms: Oms, lp: str) -> list[dict[int, str]]:
    """The ExecutionReports the LP simulator sent the OMS's order session, from its FIX message
    store (what the LP itself saw and did)."""
    store = StackPaths.for_name(oms.running.config.name).lp_dir(lp) / "fix-store"
    body = store / f"FIX.4.4-{lp.upper()}-TRADINGMESH-OMS.body"
    reports = []
    for message in body.read_bytes().split(b"8=FIX.4.4" + SOH)[1:]:
        fields = {
            int(tag): value.decode()
            for tag, _, value in (f.partition(b"=") for f in message.split(SOH) if b"=" in f)
        }
        if fields.get(35) == "8":
            reports.append(fields)
    return reports


def lp_order_reports(oms: Oms, hedge_id: str, lp: str = "lp-alpha") -> list[dict[int, str]]:
    return [r for r in lp_reports(oms, lp) if r.get(11) == hedge_id]


S = trading_pb2


D = Decimal


def stored_reports(oms: Oms, hedge_id: str) -> list[dict[str, Any]]:
    rows = oms.rows(
        "SELECT report_key, exec_id, report->>'kind', applied_at IS NOT NULL"
        " FROM oms.lp_execution_reports WHERE cl_ord_id = %s ORDER BY id",
        hedge_id,
    )
    return [{"key": r[0], "exec_id": r[1], "kind": r[2], "applied": r[3]} for r in rows]


def hedge_fills(oms: Oms, hedge_id: str) -> list[tuple[str, Decimal, Decimal]]:
    return [
        (str(r[0]), D(r[1]), D(r[2]))
        for r in oms.rows(
            "SELECT lp_execution_id, quantity, price FROM oms.hedge_fills"
            " WHERE hedge_order_id = %s ORDER BY fill_time",
            hedge_id,
        )
    ]


def sent_hedge(oms: Oms, order_id: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = hedges_of(oms, [order_id])
        return found[-1] if found and found[-1]["status"] == "SENT" else None

    result: dict[str, Any] = eventually(probe, 20, "the hedge order SENT to the provider")
    return result


def assert_filled_once(
    oms: Oms, trader: Trader, order_id: str, quantity: str, price: str
) -> dict[str, Any]:
    """The client order FILLED with one trade and one position, from one filled hedge."""
    order = ended(oms, trader, order_id)
    assert order.status == S.ORDER_STATUS_FILLED, (order.status_reason, order.status_message)
    assert (D(order.filled_quantity), D(order.average_fill_price)) == (D(quantity), D(price))
    (trade,) = trades(oms, trader, order_id)
    (hedge,) = hedges_of(oms, [order_id])
    assert trade.hedge_order_id == hedge["id"]
    assert (hedge["status"], hedge["filled_quantity"]) == ("FILLED", D(quantity))
    positions = [
        p
        for p in oms.positions.ListPositions(
            position_service_pb2.ListPositionsRequest(account_id=trader.account_id),
            metadata=trader.md,
            timeout=10,
        ).positions
        if p.id == trade.position_id
    ]
    assert [(D(p.quantity), D(p.open_price)) for p in positions] == [(D(quantity), D(price))]
    audit = [
        str(r[0])
        for r in oms.rows(
            "SELECT event FROM oms.audit_records WHERE entity_id = %s ORDER BY sequence", order_id
        )
    ]
    assert audit.count("FILLED") == 1, audit
    return hedge

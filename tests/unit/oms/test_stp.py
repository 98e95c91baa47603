"""STP execution's own rules (ADR 0007): windows, the provider a hedge goes to, the markups and
raw prices taken from a group's price, and what each client order's allocation does to it."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from services.oms.domain.netting import HedgeResult
from services.oms.domain.netting import RawPrices
from services.oms.domain.netting import WindowTimeInForce
from services.oms.domain.netting import allocate
from services.oms.domain.positions import Side
from services.oms.domain.state import OrderEvent
from services.oms.domain.state import OrderStatus
from services.oms.entry.execution import LiveQuote
from services.oms.model import ExecutionMode
from services.oms.model import OrderRow
from services.oms.model import OrderType
from services.oms.model import TimeInForce
from services.oms.stp.config import StpConfig
from services.oms.stp.hedges import HedgeRow
from services.oms.stp.hedges import HedgeStatus
from services.oms.stp.rules import Settlement
from services.oms.stp.rules import WindowBook
from services.oms.stp.rules import markups_of
from services.oms.stp.rules import raw_prices_of
from services.oms.stp.rules import rest_event
from services.oms.stp.rules import route
from services.oms.stp.rules import settlements_of
from services.oms.stp.rules import window_order
from services.platform.settings import SettingsError
from tests.unit.oms import builders
from tradingmesh.common.v1.errors_pb2 import ErrorReason

D = Decimal
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
_R = ErrorReason


def quote(**changes: object) -> LiveQuote:
    values: dict[str, object] = {
        "group_id": "g1",
        "symbol": "EURUSD",
        "bid": D("1.09995"),
        "ask": D("1.10020"),
        "time": NOW,
        "version": 1,
        "bid_lp": "lp-beta",
        "ask_lp": "lp-alpha",
        "raw_bid": D("1.10000"),
        "raw_ask": D("1.10010"),
    }
    values.update(changes)
    return LiveQuote(**values)  # type: ignore[arg-type]


def client_order(
    order_id: str,
    side: Side,
    quantity: str,
    tif: TimeInForce = TimeInForce.IOC,
    filled: str = "0",
) -> OrderRow:
    return builders.order(
        id=order_id,
        account_id=f"acc-{order_id}",
        client_order_id=f"c-{order_id}",
        side=side,
        type=OrderType.MARKET,
        time_in_force=tif,
        quantity=D(quantity),
        filled_quantity=D(filled),
        created_at=NOW,
        updated_at=NOW,
        version=4,
        price=None,
        execution_mode=ExecutionMode.STP,
    )


def hedge(status: HedgeStatus, reason: str = "UNSPECIFIED", message: str = "") -> HedgeRow:
    return builders.hedge(
        status,
        id="h1",
        version=3,
        status_reason=reason,
        status_message=message,
        raw_bid=None,
        raw_ask=None,
    )


# -- windows ---------------------------------------------------------------------------------------


def test_the_first_order_of_an_instrument_opens_its_window_and_later_ones_join_it() -> None:
    book = WindowBook()

    assert book.add("EURUSD", "a", "acc-1") is True
    assert book.add("EURUSD", "b", "acc-2") is False
    assert book.add("GBPUSD", "c", "acc-1") is True

    window = book.close("EURUSD")
    assert window is not None
    assert window.order_ids == ["a", "b"]
    assert window.account_ids == {"a": "acc-1", "b": "acc-2"}
    assert len(book) == 1


def test_an_order_after_its_window_closed_opens_the_next_window() -> None:
    book = WindowBook()
    book.add("EURUSD", "a", "acc-1")
    book.close("EURUSD")

    assert book.add("EURUSD", "b", "acc-1") is True
    assert book.close("EURUSD") is not None
    assert book.close("EURUSD") is None


def test_an_order_taken_twice_is_in_its_window_once() -> None:
    book = WindowBook()
    book.add("EURUSD", "a", "acc-1")

    book.add("EURUSD", "a", "acc-1")

    window = book.close("EURUSD")
    assert window is not None
    assert window.order_ids == ["a"]


# -- prices and routes -----------------------------------------------------------------------------


def test_a_groups_markups_are_the_distance_from_the_raw_prices_behind_its_price() -> None:
    assert markups_of(quote()) == (D("0.00005"), D("0.00010"))
    assert raw_prices_of(quote()) == RawPrices(D("1.10000"), D("1.10010"))


def test_a_price_without_provenance_counts_as_raw_with_no_markup() -> None:
    bare = quote(raw_bid=None, raw_ask=None)

    assert markups_of(bare) == (D(0), D(0))
    assert raw_prices_of(bare) == RawPrices(D("1.09995"), D("1.10020"))


@pytest.mark.parametrize(
    ("side", "logged_on", "expected"),
    [
        (Side.BUY, ["lp-alpha", "lp-beta"], "lp-alpha"),  # the best ask's provider
        (Side.SELL, ["lp-alpha", "lp-beta"], "lp-beta"),  # the best bid's provider
        (Side.BUY, ["lp-beta"], "lp-beta"),  # its session is down: any other
        (Side.BUY, [], "lp-alpha"),  # none up: the best price's (the hedge is refused)
    ],
)
def test_a_hedge_goes_to_the_provider_of_the_best_price_on_its_side(
    side: Side, logged_on: list[str], expected: str
) -> None:
    assert route(side, quote(), logged_on, ["lp-alpha", "lp-beta"]) == expected


def test_without_any_provenance_or_session_the_first_configured_provider_is_named() -> None:
    assert route(Side.BUY, quote(ask_lp=""), [], ["lp-beta"]) == "lp-beta"


@pytest.mark.parametrize(
    ("tif", "expected"),
    [
        (TimeInForce.IOC, WindowTimeInForce.IOC),
        (TimeInForce.FOK, WindowTimeInForce.FOK),
        (TimeInForce.GTC, WindowTimeInForce.IOC),  # a market order cannot rest
        (TimeInForce.DAY, WindowTimeInForce.IOC),
    ],
)
def test_a_market_order_keeps_a_partial_fill_unless_it_is_fill_or_kill(
    tif: TimeInForce, expected: WindowTimeInForce
) -> None:
    assert window_order(client_order("a", Side.BUY, "1", tif), D(0), D(0)).time_in_force is expected


def test_a_window_order_needs_what_is_not_filled_yet() -> None:
    order = window_order(client_order("a", Side.SELL, "1.00", filled="0.25"), D("1"), D("2"))

    assert (order.quantity, order.bid_markup, order.ask_markup) == (D("0.75"), D("1"), D("2"))


# -- settlements -----------------------------------------------------------------------------------


def test_three_clients_hedged_in_full_each_fill_at_their_own_price() -> None:
    orders = [
        window_order(client_order("a", Side.BUY, "1.00"), D("0.00005"), D("0.00005")),
        window_order(client_order("b", Side.BUY, "0.50"), D(0), D(0)),
        window_order(client_order("c", Side.SELL, "0.30"), D("0.00002"), D("0.00002")),
    ]
    allocations = allocate(
        orders,
        HedgeResult(D("1.20"), D("1.100125")),
        RawPrices(D("1.10000"), D("1.10010")),
        5,
    )

    assert settlements_of(allocations, orders, hedge(HedgeStatus.FILLED)) == [
        Settlement("a", D("1.00"), D("1.10018")),  # the hedge's average plus 5 points, up
        Settlement("b", D("0.50"), D("1.10013")),
        Settlement("c", D("0.30"), D("1.09998")),  # the raw bid less its markup
    ]


def test_an_ioc_order_keeps_its_part_and_the_rest_is_cancelled_for_no_liquidity() -> None:
    orders = [window_order(client_order("a", Side.BUY, "1.50"), D(0), D(0))]
    allocations = allocate(
        orders, HedgeResult(D("1.00"), D("1.10010")), RawPrices(D("1.1"), D("1.1001")), 5
    )

    (settlement,) = settlements_of(allocations, orders, hedge(HedgeStatus.CANCELLED))

    assert (settlement.quantity, settlement.price) == (D("1.00"), D("1.10010"))
    assert (settlement.rest, settlement.reason) == (
        OrderEvent.CANCELLED,
        _R.ERROR_REASON_NO_LIQUIDITY,
    )
    assert settlement.message.startswith("0.5 of 1.5 lots not filled")


def test_a_fok_order_not_filled_in_full_is_rejected_for_no_liquidity() -> None:
    orders = [window_order(client_order("a", Side.BUY, "1.50", TimeInForce.FOK), D(0), D(0))]
    allocations = allocate(
        orders, HedgeResult(D("1.00"), D("1.10010")), RawPrices(D("1.1"), D("1.1001")), 5
    )

    (settlement,) = settlements_of(allocations, orders, hedge(HedgeStatus.CANCELLED))

    assert (settlement.quantity, settlement.price) == (D(0), None)
    assert (settlement.rest, settlement.reason) == (
        OrderEvent.REJECTED,
        _R.ERROR_REASON_NO_LIQUIDITY,
    )


def test_a_rejected_hedge_rejects_the_unfilled_orders_with_its_reason_and_fills_the_rest() -> None:
    orders = [
        window_order(client_order("a", Side.BUY, "1.00"), D(0), D(0)),
        window_order(client_order("b", Side.SELL, "0.40"), D(0), D(0)),
    ]
    refused = hedge(HedgeStatus.REJECTED, "LP_UNAVAILABLE", "no session to lp-alpha")
    allocations = allocate(orders, HedgeResult(D(0), None), RawPrices(D("1.1"), D("1.1001")), 5)

    first, second = settlements_of(allocations, orders, refused)

    # The buy gets the internalized 0.40 (the sell's), the rest is cancelled.
    assert (first.quantity, first.price, first.rest) == (
        D("0.40"),
        D("1.10010"),
        OrderEvent.CANCELLED,
    )
    assert (second.quantity, second.price, second.rest) == (D("0.40"), D("1.10000"), None)


def test_an_ioc_order_that_got_nothing_from_a_rejected_hedge_carries_the_hedges_reason() -> None:
    orders = [window_order(client_order("a", Side.SELL, "1.00"), D(0), D(0))]
    refused = hedge(HedgeStatus.REJECTED, "LP_REJECTED", "quantity above 50 lots")
    allocations = allocate(orders, HedgeResult(D(0), None), RawPrices(D("1.1"), D("1.1001")), 5)

    (settlement,) = settlements_of(allocations, orders, refused)

    assert (settlement.rest, settlement.reason, settlement.message) == (
        OrderEvent.REJECTED,
        _R.ERROR_REASON_LP_REJECTED,
        "quantity above 50 lots",
    )


def test_an_order_the_client_is_cancelling_is_cancelled_rather_than_rejected() -> None:
    assert rest_event(OrderStatus.PENDING_CANCEL, OrderEvent.REJECTED) is OrderEvent.CANCELLED
    assert rest_event(OrderStatus.WORKING, OrderEvent.REJECTED) is OrderEvent.REJECTED
    assert rest_event(OrderStatus.PARTIALLY_FILLED, OrderEvent.CANCELLED) is OrderEvent.CANCELLED


# -- configuration ---------------------------------------------------------------------------------


def test_the_configuration_reads_the_providers_the_window_and_the_store(tmp_path: Path) -> None:
    config = StpConfig.from_env(
        {
            "TM_OMS_LPS": "lp-alpha=127.0.0.1:17060,lp-beta=127.0.0.1:17061",
            "TM_OMS_STP_WINDOW_MS": "80",
            "TM_DATA_DIR": str(tmp_path),
        }
    )

    assert [lp.lp for lp in config.lps] == ["lp-alpha", "lp-beta"]
    assert config.window == timedelta(milliseconds=80)
    assert config.store_dir == tmp_path / "oms" / "fix"


def test_the_window_is_50_ms_unless_configured(tmp_path: Path) -> None:
    assert StpConfig.from_env({"TM_DATA_DIR": str(tmp_path)}).window == timedelta(milliseconds=50)


@pytest.mark.parametrize("value", ["0", "-5", "abc", "60001"])
def test_a_bad_window_stops_the_service(value: str) -> None:
    with pytest.raises(SettingsError, match="TM_OMS_"):
        StpConfig.from_env({"TM_OMS_STP_WINDOW_MS": value})

"""STP limit orders (ADR 0007 "Execution modes"): the raw limit a hedge goes to the provider at,
what the provider's fill gives the client, when an attempt hedges, waits or refuses, what the
rest does, and the FIX limit order that goes out."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal

import pytest

from services.oms.domain.netting import Allocation
from services.oms.domain.netting import AllocationOutcome
from services.oms.domain.netting import HedgeResult
from services.oms.domain.netting import WindowOrder
from services.oms.domain.netting import WindowTimeInForce
from services.oms.domain.netting import allocate_limit
from services.oms.domain.netting import client_price
from services.oms.domain.netting import limit_price
from services.oms.domain.netting import raw_limit
from services.oms.domain.positions import Side
from services.oms.domain.state import OrderEvent
from services.oms.entry.execution import LiveQuote
from services.oms.model import ExecutionMode
from services.oms.model import OrderRow
from services.oms.model import OrderType
from services.oms.model import TimeInForce
from services.oms.stp.lp_orders import HedgeRequest
from services.oms.stp.lp_orders import new_order_single
from services.oms.stp.rules import AwaitPrice
from services.oms.stp.rules import HedgeAt
from services.oms.stp.rules import Refuse
from services.oms.stp.rules import Settlement
from services.oms.stp.rules import Wait
from services.oms.stp.rules import is_stp_limit
from services.oms.stp.rules import limit_attempt
from services.oms.stp.rules import settlements_of
from services.oms.stp.rules import window_order
from services.platform.fix import get_field
from tests.unit.oms import builders
from tradingmesh.common.v1.errors_pb2 import ErrorReason

D = Decimal
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
IOC, FOK, REST = WindowTimeInForce.IOC, WindowTimeInForce.FOK, WindowTimeInForce.REST
FILLED, PARTIAL, NOT_FILLED = (
    AllocationOutcome.FILLED,
    AllocationOutcome.PARTIALLY_FILLED,
    AllocationOutcome.NOT_FILLED,
)
_R = ErrorReason


def limit_order(
    side: Side,
    limit: str,
    quantity: str = "1",
    tif: WindowTimeInForce = REST,
    *,
    bid_markup: str = "0.00002",
    ask_markup: str = "0.00003",
) -> WindowOrder:
    return WindowOrder("o1", side, D(quantity), tif, D(bid_markup), D(ask_markup), D(limit))


def client_order(
    side: Side = Side.BUY,
    price: str = "1.10030",
    tif: TimeInForce = TimeInForce.GTC,
    *,
    order_type: OrderType = OrderType.LIMIT,
    quantity: str = "1.00",
    filled: str = "0",
    mode: ExecutionMode = ExecutionMode.STP,
) -> OrderRow:
    return builders.order(
        id="o1",
        account_id="a1",
        side=side,
        type=order_type,
        time_in_force=tif,
        quantity=D(quantity),
        filled_quantity=D(filled),
        created_at=NOW,
        updated_at=NOW,
        price=D(price),
        execution_mode=mode,
    )


WAIT = timedelta(seconds=30)


def attempt(
    order: OrderRow, live: LiveQuote | None, *, at: datetime = NOW
) -> HedgeAt | Wait | AwaitPrice | Refuse:
    """`limit_attempt` at `at`, for an instrument of 5 digits, orders waiting `WAIT` for a
    live price."""
    return limit_attempt(order, live, 5, now=at, price_wait=WAIT)


def quote(bid: str, ask: str, *, markup_points: int = 5) -> LiveQuote:
    """A group price `markup_points` wider than the raw one (2 points off the bid, the rest
    onto the ask, as pricing splits it)."""
    point = D("0.00001")
    bid_points = markup_points // 2
    return LiveQuote(
        group_id="g1",
        symbol="EURUSD",
        bid=D(bid),
        ask=D(ask),
        time=NOW,
        version=1,
        bid_lp="lp-beta",
        ask_lp="lp-alpha",
        raw_bid=D(bid) + bid_points * point,
        raw_ask=D(ask) - (markup_points - bid_points) * point,
    )


# -- the raw limit and the client's price ----------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "limit", "bid_markup", "ask_markup", "raw"),
    [
        (Side.BUY, "1.10030", "0.00002", "0.00003", "1.10027"),  # less the ask markup
        (Side.SELL, "1.10030", "0.00002", "0.00003", "1.10032"),  # plus the bid markup
        (Side.BUY, "1.10030", "0", "0.000015", "1.10028"),  # 1.100285 rounds down for a buy
        (Side.SELL, "1.10030", "0.000015", "0", "1.10032"),  # 1.100315 rounds up for a sell
        (Side.BUY, "1.10030", "0", "0", "1.10030"),  # no markup: the client's own limit
    ],
)
def test_the_raw_limit_is_the_clients_limit_without_the_markup_rounded_for_the_client(
    side: Side, limit: str, bid_markup: str, ask_markup: str, raw: str
) -> None:
    order = limit_order(side, limit, bid_markup=bid_markup, ask_markup=ask_markup)
    assert raw_limit(order, 5) == D(raw)


@pytest.mark.parametrize("markup", ["0", "0.00001", "0.000015", "0.00003", "0.000049"])
@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_a_fill_at_the_raw_limit_or_better_never_costs_the_client_more_than_its_limit(
    side: Side, markup: str
) -> None:
    order = limit_order(side, "1.10030", bid_markup=markup, ask_markup=markup)
    raw = raw_limit(order, 5)
    step = D("0.00001")
    better = [raw - n * step if side is Side.BUY else raw + n * step for n in range(4)]
    for fill in better:
        price = client_price(fill, order, 5)  # without the cap: the raw limit alone suffices
        assert price <= order.limit if side is Side.BUY else price >= order.limit  # type: ignore[operator]


def test_a_fill_worse_than_asked_is_capped_at_the_clients_limit() -> None:
    buy = limit_order(Side.BUY, "1.10030")
    sell = limit_order(Side.SELL, "1.10030")
    assert limit_price(D("1.10040"), buy, 5) == D("1.10030")  # + 3 points would be 1.10043
    assert limit_price(D("1.10020"), sell, 5) == D("1.10030")  # - 2 points would be 1.10018


def test_a_fill_better_than_the_limit_gives_the_client_that_price_plus_the_markup() -> None:
    assert limit_price(D("1.10010"), limit_order(Side.BUY, "1.10030"), 5) == D("1.10013")
    assert limit_price(D("1.10050"), limit_order(Side.SELL, "1.10030"), 5) == D("1.10048")


def test_an_order_without_a_limit_has_no_raw_limit() -> None:
    market = WindowOrder("m", Side.BUY, D(1), IOC, D(0), D(0))
    with pytest.raises(ValueError, match="no limit"):
        raw_limit(market, 5)


# -- allocation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("tif", [REST, IOC, FOK])
def test_a_limit_hedge_filled_in_full_fills_the_order_at_its_price_plus_markup(
    tif: WindowTimeInForce,
) -> None:
    order = limit_order(Side.BUY, "1.10030", "1.5", tif)
    allocation = allocate_limit(order, HedgeResult(D("1.5"), D("1.10025")), 5)
    assert allocation == Allocation("o1", FILLED, D("1.5"), D("1.10028"))


@pytest.mark.parametrize(("tif", "outcome"), [(REST, PARTIAL), (IOC, PARTIAL), (FOK, NOT_FILLED)])
def test_a_partly_filled_limit_hedge_gives_what_it_filled_unless_fill_or_kill(
    tif: WindowTimeInForce, outcome: AllocationOutcome
) -> None:
    order = limit_order(Side.SELL, "1.10030", "1.5", tif)
    allocation = allocate_limit(order, HedgeResult(D("0.5"), D("1.10040")), 5)
    assert allocation.outcome is outcome
    if outcome is PARTIAL:
        assert (allocation.quantity, allocation.price) == (D("0.5"), D("1.10038"))
    else:
        assert (allocation.quantity, allocation.price) == (D(0), None)


def test_a_limit_hedge_that_filled_nothing_gives_nothing() -> None:
    allocation = allocate_limit(limit_order(Side.BUY, "1.10030"), HedgeResult(D(0), None), 5)
    assert allocation == Allocation("o1", NOT_FILLED, D(0), None)


@pytest.mark.parametrize(
    ("hedge", "problem"),
    [
        (HedgeResult(D("2"), D("1.1")), "filled 2 of"),
        (HedgeResult(D("0.5"), None), "average price"),
    ],
)
def test_an_impossible_limit_hedge_result_is_refused(hedge: HedgeResult, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        allocate_limit(limit_order(Side.BUY, "1.10030"), hedge, 5)


@pytest.mark.parametrize(
    ("tif", "outcome", "expected"),
    [
        (REST, PARTIAL, Settlement("o1", D("0.5"), D("1.1"))),
        (REST, NOT_FILLED, Settlement("o1", D(0), None)),
    ],
)
def test_a_resting_limit_order_keeps_what_it_got_and_keeps_working(
    tif: WindowTimeInForce, outcome: AllocationOutcome, expected: Settlement
) -> None:
    order = limit_order(Side.BUY, "1.10030", "1", tif)
    quantity = D("0.5") if outcome is PARTIAL else D(0)
    price = D("1.1") if outcome is PARTIAL else None
    (settlement,) = settlements_of([Allocation("o1", outcome, quantity, price)], [order], None)
    assert settlement == expected
    assert settlement.rest is None


def test_an_ioc_limit_order_cancels_an_unfilled_rest_or_is_rejected_with_nothing() -> None:
    order = limit_order(Side.BUY, "1.10030", "1", IOC)
    (partial,) = settlements_of([Allocation("o1", PARTIAL, D("0.4"), D("1.1"))], [order], None)
    (nothing,) = settlements_of([Allocation("o1", NOT_FILLED, D(0), None)], [order], None)
    assert (partial.rest, partial.reason) == (OrderEvent.CANCELLED, _R.ERROR_REASON_NO_LIQUIDITY)
    assert (nothing.rest, nothing.reason) == (OrderEvent.REJECTED, _R.ERROR_REASON_NO_LIQUIDITY)


# -- the client order as the desk sees it ----------------------------------------------------------


@pytest.mark.parametrize(
    ("tif", "window_tif"),
    [
        (TimeInForce.GTC, REST),
        (TimeInForce.DAY, REST),
        (TimeInForce.IOC, IOC),
        (TimeInForce.FOK, FOK),
    ],
)
def test_an_stp_limit_order_carries_its_limit_and_rests_when_gtc_or_day(
    tif: TimeInForce, window_tif: WindowTimeInForce
) -> None:
    order = client_order(tif=tif, filled="0.25")
    window = window_order(order, D("0.00002"), D("0.00003"))
    assert (window.limit, window.time_in_force, window.quantity) == (
        D("1.10030"),
        window_tif,
        D("0.75"),
    )


def test_only_stp_limit_and_stop_limit_orders_are_hedged_at_their_limit() -> None:
    assert is_stp_limit(client_order())
    assert is_stp_limit(client_order(order_type=OrderType.STOP_LIMIT))
    assert not is_stp_limit(client_order(order_type=OrderType.MARKET))
    assert not is_stp_limit(client_order(order_type=OrderType.STOP))
    assert not is_stp_limit(client_order(mode=ExecutionMode.MARKET))


def test_a_buy_limit_at_or_above_the_groups_ask_is_hedged_at_its_raw_limit() -> None:
    # Group ask 1.10030 = raw 1.10027 + 3 points; the client's limit 1.10030 is reached.
    decision = attempt(client_order(price="1.10030"), quote("1.10000", "1.10030"))
    assert isinstance(decision, HedgeAt)
    assert decision.raw_limit == D("1.10027")
    assert (decision.order.bid_markup, decision.order.ask_markup) == (D("0.00002"), D("0.00003"))


def test_a_sell_limit_at_or_below_the_groups_bid_is_hedged_at_its_raw_limit() -> None:
    order = client_order(Side.SELL, "1.09990", TimeInForce.IOC)
    decision = attempt(order, quote("1.10000", "1.10030"))
    assert isinstance(decision, HedgeAt)
    assert decision.raw_limit == D("1.09992")


@pytest.mark.parametrize("tif", [TimeInForce.GTC, TimeInForce.DAY])
def test_a_resting_limit_whose_price_is_not_there_waits(tif: TimeInForce) -> None:
    order = client_order(price="1.10029", tif=tif)
    assert isinstance(attempt(order, quote("1.10000", "1.10030")), Wait)
    assert isinstance(attempt(order, None), Wait)


@pytest.mark.parametrize("tif", [TimeInForce.IOC, TimeInForce.FOK])
def test_an_immediate_limit_whose_price_is_not_there_is_refused_for_no_liquidity(
    tif: TimeInForce,
) -> None:
    order = client_order(price="1.10029", tif=tif)
    decision = attempt(order, quote("1.10000", "1.10030"))
    assert isinstance(decision, Refuse)
    assert decision.settlement.rest is OrderEvent.REJECTED
    assert decision.settlement.reason == _R.ERROR_REASON_NO_LIQUIDITY
    assert "1.10029" in decision.settlement.message
    assert "1.10030" in decision.settlement.message


@pytest.mark.parametrize("tif", [TimeInForce.IOC, TimeInForce.FOK])
def test_an_immediate_limit_without_a_live_price_waits_for_one_within_its_wait(
    tif: TimeInForce,
) -> None:
    # Acknowledged WORKING: our own price feed's blink must not cost it (issue #18).
    order = client_order(tif=tif)
    assert isinstance(attempt(order, None), AwaitPrice)
    assert isinstance(attempt(order, None, at=NOW + WAIT - timedelta(milliseconds=1)), AwaitPrice)


def test_an_immediate_limit_past_its_wait_without_a_live_price_is_refused() -> None:
    decision = attempt(client_order(tif=TimeInForce.IOC), None, at=NOW + WAIT)
    assert isinstance(decision, Refuse)
    assert decision.settlement.reason == _R.ERROR_REASON_PRICE_UNAVAILABLE
    assert decision.settlement.rest is OrderEvent.REJECTED
    assert decision.settlement.message == (
        "no live price for EURUSD in the 30.0 s since the order was accepted"
    )


# -- the FIX order ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("fill_or_kill", "tif"), [(False, "3"), (True, "4")])
def test_a_limit_hedge_goes_out_as_a_fix_limit_order_at_its_raw_limit(
    fill_or_kill: bool, tif: str
) -> None:
    request = HedgeRequest(
        "7b0d6c1a-0000-4000-8000-000000000002",
        "lp-alpha",
        "EURUSD",
        Side.BUY,
        D("0.50"),
        D("1.10027"),
        fill_or_kill,
    )

    message = new_order_single(request)

    assert (get_field(message, 40), get_field(message, 44)) == ("2", "1.10027")
    assert (get_field(message, 59), get_field(message, 38)) == (tif, "0.5")


def test_a_limit_hedge_needs_a_positive_price() -> None:
    request = HedgeRequest("h", "lp-alpha", "EURUSD", Side.BUY, D(1), D(0))
    with pytest.raises(ValueError, match="positive"):
        new_order_single(request)

"""Execution decisions (instant, market, limit, stop, STP), DAY expiry and conversion pairs."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal

import pytest

from services.oms.domain.positions import Side
from services.oms.entry.execution import AWAITS_PRICE
from services.oms.entry.execution import AWAITS_STP
from services.oms.entry.execution import Decision
from services.oms.entry.execution import FillAt
from services.oms.entry.execution import LiveQuote
from services.oms.entry.execution import OrderSpec
from services.oms.entry.execution import Reject
from services.oms.entry.execution import conversion_at
from services.oms.entry.execution import conversion_pair
from services.oms.entry.execution import decide
from services.oms.entry.execution import is_marketable
from services.oms.entry.execution import session_end
from services.oms.model import ExecutionMode
from services.oms.model import Instrument
from services.oms.model import OrderType
from services.oms.model import TimeInForce
from services.platform.schedule import Session
from tradingmesh.common.v1.errors_pb2 import ErrorReason

D = Decimal
NOW = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)  # a Monday
QUOTE = LiveQuote("g1", "EURUSD", D("1.10000"), D("1.10020"), NOW, 1)
POINT = D("0.00001")


def spec(
    side: Side = Side.BUY,
    order_type: OrderType = OrderType.MARKET,
    tif: TimeInForce = TimeInForce.IOC,
    price: str | None = None,
    requested: str | None = None,
) -> OrderSpec:
    return OrderSpec(
        side,
        order_type,
        tif,
        D("1"),
        None if price is None else D(price),
        None if requested is None else D(requested),
    )


def run(
    order: OrderSpec, mode: ExecutionMode, quote: LiveQuote | None = QUOTE, deviation: int = 20
) -> Decision:
    return decide(order, mode, quote, symbol="EURUSD", max_deviation_points=deviation, point=POINT)


def test_a_market_order_fills_at_the_ask_for_a_buy_and_the_bid_for_a_sell() -> None:
    assert run(spec(Side.BUY), ExecutionMode.MARKET) == FillAt(D("1.10020"))
    assert run(spec(Side.SELL), ExecutionMode.MARKET) == FillAt(D("1.10000"))


@pytest.mark.parametrize("tif", [TimeInForce.IOC, TimeInForce.FOK])
def test_ioc_and_fok_market_orders_fill_in_full_with_the_broker_as_counterparty(
    tif: TimeInForce,
) -> None:
    assert run(spec(tif=tif), ExecutionMode.MARKET) == FillAt(D("1.10020"))


def test_instant_execution_fills_at_the_requested_price_within_the_deviation() -> None:
    # live ask 1.10020; 20 points of 0.00001 allowed: 1.10000 is exactly at the edge
    assert run(spec(requested="1.10000"), ExecutionMode.INSTANT) == FillAt(D("1.10000"))
    assert run(spec(requested="1.10040"), ExecutionMode.INSTANT) == FillAt(D("1.10040"))


def test_instant_execution_beyond_the_deviation_is_a_requote_at_the_live_price() -> None:
    decision = run(spec(requested="1.09999"), ExecutionMode.INSTANT)
    assert isinstance(decision, Reject)
    assert decision.reason == ErrorReason.ERROR_REASON_REQUOTE
    assert decision.requote_price == D("1.10020")
    sell = run(spec(Side.SELL, requested="1.10021"), ExecutionMode.INSTANT)
    assert isinstance(sell, Reject)
    assert sell.requote_price == D("1.10000")


def test_instant_execution_with_zero_deviation_fills_only_at_the_live_price() -> None:
    assert run(spec(requested="1.10020"), ExecutionMode.INSTANT, deviation=0) == FillAt(
        D("1.10020")
    )
    assert isinstance(run(spec(requested="1.10019"), ExecutionMode.INSTANT, deviation=0), Reject)


@pytest.mark.parametrize("mode", [ExecutionMode.MARKET, ExecutionMode.INSTANT])
def test_no_live_price_rejects_a_market_order(mode: ExecutionMode) -> None:
    decision = run(spec(requested="1.1"), mode, quote=None)
    assert isinstance(decision, Reject)
    assert decision.reason == ErrorReason.ERROR_REASON_PRICE_UNAVAILABLE


@pytest.mark.parametrize(
    "order",
    [
        spec(),
        spec(order_type=OrderType.LIMIT, tif=TimeInForce.GTC, price="2"),
        spec(order_type=OrderType.STOP, tif=TimeInForce.GTC),
    ],
)
def test_stp_orders_wait_for_the_stp_module_and_are_never_filled_here(order: OrderSpec) -> None:
    assert run(order, ExecutionMode.STP) is AWAITS_STP
    assert run(order, ExecutionMode.STP, quote=None) is AWAITS_STP


@pytest.mark.parametrize("order_type", [OrderType.STOP, OrderType.STOP_LIMIT])
def test_stop_orders_rest_working(order_type: OrderType) -> None:
    assert run(spec(order_type=order_type, tif=TimeInForce.GTC), ExecutionMode.MARKET) is (
        AWAITS_PRICE
    )


def test_a_limit_order_away_from_the_market_rests_working() -> None:
    buy = spec(order_type=OrderType.LIMIT, tif=TimeInForce.GTC, price="1.09000")
    assert run(buy, ExecutionMode.MARKET) is AWAITS_PRICE
    day = spec(Side.SELL, OrderType.LIMIT, TimeInForce.DAY, price="1.11000")
    assert run(day, ExecutionMode.INSTANT) is AWAITS_PRICE
    assert run(buy, ExecutionMode.MARKET, quote=None) is AWAITS_PRICE


def test_a_marketable_limit_order_fills_at_the_live_price_at_or_better_than_its_limit() -> None:
    buy = spec(order_type=OrderType.LIMIT, tif=TimeInForce.GTC, price="1.10050")
    assert run(buy, ExecutionMode.MARKET) == FillAt(D("1.10020"))
    sell = spec(Side.SELL, OrderType.LIMIT, TimeInForce.FOK, price="1.10000")
    assert run(sell, ExecutionMode.MARKET) == FillAt(D("1.10000"))


@pytest.mark.parametrize("tif", [TimeInForce.IOC, TimeInForce.FOK])
def test_an_immediate_limit_order_that_cannot_fill_is_rejected_no_liquidity(
    tif: TimeInForce,
) -> None:
    decision = run(spec(order_type=OrderType.LIMIT, tif=tif, price="1.09"), ExecutionMode.MARKET)
    assert isinstance(decision, Reject)
    assert decision.reason == ErrorReason.ERROR_REASON_NO_LIQUIDITY
    unpriced = run(
        spec(order_type=OrderType.LIMIT, tif=tif, price="1.09"), ExecutionMode.MARKET, quote=None
    )
    assert isinstance(unpriced, Reject)
    assert unpriced.reason == ErrorReason.ERROR_REASON_PRICE_UNAVAILABLE


def test_is_marketable() -> None:
    assert is_marketable(Side.BUY, D("1.10020"), QUOTE)
    assert not is_marketable(Side.BUY, D("1.10019"), QUOTE)
    assert is_marketable(Side.SELL, D("1.10000"), QUOTE)
    assert not is_marketable(Side.SELL, D("1.10001"), QUOTE)


def test_a_quote_is_live_until_it_is_stale_or_too_old() -> None:
    age = timedelta(seconds=2)
    assert QUOTE.is_live(NOW + timedelta(seconds=2), age)
    assert not QUOTE.is_live(NOW + timedelta(seconds=2, microseconds=1), age)
    stale = LiveQuote("g1", "EURUSD", D("1"), D("1.1"), NOW, 1, stale=True)
    assert not stale.is_live(NOW, age)


def test_the_mid_is_exact() -> None:
    assert QUOTE.mid == D("1.10010")
    assert LiveQuote("g1", "X", D("1.00001"), D("1.00002"), NOW, 1).mid == D("1.000015")


# -- DAY expiry --------------------------------------------------------------------------------

AROUND_THE_CLOCK = tuple(Session(day, 0, 1440) for day in range(1, 8))


def test_a_day_order_expires_at_the_end_of_the_session_holding_now() -> None:
    assert session_end(AROUND_THE_CLOCK, NOW) == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    weekdays = tuple(Session(day, 60, 1320) for day in range(1, 6))  # 01:00-22:00
    assert session_end(weekdays, NOW) == datetime(2026, 11, 23, 22, 0, tzinfo=UTC)


def test_outside_every_session_it_expires_at_the_end_of_the_next_one() -> None:
    weekdays = tuple(Session(day, 60, 1320) for day in range(1, 6))
    late_friday = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    assert session_end(weekdays, late_friday) == datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
    early = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)
    assert session_end(weekdays, early) == datetime(2026, 11, 23, 22, 0, tzinfo=UTC)


def test_without_sessions_there_is_no_expiry() -> None:
    assert session_end((), NOW) is None


# -- conversion ----------------------------------------------------------------------------------


def instrument(symbol: str, base: str, quote: str) -> Instrument:
    return Instrument(
        symbol, base, quote, 5, D("0.00001"), D("100000"), D("0.01"), D("100"), D("0.01"), D("0.01")
    )


CATALOGUE = [
    instrument("EURUSD", "EUR", "USD"),
    instrument("USDJPY", "USD", "JPY"),
    instrument("GBPUSD", "GBP", "USD"),
]


def test_a_quote_currency_pair_multiplies_and_an_account_currency_pair_divides() -> None:
    assert conversion_pair("GBP", "USD", CATALOGUE) == ("GBPUSD", False)
    assert conversion_pair("JPY", "USD", CATALOGUE) == ("USDJPY", True)
    assert conversion_pair("USD", "EUR", CATALOGUE) == ("EURUSD", True)


def test_no_pair_joins_the_currencies() -> None:
    assert conversion_pair("CHF", "USD", CATALOGUE) is None
    assert conversion_pair("JPY", "EUR", CATALOGUE) is None  # no cross conversions


def test_conversion_at_the_mid() -> None:
    usdjpy = LiveQuote("g1", "USDJPY", D("150.000"), D("150.020"), NOW, 1)
    conversion = conversion_at(usdjpy, inverse=True)
    assert conversion.rate == D("150.010")
    assert conversion.to_account(D("1500.10")) == D("10")

"""The swap of a position at a rollover and the rollover calendar (ADR 0010), with amounts
computed by hand in each test's comment."""

from __future__ import annotations

from datetime import UTC
from datetime import date
from datetime import datetime
from decimal import Decimal

import pytest

from services.oms.domain.positions import Side
from services.oms.domain.swaps import RolloverClock
from services.oms.domain.swaps import SwapTerms
from services.oms.domain.swaps import SwapType
from services.oms.domain.swaps import nights
from services.oms.domain.swaps import swap_amount
from services.oms.domain.swaps import terms_for as terms_of
from tradingmesh.trading.money import IDENTITY
from tradingmesh.trading.money import Conversion

D = Decimal
WEDNESDAY = 3
EURUSD = SwapTerms(SwapType.POINTS, D("-6.5"), D("1.2"), WEDNESDAY)
USDJPY = SwapTerms(SwapType.POINTS, D("11.5"), D("-22.3"), WEDNESDAY)
XAUUSD = SwapTerms(SwapType.PERCENT, D("-5.5"), D("2.5"), WEDNESDAY)
TUESDAY_DATE = date(2026, 12, 8)
WEDNESDAY_DATE = date(2026, 12, 9)


def points(
    side: Side,
    quantity: str,
    terms: SwapTerms = EURUSD,
    nights: int = 1,
    digits: int = 5,
    conversion: Conversion = IDENTITY,
) -> Decimal:
    return swap_amount(
        side=side,
        quantity=D(quantity),
        contract_size=D("100000"),
        digits=digits,
        terms=terms,
        nights=nights,
        currency="USD",
        conversion=conversion,
    )


def test_a_long_pays_its_points_rate_per_lot_per_night() -> None:
    # 0.10 lots x 100000 x -6.5 points x 0.00001 = -0.65 USD
    assert points(Side.BUY, "0.10") == D("-0.65")


def test_a_short_is_credited_its_positive_points_rate() -> None:
    # 0.20 x 100000 x 1.2 x 0.00001 = 0.24 USD
    assert points(Side.SELL, "0.20") == D("0.24")


def test_the_triple_swap_weekday_charges_three_nights() -> None:
    assert nights(EURUSD, WEDNESDAY_DATE) == 3
    assert nights(EURUSD, TUESDAY_DATE) == 1
    # 0.10 x 100000 x -6.5 x 0.00001 x 3 = -1.95 USD
    assert points(Side.BUY, "0.10", nights=nights(EURUSD, WEDNESDAY_DATE)) == D("-1.95")


def test_a_quote_currency_swap_is_converted_through_the_inverse_pair_at_its_mid() -> None:
    # USDJPY, 3 digits: 0.10 x 100000 x 11.5 x 0.001 = 115 JPY; / 150.010 = 0.76661... USD
    rate = Conversion(D("150.010"), inverse=True)
    assert points(Side.BUY, "0.10", USDJPY, digits=3, conversion=rate) == D("0.77")
    # short: 0.10 x 100000 x -22.3 x 0.001 = -223 JPY; / 150.010 = -1.48656... USD
    assert points(Side.SELL, "0.10", USDJPY, digits=3, conversion=rate) == D("-1.49")


def test_a_quote_currency_swap_is_converted_through_the_direct_pair_by_multiplying() -> None:
    # An EURGBP-like pair: 0.10 x 100000 x -2 x 0.00001 = -0.20 GBP; x 1.25 (GBPUSD) = -0.25 USD
    terms = SwapTerms(SwapType.POINTS, D("-2"), D("0"), WEDNESDAY)
    assert points(Side.BUY, "0.10", terms, conversion=Conversion(D("1.25"))) == D("-0.25")


def test_a_percent_rate_is_a_year_of_the_positions_value_over_360_nights() -> None:
    # XAUUSD long 1.00 lot x 100 oz at the bid 2000.00: 200000 x -5.5 % / 360
    # = -1100000 / 36000 = -30.5555... -> -30.56 USD
    amount = swap_amount(
        side=Side.BUY,
        quantity=D("1.00"),
        contract_size=D("100"),
        digits=2,
        terms=XAUUSD,
        nights=1,
        currency="USD",
        close_price=D("2000.00"),
    )
    assert amount == D("-30.56")


def test_a_percent_rate_on_a_short_at_the_ask_over_three_nights() -> None:
    # 0.50 x 100 x 3 nights = 150 oz-nights x 2000.40 = 300060 x 2.5 % / 360
    # = 750150 / 36000 = 20.8375 -> 20.84 USD
    amount = swap_amount(
        side=Side.SELL,
        quantity=D("0.50"),
        contract_size=D("100"),
        digits=2,
        terms=XAUUSD,
        nights=3,
        currency="USD",
        close_price=D("2000.40"),
    )
    assert amount == D("20.84")


def test_amounts_round_once_half_to_even() -> None:
    # 0.50 x 100000 x 0.25 x 0.00001 = 0.125 -> 0.12; with 0.27: 0.135 -> 0.14
    terms = SwapTerms(SwapType.POINTS, D("0.25"), D("0.27"), WEDNESDAY)
    assert points(Side.BUY, "0.50", terms) == D("0.12")
    assert points(Side.SELL, "0.50", terms) == D("0.14")


def test_a_zero_rate_charges_nothing_and_never_minus_zero() -> None:
    terms = SwapTerms(SwapType.POINTS, D("0"), D("-0.001"), WEDNESDAY)
    assert str(points(Side.BUY, "1.00", terms)) == "0.00"
    # 0.01 x 100000 x -0.001 x 0.00001 = -0.00001 -> 0.00, not -0.00
    assert str(points(Side.SELL, "0.01", terms)) == "0.00"


def test_a_percent_swap_without_a_price_is_refused() -> None:
    with pytest.raises(ValueError, match="closing price"):
        swap_amount(
            side=Side.BUY,
            quantity=D("1"),
            contract_size=D("100"),
            digits=2,
            terms=XAUUSD,
            nights=1,
            currency="USD",
        )


def test_the_triple_swap_day_is_monday_to_friday() -> None:
    with pytest.raises(ValueError, match="Monday to Friday"):
        SwapTerms(SwapType.POINTS, D("1"), D("1"), 6)


def test_a_groups_own_terms_replace_the_instruments() -> None:
    own = SwapTerms(SwapType.POINTS, D("-1"), D("-1"), 5)
    terms = {("EURUSD", ""): EURUSD, ("EURUSD", "g-1"): own}
    assert terms_of(terms, "g-1", "EURUSD") is own
    assert terms_of(terms, "g-2", "EURUSD") is EURUSD
    assert terms_of(terms, "g-1", "GBPUSD") is None


# ---- the calendar -------------------------------------------------------------------------------

NEW_YORK_5PM = RolloverClock.parse("17:00", "America/New_York")


def test_the_rollover_is_5pm_new_york_in_utc_with_daylight_saving() -> None:
    assert NEW_YORK_5PM.instant(WEDNESDAY_DATE) == datetime(2026, 12, 9, 22, 0, tzinfo=UTC)
    assert NEW_YORK_5PM.instant(date(2026, 7, 8)) == datetime(2026, 7, 8, 21, 0, tzinfo=UTC)


def test_the_latest_due_rollover_is_todays_from_its_instant_on() -> None:
    before = datetime(2026, 12, 9, 21, 59, 59, tzinfo=UTC)
    assert NEW_YORK_5PM.latest_due(before) == TUESDAY_DATE
    assert NEW_YORK_5PM.latest_due(datetime(2026, 12, 9, 22, 0, tzinfo=UTC)) == WEDNESDAY_DATE


def test_the_weekend_has_no_rollover_so_fridays_is_due_until_mondays() -> None:
    saturday = datetime(2026, 12, 12, 10, 0, tzinfo=UTC)
    monday_morning = datetime(2026, 12, 14, 15, 0, tzinfo=UTC)
    assert NEW_YORK_5PM.latest_due(saturday) == date(2026, 12, 11)
    assert NEW_YORK_5PM.latest_due(monday_morning) == date(2026, 12, 11)
    assert not RolloverClock.is_trading_day(date(2026, 12, 12))
    assert not RolloverClock.is_trading_day(date(2026, 12, 13))
    assert RolloverClock.is_trading_day(date(2026, 12, 11))


def test_a_bad_time_or_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time of day"):
        RolloverClock.parse("5pm", "UTC")
    with pytest.raises(ValueError, match="time zone"):
        RolloverClock.parse("17:00", "Mars/Olympus")

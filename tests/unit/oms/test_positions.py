"""Fills applied to positions (netting and hedging), average prices and P&L, by hand."""

from __future__ import annotations

from decimal import Decimal
from decimal import Inexact

import pytest

from services.oms.domain.positions import Execution
from services.oms.domain.positions import PnlTerms
from services.oms.domain.positions import Position
from services.oms.domain.positions import PositionEffect
from services.oms.domain.positions import PositionMode
from services.oms.domain.positions import Side
from services.oms.domain.positions import apply_fill
from services.oms.domain.positions import apply_hedging
from services.oms.domain.positions import apply_netting
from services.oms.domain.positions import realized_pnl
from services.oms.domain.positions import unrealized_pnl
from services.platform.errors import DomainError
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.trading.money import Conversion
from tradingmesh.trading.money import commission
from tradingmesh.trading.money import exact_product
from tradingmesh.trading.money import round_money

D = Decimal
EURUSD = PnlTerms(contract_size=D(100000), currency="USD")  # quoted in the account currency


def buy(quantity: str, price: str) -> Execution:
    return Execution(Side.BUY, D(quantity), D(price))


def sell(quantity: str, price: str) -> Execution:
    return Execution(Side.SELL, D(quantity), D(price))


# -- netting -----------------------------------------------------------------------------------


def test_netting_opens_increases_reduces_and_reverses_one_position() -> None:
    opened = apply_netting(None, buy("1.00", "1.10000"), EURUSD, new_position_id="p1")
    assert opened.effect is PositionEffect.OPEN
    assert opened.position == Position("p1", Side.BUY, D("1.00"), D("1.10000"))
    assert opened.realized_pnl == 0

    # (1.00 x 1.10000 + 0.50 x 1.10300) / 1.50 = 1.651500 / 1.50 = 1.10100
    increased = apply_netting(opened.position, buy("0.50", "1.10300"), EURUSD, new_position_id="x")
    assert increased.effect is PositionEffect.INCREASE
    assert increased.position.quantity == D("1.50")
    assert increased.position.open_price == D("1.101")
    assert str(increased.position.open_price) == "1.101"
    assert increased.position.id == "p1"

    # (1.10250 - 1.10100) x 0.30 x 100000 = 0.00150 x 30000 = 45.00
    reduced = apply_netting(
        increased.position, sell("0.30", "1.10250"), EURUSD, new_position_id="x"
    )
    assert reduced.effect is PositionEffect.REDUCE
    assert reduced.realized_pnl == D("45.00")
    assert reduced.closed_quantity == D("0.30")
    assert reduced.position.quantity == D("1.20")
    assert reduced.position.open_price == D("1.101")  # a reduction keeps the average

    # Selling 2.00 against a long 1.20: closes 1.20 at (1.09900 - 1.10100) x 1.20 x 100000
    # = -0.00200 x 120000 = -240.00, and opens a short 0.80 at 1.09900 under the same id.
    reversed_ = apply_netting(
        reduced.position, sell("2.00", "1.09900"), EURUSD, new_position_id="x"
    )
    assert reversed_.effect is PositionEffect.REVERSE
    assert reversed_.realized_pnl == D("-240.00")
    assert reversed_.closed_quantity == D("1.20")
    assert reversed_.position == Position(
        "p1",
        Side.SELL,
        D("0.80"),
        D("1.09900"),
        realized_pnl=D("-195.00"),  # 45.00 - 240.00
    )


def test_netting_closes_exactly_and_the_next_fill_opens_a_new_position() -> None:
    long = Position("p1", Side.BUY, D("1.00"), D("1.10000"))

    # (1.09950 - 1.10000) x 1.00 x 100000 = -50.00
    closed = apply_netting(long, sell("1.00", "1.09950"), EURUSD, new_position_id="x")
    assert closed.effect is PositionEffect.CLOSE
    assert closed.realized_pnl == D("-50.00")
    assert closed.position.quantity == 0
    assert not closed.position.is_open

    again = apply_netting(closed.position, sell("0.10", "1.09950"), EURUSD, new_position_id="p2")
    assert again.effect is PositionEffect.OPEN
    assert again.position == Position("p2", Side.SELL, D("0.10"), D("1.09950"))


def test_a_short_position_profits_when_the_price_falls() -> None:
    short = Position("p1", Side.SELL, D("0.50"), D("1.20000"))

    # (1.20000 - 1.19000) x 0.20 x 100000 = 0.01 x 20000 = 200.00
    result = apply_netting(short, buy("0.20", "1.19000"), EURUSD, new_position_id="x")

    assert result.effect is PositionEffect.REDUCE
    assert result.realized_pnl == D("200.00")
    assert result.position.quantity == D("0.30")


# -- hedging -----------------------------------------------------------------------------------


def test_hedging_opens_a_separate_position_for_every_opening_fill() -> None:
    first = apply_hedging(None, buy("1.00", "1.10000"), EURUSD, new_position_id="p1")
    second = apply_hedging(None, buy("0.50", "1.20000"), EURUSD, new_position_id="p2")
    opposite = apply_hedging(None, sell("0.70", "1.15000"), EURUSD, new_position_id="p3")

    assert [r.effect for r in (first, second, opposite)] == [PositionEffect.OPEN] * 3
    # No averaging across positions: each keeps its own price, and a sell opens a short
    # beside the longs instead of netting against them.
    assert first.position == Position("p1", Side.BUY, D("1.00"), D("1.10000"))
    assert second.position == Position("p2", Side.BUY, D("0.50"), D("1.20000"))
    assert opposite.position == Position("p3", Side.SELL, D("0.70"), D("1.15000"))


def test_hedging_reduces_and_closes_only_the_named_position() -> None:
    p1 = Position("p1", Side.BUY, D("1.00"), D("1.10000"))

    # (1.10500 - 1.10000) x 0.40 x 100000 = 0.005 x 40000 = 200.00
    reduced = apply_hedging(p1, sell("0.40", "1.10500"), EURUSD, new_position_id="unused")
    assert reduced.effect is PositionEffect.REDUCE
    assert reduced.realized_pnl == D("200.00")
    assert reduced.position == Position("p1", Side.BUY, D("0.60"), D("1.10000"), D("200.00"))

    # (1.09800 - 1.10000) x 0.60 x 100000 = -120.00; total 200.00 - 120.00 = 80.00
    closed = apply_hedging(reduced.position, sell("0.60", "1.09800"), EURUSD, new_position_id="x")
    assert closed.effect is PositionEffect.CLOSE
    assert closed.realized_pnl == D("-120.00")
    assert closed.position.realized_pnl == D("80.00")
    assert closed.position.quantity == 0


def test_hedging_never_reverses_so_closing_more_than_the_position_is_refused() -> None:
    p1 = Position("p1", Side.BUY, D("1.00"), D("1.10000"))

    with pytest.raises(DomainError) as refused:
        apply_hedging(p1, sell("1.01", "1.10000"), EURUSD, new_position_id="x")

    assert refused.value.reason == ErrorReason.ERROR_REASON_QUANTITY_OUT_OF_RANGE
    assert refused.value.metadata["open_quantity"] == "1.00"


def test_hedging_refuses_a_closing_order_on_the_positions_own_side() -> None:
    p1 = Position("p1", Side.BUY, D("1.00"), D("1.10000"))

    with pytest.raises(DomainError) as refused:
        apply_hedging(p1, buy("0.10", "1.10000"), EURUSD, new_position_id="x")

    assert refused.value.reason == ErrorReason.ERROR_REASON_INVALID_ORDER_FIELDS


def test_hedging_refuses_to_close_a_closed_position() -> None:
    closed = Position("p1", Side.BUY, D(0), D("1.10000"))

    with pytest.raises(DomainError) as refused:
        apply_hedging(closed, sell("0.10", "1.10000"), EURUSD, new_position_id="x")

    assert refused.value.reason == ErrorReason.ERROR_REASON_INVALID_ORDER_STATE


def test_apply_fill_follows_the_accounts_mode() -> None:
    long = Position("p1", Side.BUY, D("1.00"), D("1.10000"))

    netted = apply_fill(
        PositionMode.NETTING, long, sell("1.50", "1.10000"), EURUSD, new_position_id="x"
    )
    assert netted.effect is PositionEffect.REVERSE
    with pytest.raises(DomainError):
        apply_fill(PositionMode.HEDGING, long, sell("1.50", "1.10000"), EURUSD, new_position_id="x")


# -- P&L in the account currency, rounding ----------------------------------------------------

# USDJPY: 0.01 lot is 1000 USD, one point (0.001 JPY) on it is 1 JPY. On a USD account the JPY
# P&L converts by dividing by USDJPY, here 200.000, so each JPY is exactly 0.005 USD: ties.
USDJPY_ON_USD = PnlTerms(D(100000), "USD", Conversion(D("200.000"), inverse=True))


@pytest.mark.parametrize(
    ("close_at", "expected"),
    [
        ("150.001", "0.00"),  # +1 JPY = 0.005 USD: the tie goes to the even 0.00
        ("150.003", "0.02"),  # +3 JPY = 0.015 USD: to the even 0.02 (not 0.01)
        ("150.005", "0.02"),  # +5 JPY = 0.025 USD: to the even 0.02 (not 0.03)
        ("150.007", "0.04"),  # +7 JPY = 0.035 USD: to the even 0.04
        ("150.002", "0.01"),  # +2 JPY = 0.010 USD: exact
        ("149.997", "-0.02"),  # -3 JPY = -0.015 USD: to the even -0.02
        ("149.999", "0.00"),  # -1 JPY = -0.005 USD: 0.00, never "-0.00"
    ],
)
def test_realized_pnl_is_rounded_once_to_the_cent_half_to_even(
    close_at: str, expected: str
) -> None:
    pnl = realized_pnl(Side.BUY, D("150.000"), D(close_at), D("0.01"), USDJPY_ON_USD)

    assert str(pnl) == expected


def test_pnl_in_a_third_currency_is_converted_by_multiplying() -> None:
    # EURGBP on a USD account through GBPUSD 1.25000: (0.85123 - 0.85000) x 1.00 x 100000
    # = 123 GBP; x 1.25 = 153.75 USD.
    terms = PnlTerms(D(100000), "USD", Conversion(D("1.25000")))

    assert realized_pnl(Side.BUY, D("0.85000"), D("0.85123"), D("1.00"), terms) == D("153.75")


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        ("150", "2"),  # 0.01 USD x 150 = 1.5 JPY: the tie goes to the even 2
        ("250", "2"),  # 0.01 USD x 250 = 2.5 JPY: the tie goes to the even 2, not 3
        ("150.6", "2"),  # 1.506 JPY: not a tie, nearest
    ],
)
def test_a_jpy_account_rounds_to_whole_yen(rate: str, expected: str) -> None:
    # EURUSD on a JPY account: one point on 0.01 lot (1000 EUR) is 0.01 USD.
    terms = PnlTerms(D(100000), "JPY", Conversion(D(rate)))

    pnl = realized_pnl(Side.BUY, D("1.10000"), D("1.10001"), D("0.01"), terms)

    assert str(pnl) == expected


def test_a_long_position_is_valued_at_the_bid_and_a_short_one_at_the_ask() -> None:
    long = Position("p1", Side.BUY, D("1.00"), D("1.10000"))
    short = Position("p2", Side.SELL, D("1.00"), D("1.10000"))

    # Long: (1.10050 - 1.10000) x 100000 = 50.00. Short: (1.10000 - 1.10070) x 100000 = -70.00.
    assert unrealized_pnl(long, D("1.10050"), D("1.10070"), EURUSD) == D("50.00")
    assert unrealized_pnl(short, D("1.10050"), D("1.10070"), EURUSD) == D("-70.00")
    assert unrealized_pnl(Position("p3", Side.BUY, D(0), D(1)), D(2), D(3), EURUSD) == 0


# -- money -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "per_lot", "expected"),
    [
        ("1.00", "3.50", "3.50"),
        ("0.01", "3.50", "0.04"),  # 0.035: the tie goes to the even 0.04
        ("0.03", "3.50", "0.10"),  # 0.105: the tie goes to the even 0.10
        ("0.07", "3.50", "0.24"),  # 0.245: the tie goes to the even 0.24
        ("2.00", "0", "0.00"),
    ],
)
def test_commission_is_quantity_times_the_rate_per_lot_to_the_cent(
    quantity: str, per_lot: str, expected: str
) -> None:
    assert str(commission(D(quantity), D(per_lot), "USD")) == expected


def test_amounts_round_to_each_currencys_minor_unit() -> None:
    assert str(round_money(D("1.2345"), "USD")) == "1.23"
    assert str(round_money(D("1.2355"), "USD")) == "1.24"
    assert str(round_money(D("1.0005"), "KWD")) == "1.000"
    assert str(round_money(D("-0.4"), "JPY")) == "0"


def test_a_product_never_loses_a_digit_silently() -> None:
    forty_ones = D("1." + "1" * 40)

    with pytest.raises(Inexact):
        exact_product(forty_ones, forty_ones)  # 81 significant digits


def test_every_proto_position_effect_side_and_mode_maps_to_one_of_ours_and_back() -> None:
    effects = [v for v in trading_pb2.PositionEffect.values() if v]
    sides = [v for v in types_pb2.Side.values() if v]
    modes = [v for v in types_pb2.PositionMode.values() if v]

    assert {PositionEffect.from_proto(v) for v in effects} == set(PositionEffect)
    assert all(PositionEffect.from_proto(v).to_proto() == v for v in effects)
    assert {Side.from_proto(v) for v in sides} == set(Side)
    assert all(Side.from_proto(v).to_proto() == v for v in sides)
    assert {PositionMode.from_proto(v) for v in modes} == set(PositionMode)
    assert all(PositionMode.from_proto(v).to_proto() == v for v in modes)
    with pytest.raises(ValueError, match="UNSPECIFIED"):
        Side.from_proto(types_pb2.SIDE_UNSPECIFIED)

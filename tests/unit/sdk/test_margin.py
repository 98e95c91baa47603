"""Required margin, account margin figures, margin status and the stop-out order, by hand."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from decimal import Decimal

import pytest

from tradingmesh.risk.v1 import risk_pb2
from tradingmesh.trading.margin import MarginRule
from tradingmesh.trading.margin import RiskStatus
from tradingmesh.trading.margin import StopOutCandidate
from tradingmesh.trading.margin import account_margin
from tradingmesh.trading.margin import added_exposure
from tradingmesh.trading.margin import margin_level
from tradingmesh.trading.margin import margin_rule
from tradingmesh.trading.margin import next_to_close
from tradingmesh.trading.margin import position_pnl
from tradingmesh.trading.margin import required_margin
from tradingmesh.trading.margin import risk_status
from tradingmesh.trading.money import Conversion

D = Decimal


@pytest.mark.parametrize(
    ("leverage", "instrument_rate", "group_rate", "expected"),
    [
        # 1 lot EURUSD at the ask 1.10020: notional 110020.00.
        (100, "0.01", None, "1100.20"),  # 1/100 = 0.01: equal, leverage applies: 110020 / 100
        (50, "0.01", None, "2200.40"),  # 1/50 is stricter than 0.01: 110020 / 50
        (500, "0.01", None, "1100.20"),  # 0.01 is stricter than 1/500: 110020 x 0.01
        (500, "0.01", "0.05", "5501.00"),  # the group's rate replaces both: 110020 x 0.05
        (100, None, None, "1100.20"),  # no instrument rate: leverage only
        (100, "0", None, "1100.20"),  # a rate of 0 means the same
    ],
)
def test_the_margin_share_is_the_groups_rate_else_the_stricter_of_leverage_and_instrument(
    leverage: int, instrument_rate: str | None, group_rate: str | None, expected: str
) -> None:
    rule = margin_rule(
        leverage,
        D(instrument_rate) if instrument_rate is not None else None,
        D(group_rate) if group_rate is not None else None,
    )

    assert required_margin(D("1.00"), D(100000), D("1.10020"), rule, "USD") == D(expected)


def test_leverage_that_does_not_divide_evenly_is_rounded_once_to_the_cent() -> None:
    # 1 lot at 1.10000 = 110000 / 3 = 36666.666... -> 36666.67
    margin = required_margin(D(1), D(100000), D("1.10000"), MarginRule(3), "USD")

    assert str(margin) == "36666.67"


def test_margin_of_a_metal_uses_its_own_rate_and_contract_size() -> None:
    # XAUUSD 0.10 lot = 10 oz at 2000.50 = 20005.00 notional; x 0.02 = 400.10
    rule = margin_rule(100, D("0.02"), None)

    assert required_margin(D("0.10"), D(100), D("2000.50"), rule, "USD") == D("400.10")


def test_margin_in_a_foreign_quote_currency_is_converted_to_the_account_currency() -> None:
    # USDJPY 1 lot at 150.000 = 15,000,000 JPY notional; / 100 = 150,000 JPY; / 150 = 1000 USD
    margin = required_margin(
        D(1), D(100000), D("150.000"), MarginRule(100), "USD", Conversion(D("150.000"), True)
    )

    assert margin == D("1000.00")


def test_account_figures_add_the_positions_and_floor_the_level() -> None:
    figures = account_margin(
        D("10000.00"), [D("-250.50"), D("100.25")], [D("1100.20"), D("400.10")]
    )

    assert figures.unrealized_pnl == D("-150.25")
    assert figures.equity == D("9849.75")  # 10000.00 - 150.25
    assert figures.used_margin == D("1500.30")
    assert figures.free_margin == D("8349.45")  # 9849.75 - 1500.30
    assert figures.margin_level == D("656.51")  # 9849.75 / 1500.30 x 100 = 656.5186...


def test_the_figures_after_an_order_add_its_margin() -> None:
    figures = account_margin(D("10000.00"), [D("-150.25")], [D("1500.30")])

    after = figures.with_added_margin(D("1100.20"))

    assert after.used_margin == D("2600.50")
    assert after.free_margin == D("7249.25")  # 9849.75 - 2600.50
    assert after.margin_level == D("378.76")  # 9849.75 / 2600.50 x 100 = 378.7636...
    assert figures.used_margin == D("1500.30")  # unchanged


def test_no_margin_used_means_no_margin_level() -> None:
    figures = account_margin(D("500.00"), [], [])

    assert figures.margin_level is None
    assert figures.free_margin == figures.equity == D("500.00")


@pytest.mark.parametrize(
    ("equity", "used", "expected"),
    [
        ("49.999", "100", "49.99"),  # never shown as 50.00 while below 50
        ("50", "100", "50.00"),
        ("-12.345", "100", "-12.35"),  # down means toward minus infinity
        ("1", "3", "33.33"),
    ],
)
def test_the_margin_level_is_rounded_down(equity: str, used: str, expected: str) -> None:
    assert margin_level(D(equity), D(used)) == D(expected)


@pytest.mark.parametrize(
    ("equity", "used", "expected"),
    [
        ("100.00", "100.00", RiskStatus.OK),  # 100 %: at the margin-call level is not below
        ("99.99", "100.00", RiskStatus.MARGIN_CALL),
        ("50.00", "100.00", RiskStatus.MARGIN_CALL),  # 50 %: at the stop-out level
        ("49.999", "100.00", RiskStatus.STOP_OUT),  # 49.999 %, although shown 49.99
        ("-10.00", "100.00", RiskStatus.STOP_OUT),
        ("-10.00", "0", RiskStatus.OK),  # no margin used: nothing to stop out
    ],
)
def test_margin_call_and_stop_out_compare_the_exact_level(
    equity: str, used: str, expected: RiskStatus
) -> None:
    assert risk_status(D(equity), D(used), D("100"), D("50")) is expected


def test_a_level_with_more_decimals_than_shown_is_still_compared_exactly() -> None:
    # 50.004 % against a stop-out level of 50.005: below, although both show as 50.00.
    assert risk_status(D("50.004"), D("100"), D("100"), D("50.005")) is RiskStatus.STOP_OUT


@pytest.mark.parametrize(
    ("net", "order", "expected"),
    [
        ("1.00", "0.20", "0.20"),  # adds to a long
        ("1.00", "-0.30", "0"),  # reduces it
        ("1.00", "-1.50", "0"),  # reverses to a short 0.50: smaller than the long 1.00
        ("1.00", "-2.50", "0.50"),  # reverses to a short 1.50: 0.50 more than before
        ("0", "-0.70", "0.70"),  # opens
    ],
)
def test_a_netting_order_adds_margin_only_for_the_exposure_it_adds(
    net: str, order: str, expected: str
) -> None:
    assert added_exposure(D(net), D(order)) == D(expected)


def _at(minute: int) -> datetime:
    return datetime(2026, 11, 23, 10, minute, tzinfo=UTC)


def test_stop_out_closes_the_largest_loss_first_then_the_older_on_a_tie() -> None:
    candidates = [
        StopOutCandidate("a", D("-300.00"), _at(5)),
        StopOutCandidate("b", D("-50.00"), _at(1)),
        StopOutCandidate("c", D("20.00"), _at(0)),
        StopOutCandidate("d", D("-300.00"), _at(2)),  # the same loss as a, opened earlier
    ]

    order = []
    while (chosen := next_to_close(candidates)) is not None:
        order.append(chosen.position_id)
        candidates = [c for c in candidates if c is not chosen]

    assert order == ["d", "a", "b", "c"]


def test_stop_out_breaks_a_full_tie_by_position_id() -> None:
    same = [StopOutCandidate(i, D("-1"), _at(0)) for i in ("z", "m", "q")]

    chosen = next_to_close(same)

    assert chosen is not None
    assert chosen.position_id == "m"


def test_every_proto_risk_status_maps_to_one_of_ours() -> None:
    values = {v for v in risk_pb2.AccountRiskStatus.values() if v}

    assert {s.to_proto() for s in RiskStatus} == values


@pytest.mark.parametrize(("leverage", "rate"), [(0, None), (100, D(0)), (100, D("1.5"))])
def test_an_impossible_margin_rule_is_a_bug(leverage: int, rate: Decimal | None) -> None:
    with pytest.raises(ValueError, match=r"leverage|margin rate"):
        MarginRule(leverage, rate)


@pytest.mark.parametrize(
    ("long", "open_price", "close_price", "quantity", "size", "expected"),
    [
        # EURUSD long 1.5 lots from 1.10000 to 1.10250: +0.0025 x 1.5 x 100,000 = 375 USD.
        (True, "1.10000", "1.10250", "1.5", "100000", "375.00000"),
        # The same move against a short position is a loss.
        (False, "1.10000", "1.10250", "1.5", "100000", "-375.00000"),
        # USDJPY short 0.01 lots from 150.123 down to 149.999: +0.124 x 0.01 x 100,000 = 124 JPY.
        (False, "150.123", "149.999", "0.01", "100000", "124.00000"),
        # No move, no P&L.
        (True, "2000.5", "2000.5", "3", "100", "0"),
    ],
)
def test_position_pnl_is_exact_in_the_quote_currency(
    long: bool, open_price: str, close_price: str, quantity: str, size: str, expected: str
) -> None:
    pnl = position_pnl(
        long, Decimal(open_price), Decimal(close_price), Decimal(quantity), Decimal(size)
    )
    assert pnl == Decimal(expected)


def test_required_margin_at_a_leverage_without_a_terminating_inverse_converts_by_multiplying() -> (
    None
):
    # EURGBP on a USD account at 1:30: 1 lot x 100,000 x 0.86543 / 30 GBP, converted through
    # GBPUSD 1.26311 by multiplying. 86,543 / 30 has no exact decimal, so the quotient is
    # 60 digits long and its product with the rate cannot be exact: it is rounded at the 60th
    # digit, then to cents.
    margin = required_margin(
        Decimal("1"),
        Decimal("100000"),
        Decimal("0.86543"),
        margin_rule(30, None, None),
        "USD",
        Conversion(Decimal("1.26311")),
    )
    # 2884.7666... x 1.26311 = 3643.7776...
    assert margin == Decimal("3643.78")

"""A statement's arithmetic: the summary reconciles to the ledger, positions replay from their
fills, and open positions are valued as the risk service values them (ADR 0012)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from decimal import Decimal

import pytest

from services.reporting.domain.statement import HeldPosition
from services.reporting.domain.statement import PositionFill
from services.reporting.domain.statement import ReconciliationError
from services.reporting.domain.statement import closing_figures
from services.reporting.domain.statement import replay_position
from services.reporting.domain.statement import summarize
from services.reporting.domain.statement import value_position
from tradingmesh.trading.margin import MarginRule

D = Decimal
AT = datetime(2026, 11, 2, tzinfo=UTC)


def test_summary_groups_the_ledger_reasons_and_reconciles() -> None:
    sums = {
        "DEPOSIT": D("10000"),
        "WITHDRAWAL": D("-2000"),
        "WITHDRAWAL_REVERSAL": D("500"),
        "REALIZED_PNL": D("150.40"),
        "STOP_OUT_LOSS": D("-20"),
        "COMMISSION": D("-7.00"),
        "SWAP": D("-1.25"),
        "ADJUSTMENT": D("3"),
        "NEGATIVE_BALANCE_CORRECTION": D("2"),
    }
    # 100 + 10000 - 1500 + 130.40 - 7 - 1.25 + 5 = 8727.15
    totals = summarize(D("100"), D("8727.15"), sums)

    assert totals.deposits == D("10000")
    assert totals.withdrawals == D("-1500")
    assert totals.realized_pnl == D("130.40")
    assert totals.stop_out_loss == D("-20")
    assert totals.commissions == D("-7.00")
    assert totals.swaps == D("-1.25")
    assert totals.adjustments == D("5")
    assert totals.negative_balance_corrections == D("2")


def test_a_summary_that_does_not_reconcile_is_refused() -> None:
    with pytest.raises(ReconciliationError):
        summarize(D("0"), D("10000.01"), {"DEPOSIT": D("10000")})


def test_an_unknown_ledger_reason_is_refused() -> None:
    with pytest.raises(ReconciliationError):
        summarize(D("0"), D("1"), {"BONUS": D("1")})


def _fill(side: str, quantity: str, price: str, effect: str) -> PositionFill:
    return PositionFill(side, D(quantity), D(price), effect, D("3.5"), AT)


def test_replay_averages_increases_and_keeps_the_price_on_reduce() -> None:
    held = replay_position(
        [
            _fill("BUY", "1", "1.1", "OPEN"),
            _fill("BUY", "1", "1.2", "INCREASE"),
            _fill("SELL", "0.5", "1.3", "REDUCE"),
        ]
    )

    assert held == HeldPosition("BUY", D("1.5"), D("1.15"), D("10.5"))


def test_replay_of_a_reversal_opens_the_rest_on_the_other_side() -> None:
    held = replay_position([_fill("BUY", "1", "1.1", "OPEN"), _fill("SELL", "3", "1.3", "REVERSE")])

    assert held is not None
    assert (held.side, held.quantity, held.open_price) == ("SELL", D("2"), D("1.3"))


def test_replay_of_a_closed_position_is_none() -> None:
    assert (
        replay_position([_fill("SELL", "1", "1.1", "OPEN"), _fill("BUY", "1", "1.0", "CLOSE")])
        is None
    )


def test_a_long_is_valued_at_the_bid_and_margined_at_the_ask() -> None:
    held = HeldPosition("BUY", D("1"), D("1.1"), D("0"))

    value = value_position(held, D("1.1050"), D("1.1052"), D("100000"), MarginRule(100), "USD")

    assert value.valuation_price == D("1.1050")
    assert value.unrealized_pnl == D("500.00")  # 0.005 x 1 x 100000
    assert value.margin == D("1105.20")  # 1 x 100000 x 1.1052 / 100


def test_a_short_is_valued_at_the_ask_and_margined_at_the_bid() -> None:
    held = HeldPosition("SELL", D("0.5"), D("1.1"), D("0"))

    value = value_position(held, D("1.1050"), D("1.1052"), D("100000"), MarginRule(100), "USD")

    assert value.valuation_price == D("1.1052")
    assert value.unrealized_pnl == D("-260.00")  # (1.1 - 1.1052) x 0.5 x 100000
    assert value.margin == D("552.50")  # 0.5 x 100000 x 1.1050 / 100


def test_closing_figures() -> None:
    held = HeldPosition("BUY", D("1"), D("1.1"), D("0"))
    value = value_position(held, D("1.1050"), D("1.1052"), D("100000"), MarginRule(100), "USD")

    figures = closing_figures(D("10000.00"), [value])

    assert figures.equity == D("10500.00")
    assert figures.used_margin == D("1105.20")
    assert figures.free_margin == D("9394.80")
    assert figures.margin_level == D("950.05")  # 10500 / 1105.20 x 100, rounded down

"""The daily snapshot rows (ADR 0010): the balance with what the ledger has not booked yet (a
charged swap), the floating P&L and margin at the latest prices, computed by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from services.risk.model import Side
from services.risk.model import UnbookedTrade
from services.risk.snapshots import snapshot_rows
from tests.unit.risk.builders import NOW
from tests.unit.risk.builders import account
from tests.unit.risk.builders import broker
from tests.unit.risk.builders import position
from tests.unit.risk.builders import price

D = Decimal
DAY = date(2026, 11, 23)


def test_a_snapshot_counts_an_unbooked_swap_and_values_positions_at_the_latest_price() -> None:
    state = broker()
    owner = account(state, "1000.00")
    position(state, owner, "EURUSD", Side.BUY, "0.10", "1.10000")
    price(state, "EURUSD", "1.10100", "1.10120")
    # The rollover charged -0.65; its SWAP entry has not reached the copy of the ledger yet.
    state.put_unbooked(UnbookedTrade("swap-1", owner.id, "", D("-0.65"), D(0)))

    (row,), complete = snapshot_rows(state, DAY, NOW)

    assert complete
    # balance 1000.00 - 0.65; floating 0.10 x 100000 x (1.10100 - 1.10000) = 10.00 at the bid;
    # margin 0.10 x 100000 x 1.10120 (the ask) / 100 = 110.12
    assert (row["balance"], row["floating_pnl"], row["margin"]) == (
        D("999.35"),
        D("10.00"),
        D("110.12"),
    )
    assert row["equity"] == D("1009.35")
    assert row["free_margin"] == D("899.23")
    assert (row["account_id"], row["trading_date"], row["currency"]) == (owner.id, DAY, "USD")
    assert row["taken_at"] == NOW


def test_an_idle_account_is_its_balance_and_an_unpriced_one_is_incomplete() -> None:
    state = broker()
    idle = account(state, "250.00", account_id="00000000-0000-4000-8000-0000000000b1")
    waiting = account(state, "500.00", account_id="00000000-0000-4000-8000-0000000000b2")
    position(state, waiting, "USDJPY", Side.SELL, "0.10", "150.000")  # no USDJPY price yet

    rows, complete = snapshot_rows(state, DAY, NOW)

    assert not complete
    by_account = {r["account_id"]: r for r in rows}
    assert (by_account[idle.id]["equity"], by_account[idle.id]["margin"]) == (D("250.00"), D(0))
    assert by_account[idle.id]["margin_level"] is None
    assert by_account[waiting.id]["balance"] == D("500.00")

"""Each account's daily snapshot at the rollover (ADR 0010): `risk.daily_snapshots`.

The OMS announces a trading day's rollover once every position was charged its swap
(`oms.rollover.completed`, after their `oms.position.swap_charged` on the same stream). The
trading consumer (`copies.py`) records it as due in `risk.rollover_snapshots` in its batch's
transaction, and this task, after the commit (and at start, for any left due), values every
account from the working set and writes one row per (account, trading day) with
`ON CONFLICT DO NOTHING`: a second take (a restart, another replica) changes nothing.

The balance is the ledger's plus what the ledger has not booked yet of executed trades and
charged swaps (`valuation.effective_balance`; the swaps of the rollover are in it from their
events, before the account service's bookings reach the copy); equity, used and free margin and
the floating P&L are the margin watcher's figures at the latest prices. A snapshot waits for
prices (up to `PRICE_WAIT`) while an account holds a position that has none yet (just after a
restart), then is taken with what there is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Final

from services.platform.db import Database
from services.platform.tasks import Repeating
from services.risk import store
from services.risk.state import RiskState
from services.risk.valuation import value_account

__all__ = ["DailySnapshots", "snapshot_rows"]

log = logging.getLogger(__name__)

PASS_SECONDS: Final = 5.0
PRICE_WAIT: Final = timedelta(seconds=60)


def snapshot_rows(
    state: RiskState, trading_date: date, now: datetime
) -> tuple[list[dict[str, Any]], bool]:
    """A row per account the working set knows (and whose group it knows), and whether every
    open position had a price."""
    rows, complete = [], True
    for account in list(state.accounts.values()):
        valuation = value_account(state, account, now, None)
        if valuation is None:
            continue
        complete &= valuation.complete
        figures = valuation.figures
        rows.append(
            {
                "account_id": account.id,
                "trading_date": trading_date,
                "currency": account.currency,
                "balance": figures.balance,
                "equity": figures.equity,
                "margin": figures.used_margin,
                "free_margin": figures.free_margin,
                "floating_pnl": figures.unrealized_pnl,
                "margin_level": figures.margin_level,
                "taken_at": now,
            }
        )
    return rows, complete


class DailySnapshots:
    """Takes the due snapshots; `wake` after a commit that made some due."""

    def __init__(
        self,
        db: Database,
        state: RiskState,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.state = state
        self.clock = clock
        self._passes = Repeating("risk-daily-snapshots", self.take_due, pause=PASS_SECONDS, log=log)

    def wake(self) -> None:
        self._passes.wake()

    async def take_due(self) -> int:
        """Takes every due day's snapshots that can be taken now; how many days."""
        async with self.db.transaction() as session:
            due = await store.due_snapshot_days(session)
        taken = 0
        for trading_date, received_at in due:
            now = self.clock()
            rows, complete = snapshot_rows(self.state, trading_date, now)
            if not complete and now - received_at < PRICE_WAIT:
                continue  # prices are still arriving (a restart): the next pass
            async with self.db.transaction() as session:
                await store.write_snapshots(session, trading_date, rows, now)
            taken += 1
            log.info(
                "daily snapshots taken",
                extra={
                    "trading_date": trading_date.isoformat(),
                    "accounts": len(rows),
                    "all_priced": complete,
                },
            )
        return taken

    async def start(self) -> None:
        self._passes.start()

    async def stop(self) -> None:
        await self._passes.stop()

"""DAY orders expire at the end of their trading session (ADR 0007 "Working orders").

A sweeper looks every second for open orders whose `expire_time` has passed and applies
EXPIRED (status_reason EXPIRED) to each in its own transaction, through the repository's
`apply`, like any other change. Several OMS instances may sweep at once: each order's change
locks its account and re-reads the order, and an order already ended is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from typing import Final

from services.oms.domain.state import OrderEvent
from services.oms.store.changes import AccountChange
from services.oms.store.changes import get_order
from services.oms.store.changes import load_account
from services.oms.store.changes import reason_changes
from services.oms.store.events import system_actor
from services.oms.store.queries import expiring_orders
from services.platform.db import Database
from services.platform.tasks import Repeating
from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = ["ExpirySweeper"]

log = logging.getLogger(__name__)

SWEEP_SECONDS: Final = 1.0
_BATCH: Final = 100
ACTOR: Final = "oms-expiry"


class ExpirySweeper:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.clock = clock
        self._passes = Repeating("oms-expiry", self.sweep, pause=SWEEP_SECONDS, log=log)

    async def sweep(self) -> int:
        """Expires the orders due now; how many."""
        now = self.clock()
        async with self.db.read_session() as session:
            due = await expiring_orders(session, now, _BATCH)
        expired = 0
        for account_id, order_id in due:
            expired += await self._expire(account_id, order_id, now)
        return expired

    async def _expire(self, account_id: str, order_id: str, now: datetime) -> int:
        async with self.db.transaction() as session:
            account = await load_account(session, account_id)
            if account is None:
                return 0
            async with AccountChange.opened(session, account, system_actor(ACTOR), now) as change:
                order = await get_order(session, account_id, order_id, lock=True)
                if order is None or not order.is_open or order.expire_time is None:
                    return 0
                if order.expire_time > now:
                    return 0
                message = "the trading session of the DAY order ended"
                await change.apply(
                    order,
                    OrderEvent.EXPIRED,
                    message,
                    changes=reason_changes(ErrorReason.ERROR_REASON_EXPIRED, message),
                )
        return 1

    async def run(self) -> None:
        """The passes, while this instance leads the job (`Elected`)."""
        await self._passes.run()

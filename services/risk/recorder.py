"""Recording CheckOrder decisions without making the OMS wait for PostgreSQL.

The check answers from memory; its decision (check_id) is queued here and written in batches,
one multi-row insert per `flush_interval` (or sooner when many are queued), as one statement on
its own (no BEGIN/COMMIT around it). The OMS stores the
outcome with the order itself (REJECTED with the check's reason and message), so the record is
the risk side of the audit trail, not the order's state: a crash of the risk process can lose the
decisions of the last interval, and nothing else. A failed write is retried with the next batch;
the queue is bounded, so a long database outage drops the oldest decisions (logged) rather than
the process's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any
from typing import Final

from services.platform.db import Database
from services.platform.tasks import cancel_and_wait
from services.risk import store

__all__ = ["DecisionRecorder"]

log = logging.getLogger(__name__)

_MAX_QUEUED: Final = 100_000
_BATCH: Final = 2_000


class DecisionRecorder:
    def __init__(self, db: Database, flush_interval: float = 0.5) -> None:
        self.db = db
        self.flush_interval = flush_interval
        self._queue: deque[Mapping[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def record(self, row: Mapping[str, Any]) -> None:
        if len(self._queue) >= _MAX_QUEUED:
            self._queue.popleft()
            log.error("check decisions are not being written; the oldest was dropped")
        self._queue.append(row)
        if len(self._queue) >= _BATCH:
            self._wake.set()

    async def flush(self) -> int:
        """Writes what is queued, a batch at a time; returns how many were written."""
        written = 0
        while self._queue:
            batch = [self._queue[i] for i in range(min(_BATCH, len(self._queue)))]
            async with self.db.lone_writes() as session:
                await store.write_decisions(session, batch)
            for _ in batch:
                self._queue.popleft()
            written += len(batch)
        return written

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("writing check decisions failed; retrying")
                await asyncio.sleep(1.0)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="risk-decision-recorder")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception(
                "the last check decisions could not be written", extra={"lost": len(self._queue)}
            )

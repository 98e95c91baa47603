"""Work that must run once among a service's instances, on an elected leader (ADR 0017).

`Elected(db, key, job, lead)` runs `lead()` while this instance holds the session-level
advisory lock `key` (`Database.leadership`), and tries again every `retry_seconds` while another
instance holds it: a leader that dies frees the lock with its connection, and a follower takes
over within about `retry_seconds`.

The fence: a watchdog checks the lock's connection every `check_seconds` (a session lock lives
exactly as long as its session); if the check fails, or gets no answer within `answer_seconds`,
`lead()` is cancelled at once, so a leader that may have lost its lock stops acting. A slow
answer alone does not lose the lock (no other instance can take it while the session lives), so
the answer may take longer than the check period: on a loaded machine a 1 s bound gave up
leadership for nothing and cancelled jobs mid-work. `lead` runs
until cancelled (it may also return: leadership then ends, and is sought again).

The gauge `tradingmesh_leader{job}` is 1 while this instance leads the job; each take-over logs
`leading <job>`. A job that holds its lock by other means and says for itself when it leads
(after loading its state) declares `leading = LeaderFlag(job)`, which sets the same gauge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Callable
from collections.abc import Coroutine
from typing import Any
from typing import Final
from typing import overload

from prometheus_client import Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.platform.db import Database
from services.platform.metrics import REGISTRY
from services.platform.tasks import Repeating

__all__ = ["LEADER", "Elected", "LeaderFlag", "lock_key"]

log = logging.getLogger(__name__)

LEADER = Gauge(
    "tradingmesh_leader",
    "1 while this instance is the elected leader of the job (ADR 0017)",
    ["job"],
    registry=REGISTRY,
)
RETRY_SECONDS: Final = 1.0
CHECK_SECONDS: Final = 1.0
ANSWER_SECONDS: Final = 5.0


def lock_key(job: str) -> int:
    """A stable advisory-lock key for a job's name (positive 63-bit)."""
    digest = zlib.crc32(job.encode()) << 24 ^ int.from_bytes(b"tmld", "big")
    return (digest ^ len(job)) & 0x7FFF_FFFF_FFFF_FFFF


class LeaderFlag:
    """A class attribute, `leading = LeaderFlag(job)`: whether an instance of the class leads
    `job` (False until set), exported as `tradingmesh_leader{job}` whenever it is set."""

    def __init__(self, job: str) -> None:
        self.job = job

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = f"_{name}"

    @overload
    def __get__(self, instance: None, owner: type) -> LeaderFlag: ...

    @overload
    def __get__(self, instance: object, owner: type) -> bool: ...

    def __get__(self, instance: object | None, owner: type) -> LeaderFlag | bool:
        if instance is None:
            return self
        return bool(vars(instance).get(self._slot, False))

    def __set__(self, instance: object, value: bool) -> None:
        vars(instance)[self._slot] = value
        LEADER.labels(self.job).set(1 if value else 0)


class LostLeadershipError(Exception):
    """The lock's connection failed its check: this instance may no longer lead."""


class Elected:
    """Runs `lead` on one instance at a time (see the module doc); `start`, then `stop`."""

    def __init__(
        self,
        db: Database,
        job: str,
        lead: Callable[[], Coroutine[Any, Any, None]],
        *,
        key: int | None = None,
        retry_seconds: float = RETRY_SECONDS,
        check_seconds: float = CHECK_SECONDS,
        answer_seconds: float = ANSWER_SECONDS,
    ) -> None:
        self.db = db
        self.job = job
        self.key = lock_key(job) if key is None else key
        self._lead = lead
        self._check = check_seconds
        self._answer = answer_seconds
        self._attempts = Repeating(f"elected {job}", self._attempt, pause=retry_seconds, log=log)
        self.leading = False
        LEADER.labels(job).set(0)

    async def start(self) -> None:
        self._attempts.start()

    async def stop(self) -> None:
        await self._attempts.stop()

    async def _attempt(self) -> None:
        """Leads while it holds the job's lock (a failure: the next attempt after the pause)."""
        async with self.db.leadership(self.key) as lock:
            if lock is not None:
                await self._leading(lock)

    async def _leading(self, lock: AsyncConnection) -> None:
        self.leading = True
        LEADER.labels(self.job).set(1)
        log.info("leading %s", self.job, extra={"job": self.job})
        work: asyncio.Task[None] = asyncio.create_task(self._lead(), name=self.job)
        try:
            while not work.done():
                done, _ = await asyncio.wait({work}, timeout=self._check)
                if done:
                    break
                try:
                    await asyncio.wait_for(lock.scalar(text("SELECT 1")), self._answer)
                except Exception as error:
                    raise LostLeadershipError(self.job) from error
            work.result()  # its failure, if it failed
        finally:
            self.leading = False
            LEADER.labels(self.job).set(0)
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await work
            log.info("no longer leading %s", self.job, extra={"job": self.job})

"""`Elected` (ADR 0017): the job runs while this instance holds its lock, stops at once when the
lock's connection fails its check, and is sought again while another instance leads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from typing import cast

from services.platform.db import Database
from services.platform.leader import LEADER
from services.platform.leader import Elected
from services.platform.leader import LeaderFlag


class Lock:
    """The lock's connection: answers its check until `lost` is set."""

    def __init__(self) -> None:
        self.lost = False

    async def scalar(self, _: Any) -> int:
        if self.lost:
            raise ConnectionError("the server closed the connection")
        return 1


class Db:
    """Grants the lock to this instance from the `free`-th attempt on."""

    def __init__(self, free: int = 0) -> None:
        self.attempts = 0
        self.free = free
        self.locks: list[Lock] = []

    @asynccontextmanager
    async def leadership(self, key: int) -> AsyncIterator[Lock | None]:
        self.attempts += 1
        if self.attempts <= self.free:
            yield None
            return
        lock = Lock()
        self.locks.append(lock)
        yield lock


def leader_gauge(job: str) -> float:
    return float(LEADER.labels(job)._value.get())


async def test_the_job_runs_on_the_leader_and_stops_when_its_lock_is_lost() -> None:
    db = Db()
    running = asyncio.Event()
    stopped = asyncio.Event()

    async def lead() -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    job = Elected(cast(Database, db), "unit-a", lead, retry_seconds=0.01, check_seconds=0.01)
    await job.start()
    try:
        await asyncio.wait_for(running.wait(), 1)
        assert job.leading
        assert leader_gauge("unit-a") == 1
        db.locks[0].lost = True
        await asyncio.wait_for(stopped.wait(), 1)
        # ... and it leads again with a new lock once it gets one.
        await asyncio.sleep(0.1)
        assert len(db.locks) >= 2
    finally:
        await job.stop()
    assert leader_gauge("unit-a") == 0


async def test_a_follower_tries_again_until_the_lock_is_free() -> None:
    db = Db(free=3)
    running = asyncio.Event()

    async def lead() -> None:
        running.set()
        await asyncio.Event().wait()

    job = Elected(cast(Database, db), "unit-b", lead, retry_seconds=0.01, check_seconds=0.01)
    await job.start()
    try:
        await asyncio.wait_for(running.wait(), 1)
        assert db.attempts == 4
    finally:
        await job.stop()
    assert not job.leading


class _Job:
    leading = LeaderFlag("test-flagged-job")


def test_a_leader_flag_is_per_instance_and_sets_the_jobs_gauge() -> None:
    first, second = _Job(), _Job()
    assert not first.leading
    first.leading = True
    assert first.leading
    assert not second.leading
    assert leader_gauge("test-flagged-job") == 1
    first.leading = False
    assert leader_gauge("test-flagged-job") == 0

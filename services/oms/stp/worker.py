"""The STP desk's worker (`desk.StpDesk`): every change of hedge orders runs here, one job at a
time, in the order the jobs were queued, so a report never overtakes the SENT of its own hedge
and the reports of one hedge apply in the order the provider sent them.

A job that fails is run again (every desk job can be repeated: it re-reads what it changes, and
a hedge order is never sent twice), at most `_ATTEMPTS` times. The orders a job works are held
in the desk's intake (`intake.Intake`) from its queueing until it has run, however it ends, so
the sweep leaves them alone meanwhile. The desk's timers (window closes, the chase, the sweep,
the price checks) are kept here too, and cancelled together when the desk stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from typing import Final
from typing import TypeVar

from services.oms.stp.intake import Intake
from services.platform.tasks import cancel_and_wait

__all__ = ["DeskWorker", "Job"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[], Awaitable[None]]

_ATTEMPTS: Final = 5
_RETRY_SECONDS: Final = 0.5
_DRAIN_SECONDS: Final = 5.0


class DeskWorker:
    """The desk's serial job queue and its timers; `start` once, `stop` at the desk's end."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake
        self._jobs: asyncio.Queue[tuple[str, Job, Sequence[str]]] = asyncio.Queue()
        self._waiting: deque[str] = deque()  # what the queued jobs are, in the queue's order
        self._task: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.work(), name="oms-stp")

    def cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    async def drain(self) -> None:
        """Waits (at most `_DRAIN_SECONDS`) for the jobs queued to have run."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._jobs.join(), _DRAIN_SECONDS)

    async def stop(self) -> None:
        """The jobs queued are run first (`drain`), then the worker ends."""
        if self._task is not None:
            await self.drain()
            await cancel_and_wait(self._task)
            self._task = None

    def queued(self) -> list[str]:
        """What the jobs waiting in the queue are, in their order."""
        return list(self._waiting)

    async def join(self) -> None:
        """Returns once every job queued has run."""
        await self._jobs.join()

    def enqueue(self, what: str, job: Job, held: Sequence[str] = ()) -> None:
        """Queues `job`; the orders it works (`held`) are the desk's until it has run (the
        sweep leaves them alone), however it ends."""
        self.intake.hold(held)
        self._waiting.append(what)
        self._jobs.put_nowait((what, job, tuple(held)))

    def later(self, delay: timedelta, what: str, job: Job) -> None:
        self.call_later(delay, partial(self.enqueue, what, job))

    def call_later(self, delay: timedelta, callback: Callable[[], None]) -> None:
        def fire() -> None:
            self._timers.discard(handle)
            callback()

        handle = asyncio.get_running_loop().call_later(delay.total_seconds(), fire)
        self._timers.add(handle)

    async def on_worker(self, what: str, work: Callable[[], Awaitable[T]]) -> T:
        """`work`'s result, done on the worker after whatever is queued; its failure is raised
        here (the caller's, not the worker's, to report)."""
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        async def job() -> None:
            try:
                done.set_result(await work())
            except Exception as error:
                done.set_exception(error)

        self.enqueue(what, job)
        return await done

    async def work(self) -> None:
        """The worker's loop (`start` runs it as a task)."""
        while True:
            what, job, held = await self._jobs.get()
            self._waiting.popleft()
            try:
                await self._run(what, job)
            finally:
                self.intake.release(held)
                self._jobs.task_done()

    async def _run(self, what: str, job: Job) -> None:
        """Runs a job, again after a failure, at most `_ATTEMPTS` times."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                await job()
                return
            except Exception:
                log.exception("STP: %s failed (attempt %d of %d)", what, attempt, _ATTEMPTS)
                if attempt < _ATTEMPTS:
                    await asyncio.sleep(_RETRY_SECONDS * attempt)

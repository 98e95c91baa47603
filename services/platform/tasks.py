"""Background tasks: how a service's workers end.

Every worker a service starts (a consumer, a writer, a clock) is an asyncio task that runs until
it is cancelled. Stopping one is always the same: cancel it, then wait until it has really ended,
so that what it held (a connection, a subscription) is given back before the caller goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any

__all__ = ["Repeating", "cancel_and_wait"]


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancels every task given (None places are skipped: a worker that was never started), then
    waits until each has ended. A task that ended by its cancellation ends quietly; one that had
    failed with another exception raises it here."""
    started = [task for task in tasks if task is not None]
    for task in started:
        task.cancel()
    for task in started:
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Repeating:
    """A pass that runs again and again until stopped: `step` runs, a failure is logged (on
    `log`, naming the job) and left to the next pass; between passes it waits `pause` seconds,
    or less when `wake()` is called (after a commit that made work due, say). `start` runs the
    passes in a task of their own, `stop` ends it."""

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[object]],
        *,
        pause: float,
        log: logging.Logger,
    ) -> None:
        self.name = name
        self._step = step
        self._pause = pause
        self._log = log
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=self.name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """The passes in the caller's task (for a job that runs only while its instance leads:
        `Elected(db, job, repeating.run)`), until cancelled."""
        while True:
            try:
                await self._step()
            except Exception:
                self._log.exception("%s: a pass failed; trying again", self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._pause)
            self._wake.clear()

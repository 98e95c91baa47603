"""cancel_and_wait: a stopped worker has really ended; a failure is not hidden."""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.platform.tasks import Repeating
from services.platform.tasks import cancel_and_wait


async def test_every_task_given_is_cancelled_and_has_ended_when_it_returns() -> None:
    ended: list[str] = []

    async def worker(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.01)  # clean-up that takes a moment must be waited for
            ended.append(name)

    tasks = [asyncio.create_task(worker(name)) for name in ("a", "b")]
    await asyncio.sleep(0)
    await cancel_and_wait(tasks[0], None, tasks[1])
    assert sorted(ended) == ["a", "b"]
    assert all(task.cancelled() for task in tasks)


async def test_a_task_that_failed_before_raises_its_error() -> None:
    async def failing() -> None:
        raise RuntimeError("broken")

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="broken"):
        await cancel_and_wait(task)


async def test_nothing_to_stop_is_fine() -> None:
    await cancel_and_wait()
    await cancel_and_wait(None)


async def test_a_repeating_pass_survives_a_failure_and_wakes_early() -> None:
    passes: list[int] = []
    woken = asyncio.Event()

    async def step() -> None:
        passes.append(len(passes))
        if len(passes) == 1:
            raise RuntimeError("the first pass fails")
        woken.set()

    repeating = Repeating("test-passes", step, pause=60.0, log=logging.getLogger("t"))
    repeating.start()
    await asyncio.sleep(0.05)
    assert passes == [0]  # failed, logged, and now waiting out its 60 s pause
    repeating.wake()
    await asyncio.wait_for(woken.wait(), 5)  # woken: the next pass at once
    await repeating.stop()
    count = len(passes)
    await asyncio.sleep(0.05)
    assert len(passes) == count  # stopped: no pass after stop

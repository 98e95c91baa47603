"""`Detached`: work a cancelled caller cannot stop halfway (issue 12 item 7)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.platform.detached import Detached


async def test_work_whose_caller_is_cancelled_runs_to_its_end() -> None:
    detached = Detached("commit")
    committing = asyncio.Event()
    commit_done = asyncio.Event()
    steps: list[str] = []

    async def work() -> str:
        steps.append("commit sent")
        committing.set()
        await commit_done.wait()  # the COMMIT in flight when the client goes away
        steps.append("handed over")
        return "order"

    caller = asyncio.create_task(detached.run(work()))
    await committing.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller

    commit_done.set()
    await detached.drain(1)

    assert steps == ["commit sent", "handed over"]
    assert detached.running == 0


async def test_the_caller_gets_the_works_result_or_its_exception() -> None:
    detached = Detached("commit")

    async def answer() -> int:
        return 42

    async def refuse() -> int:
        raise ValueError("refused")

    assert await detached.run(answer()) == 42
    with pytest.raises(ValueError, match="refused"):
        await detached.run(refuse())
    assert detached.running == 0


async def test_a_failure_no_caller_is_left_to_hear_of_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    detached = Detached("commit")
    started = asyncio.Event()
    fail = asyncio.Event()

    async def work() -> None:
        started.set()
        await fail.wait()
        raise RuntimeError("the database went away")

    caller = asyncio.create_task(detached.run(work()))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    with caplog.at_level(logging.WARNING, logger="services.platform.detached"):
        fail.set()
        await detached.drain(1)
        await asyncio.sleep(0)  # the done callbacks run on the next turn of the loop

    (record,) = [r for r in caplog.records if r.name == "services.platform.detached"]
    assert record.getMessage() == "detached work failed after its caller was cancelled"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


async def test_an_expected_answer_no_caller_heard_is_logged_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    detached = Detached("commit", expected=(LookupError,))
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.sleep(0.01)
        raise KeyError("a retry committed first")

    caller = asyncio.create_task(detached.run(work()))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    with caplog.at_level(logging.INFO, logger="services.platform.detached"):
        await detached.drain(1)
        await asyncio.sleep(0)

    (record,) = [r for r in caplog.records if r.name == "services.platform.detached"]
    assert (record.levelno, record.exc_info) == (logging.INFO, None)
    assert record.getMessage() == "detached work ended with an answer no caller heard"


async def test_drain_waits_for_the_work_still_running_and_no_longer_than_told() -> None:
    detached = Detached("commit")
    release = asyncio.Event()

    async def slow() -> None:
        await release.wait()

    callers = [asyncio.create_task(detached.run(slow())) for _ in range(3)]
    await asyncio.sleep(0)
    for caller in callers:
        caller.cancel()
    await asyncio.gather(*callers, return_exceptions=True)

    await detached.drain(0.01)  # nothing ends: drain gives up after its timeout
    assert detached.running == 3

    release.set()
    await detached.drain(1)
    assert detached.running == 0

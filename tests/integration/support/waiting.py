"""Waiting for the stack to reach a state: one `eventually` for every integration test (and
`eventually_async`, the same on an event loop).

A probe answers "not yet" with None, False or an empty collection (anything whose `len()` is 0:
a list, a tuple, a dict, a string, a protobuf repeated field), and with anything else "here it
is": `eventually` returns that value. An empty list is not yet, so `eventually(lambda:
rows(...))` waits for a row rather than returning the first, empty answer; a probe for which
"none" is the awaited state says so with a bool (`lambda: not rows(...)`, `lambda: rows(...) ==
[]`). Zero is a value like any other: a probe waiting for a count says what count it waits for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Sized
from typing import TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.2


def not_yet(value: object) -> bool:
    """Whether a probe's answer means the state is not reached yet."""
    if value is None or value is False:
        return True
    return isinstance(value, Sized) and len(value) == 0


def eventually(
    probe: Callable[[], T | None], timeout: float, what: str, every: float | None = None
) -> T:
    """The probe's first answer that is not "not yet" (see the module), asked every 0.2 s (or
    `every` s); AssertionError naming `what` when `timeout` seconds pass without one."""
    deadline = _Deadline(timeout, what)
    while (value := probe()) is None or not_yet(value):
        time.sleep(deadline.pause(every))
    return value


async def eventually_async(
    probe: Callable[[], Awaitable[T | None]],
    timeout: float,
    what: str,
    every: float | None = None,
) -> T:
    """`eventually` for a test on an event loop: the probe is awaited, and the pauses between
    its asks let the loop's other tasks run."""
    deadline = _Deadline(timeout, what)
    while (value := await probe()) is None or not_yet(value):
        await asyncio.sleep(deadline.pause(every))
    return value


class _Deadline:
    def __init__(self, timeout: float, what: str) -> None:
        self._end = time.monotonic() + timeout
        self._timeout = timeout
        self._what = what

    def pause(self, every: float | None) -> float:
        """How long to wait before the next ask; AssertionError once the time is up."""
        if time.monotonic() > self._end:
            raise AssertionError(f"not within {self._timeout} s: {self._what}")
        return POLL_SECONDS if every is None else every

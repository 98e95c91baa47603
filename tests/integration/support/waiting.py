"""Waiting for the stack to reach a state: one `eventually` for every integration test.

A probe answers "not yet" with None, False or an empty collection (anything whose `len()` is 0:
a list, a tuple, a dict, a string, a protobuf repeated field), and with anything else "here it
is": `eventually` returns that value. An empty list is not yet, so `eventually(lambda:
rows(...))` waits for a row rather than returning the first, empty answer; a probe for which
"none" is the awaited state says so with a bool (`lambda: not rows(...)`, `lambda: rows(...) ==
[]`). Zero is a value like any other: a probe waiting for a count says what count it waits for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sized
from typing import TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.2


def not_yet(value: object) -> bool:
    """Whether a probe's answer means the state is not reached yet."""
    if value is None or value is False:
        return True
    return isinstance(value, Sized) and len(value) == 0


def eventually(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """The probe's first answer that is not "not yet" (see the module), asked every 0.2 s;
    AssertionError naming `what` when `timeout` seconds pass without one."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and not not_yet(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(POLL_SECONDS)

"""The shared event consumer: what it acknowledges, retries and drops, and when it reports
changes. No NATS: a fake subscription hands out batches."""

from __future__ import annotations

import asyncio

import pytest
from nats.errors import TimeoutError as NatsTimeoutError

from services.platform.inbox import EventConsumer, UndeliverableError


class Message:
    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.outcome = ""

    async def ack(self) -> None:
        self.outcome = "ack"

    async def nak(self, delay: float | None = None) -> None:
        self.outcome = f"nak after {delay}"

    async def term(self) -> None:
        self.outcome = "term"


class Subscription:
    """Hands out the batches (an exception instead of a batch is raised), then stops."""

    def __init__(self, *batches: list[Message] | Exception) -> None:
        self.batches = list(batches)

    async def fetch(self, batch: int, timeout: float) -> list[Message]:
        if not self.batches:
            raise asyncio.CancelledError
        next_batch = self.batches.pop(0)
        if isinstance(next_batch, Exception):
            raise next_batch
        return next_batch


async def handle(message: Message) -> bool:
    if message.subject == "broken":
        raise UndeliverableError("not the subject's message")
    if message.subject == "failing":
        raise ConnectionError("PostgreSQL is away")
    return message.subject == "changes"


async def run(*batches: list[Message] | Exception) -> int:
    """Runs a consumer over the batches; how often it reported changes."""
    reported = 0

    async def on_changes() -> None:
        nonlocal reported
        reported += 1

    consumer = EventConsumer("test", "x.>", handle, on_changes=on_changes, retry_seconds=0.01)  # type: ignore[arg-type]
    with pytest.raises(asyncio.CancelledError):
        await consumer._run(Subscription(*batches))  # type: ignore[arg-type]
    return reported


async def test_applied_is_acked_failed_is_retried_broken_is_dropped() -> None:
    batch = [Message("changes"), Message("failing"), Message("broken"), Message("same")]
    assert await run(batch) == 1
    assert [m.outcome for m in batch] == ["ack", "nak after 0.01", "term", "ack"]


async def test_changes_are_reported_once_per_batch_that_had_any() -> None:
    quiet = [Message("same"), Message("failing")]
    busy = [Message("changes"), Message("changes")]
    assert await run(quiet, busy, [Message("same")]) == 1


async def test_idle_fetches_and_read_errors_do_not_stop_it() -> None:
    later = [Message("changes")]
    assert await run(NatsTimeoutError(), TimeoutError(), ConnectionError("gone"), later) == 1
    assert later[0].outcome == "ack"

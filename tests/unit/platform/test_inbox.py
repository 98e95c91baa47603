"""The shared event consumer: what it acknowledges, retries and drops, when it reports changes,
how a batch shares one transaction, and how envelopes are opened (ADR 0009). No NATS and no
PostgreSQL: a fake subscription hands out batches and a fake database records its
transactions."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import cast

import pytest
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError

from services.platform.envelope import Event
from services.platform.inbox import EventConsumer
from services.platform.inbox import Outcome
from services.platform.inbox import UndeliverableError
from services.platform.inbox import decode_known
from services.platform.inbox import decode_payload
from services.platform.metrics import REGISTRY
from tests.unit.fake_db import FakeDatabase as Database
from tests.unit.fake_db import Transaction
from tradingmesh.common.v1.events_pb2 import EnvelopedEvent
from tradingmesh.common.v1.events_pb2 import EventEnvelope
from tradingmesh.common.v1.events_pb2 import EventMetadata
from tradingmesh.oms.v1 import oms_events_pb2


class Message:
    """A message of the stream: an envelope of events named `x.<name>` (headlined by the last)."""

    def __init__(
        self,
        *names: str,
        data: bytes | None = None,
        pending: int = 0,
        stored: datetime | None = None,
    ) -> None:
        self.subject = f"x.{names[-1]}" if names else "x.none"
        envelope = EventEnvelope(
            envelope_id=str(uuid.uuid4()),
            events=[EnvelopedEvent(subject=f"x.{name}", payload=b"\x01") for name in names],
        )
        self.data = envelope.SerializeToString() if data is None else data
        self.outcome = ""
        # What JetStream tells each delivery: the messages behind it, and when it was stored.
        self.metadata = Msg.Metadata(
            sequence=Msg.Metadata.SequencePair(stream=1, consumer=1),
            num_pending=pending,
            num_delivered=1,
            timestamp=stored or datetime.now(UTC),
            stream="test",
            consumer="test",
        )

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


async def handle(session: Transaction, event: Event) -> Outcome:
    name = event.subject.removeprefix("x.")
    if name == "broken":
        raise UndeliverableError("not the subject's message")
    if name == "failing":
        raise ConnectionError("PostgreSQL is away")
    session.applied.append(name)
    return name == "changes"


async def run(db: Database, *batches: list[Message] | Exception) -> int:
    """Runs a consumer over the batches; how often it reported changes."""
    reported = 0

    async def on_changes() -> None:
        nonlocal reported
        reported += 1

    consumer = EventConsumer(
        "test",
        "x.>",
        db,  # type: ignore[arg-type]
        handle,  # type: ignore[arg-type]
        on_changes=on_changes,
        retry_seconds=0.01,
    )
    with pytest.raises(asyncio.CancelledError):
        await consumer._run(Subscription(*batches))  # type: ignore[arg-type]
    return reported


async def test_a_batch_is_applied_in_one_transaction_then_acked() -> None:
    db = Database()
    batch = [Message("changes"), Message("same"), Message("changes")]
    assert await run(db, batch) == 1
    assert db.committed() == [["changes", "same", "changes"]]
    assert [m.outcome for m in batch] == ["ack", "ack", "ack"]


async def test_a_failing_batch_is_rolled_back_and_applied_one_at_a_time() -> None:
    db = Database()
    batch = [Message("changes"), Message("failing"), Message("broken"), Message("same")]
    assert await run(db, batch) == 1
    assert [m.outcome for m in batch] == ["ack", "nak after 0.01", "ack", "ack"]
    # The batch's transaction rolled back; then one transaction per message, and only the
    # applied ones committed (the broken event skipped: nothing else in its envelope).
    assert db.transactions[0].end == "rollback"
    assert db.committed() == [["changes"], [], ["same"]]


async def test_an_envelopes_events_are_applied_in_order_in_its_transaction() -> None:
    db = Database()
    assert await run(db, [Message("a", "changes", "b")]) == 1
    assert db.committed() == [["a", "changes", "b"]]


async def test_a_broken_event_is_skipped_and_the_envelopes_others_apply() -> None:
    db = Database()
    batch = [Message("a", "broken", "b"), Message("c")]
    run_result = await run(db, batch)
    assert run_result == 0
    assert [m.outcome for m in batch] == ["ack", "ack"]
    assert db.committed() == [["a", "b"], ["c"]]


async def test_a_message_that_is_not_an_envelope_is_dropped() -> None:
    db = Database()
    broken = Message(data=b"\xff\xff")
    batch = [broken, Message("changes")]
    assert await run(db, batch) == 1
    assert [m.outcome for m in batch] == ["term", "ack"]
    assert db.committed() == [["changes"]]


async def test_only_the_events_the_consumer_follows_reach_its_handler() -> None:
    db = Database()
    consumer = EventConsumer("test", "x.>", cast(Any, db), cast(Any, handle), events="x.wanted")
    nothing = Message("other")
    assert not await consumer.apply(cast(Any, [Message("other", "wanted"), nothing]))
    assert db.committed() == [["wanted"]]
    assert nothing.outcome == "ack"


async def test_changes_are_reported_once_per_batch_that_had_any() -> None:
    db = Database()
    quiet = [Message("same"), Message("failing")]
    busy = [Message("changes"), Message("changes")]
    assert await run(db, quiet, busy, [Message("same")]) == 1


async def test_after_commit_steps_run_only_for_a_committed_batch() -> None:
    seen: list[str] = []

    async def remembering(session: Transaction, event: Event) -> Outcome:
        name = event.subject.removeprefix("x.")
        if name == "failing":
            raise ConnectionError("PostgreSQL is away")
        return lambda: seen.append(name)

    db = Database()
    consumer = EventConsumer("test", "x.>", db, remembering)  # type: ignore[arg-type]
    first = [Message("a"), Message("b")]
    assert await consumer.apply(first)  # type: ignore[arg-type]
    assert seen == ["a", "b"]
    # "a" ran once in the rolled-back batch and again alone: its step runs once, after that
    # commit; the failing one's never.
    second = [Message("c"), Message("failing")]
    assert await consumer.apply(second)  # type: ignore[arg-type]
    assert seen == ["a", "b", "c"]
    assert [m.outcome for m in second] == ["ack", "nak after 1.0"]


async def test_idle_fetches_and_read_errors_do_not_stop_it() -> None:
    later = [Message("changes")]
    assert (
        await run(Database(), NatsTimeoutError(), TimeoutError(), ConnectionError("gone"), later)
        == 1
    )
    assert later[0].outcome == "ack"


def lag(name: str) -> float | None:
    return REGISTRY.get_sample_value(f"tradingmesh_events_consumer_{name}", {"consumer": "test"})


async def test_the_consumers_lag_is_what_jetstream_said_of_its_last_delivery() -> None:
    stored = datetime.now(UTC) - timedelta(seconds=30)
    behind = [
        Message("same", pending=7, stored=stored - timedelta(seconds=1)),
        Message("same", pending=5, stored=stored),
    ]
    await run(Database(), behind)
    assert lag("pending") == 5
    delay = lag("delay_seconds")
    assert delay is not None
    assert 30 <= delay < 40
    consumed = REGISTRY.get_sample_value("tradingmesh_events_consumed_total", {"consumer": "test"})

    await run(Database(), NatsTimeoutError())  # a whole second with nothing waiting
    assert lag("pending") == 0
    assert lag("delay_seconds") == 0
    after = REGISTRY.get_sample_value("tradingmesh_events_consumed_total", {"consumer": "test"})
    assert consumed is not None
    assert after == consumed


async def test_stop_removes_the_subscription_so_draining_the_connection_does_not_wait() -> None:
    class PullSubscription(Subscription):
        def __init__(self) -> None:
            super().__init__()
            self.unsubscribed = False

        async def fetch(self, batch: int, timeout: float) -> list[Message]:
            await asyncio.sleep(3600)  # idle until stopped
            return []

        async def unsubscribe(self) -> None:
            self.unsubscribed = True

    subscription = PullSubscription()

    class JetStream:
        async def pull_subscribe(self, *args: object, **kwargs: object) -> PullSubscription:
            return subscription

    consumer = EventConsumer("test", "x.>", Database(), handle)  # type: ignore[arg-type]
    await consumer.start(JetStream())  # type: ignore[arg-type]
    await asyncio.sleep(0)
    await consumer.stop()
    assert subscription.unsubscribed


def test_a_payload_decodes_as_its_subjects_message_or_is_undeliverable() -> None:
    subjects = {"oms.trade.executed": oms_events_pb2.TradeExecuted}
    event = oms_events_pb2.TradeExecuted(metadata=EventMetadata(event_id="e-1"))
    data = event.SerializeToString()
    assert decode_known("oms.trade.executed", data, subjects, needs_id=True) == event
    assert decode_known("oms.order.filled", data, subjects) is None  # not a subject it uses
    with pytest.raises(UndeliverableError, match=r"not a tradingmesh\.oms\.v1\.TradeExecuted"):
        decode_payload("oms.trade.executed", b"\xff\xff", oms_events_pb2.TradeExecuted)
    anonymous = oms_events_pb2.TradeExecuted().SerializeToString()
    assert decode_payload("s", anonymous, oms_events_pb2.TradeExecuted) is not None
    with pytest.raises(UndeliverableError, match="without an id"):
        decode_payload("s", anonymous, oms_events_pb2.TradeExecuted, needs_id=True)
    assert issubclass(UndeliverableError, ValueError)  # what decoders raised before

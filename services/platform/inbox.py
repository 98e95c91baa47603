"""The consuming side of the outbox (ADR 0005, ADR 0009): a durable JetStream consumer, and the
inbox that makes each envelope count once.

A service that keeps a copy of another domain's data runs an `EventConsumer` on that domain's
subjects. Every message is an `EventEnvelope` (`platform.envelope`): the events of one committed
change. The consumer opens it and calls its handler once per event it follows (`events`, a
subject filter; by default the consumer's own), in order, with the event's subject and
serialized message (`envelope.Event`), inside the transaction it is given.

An envelope counts once: a consumer given its `inbox` schema claims the envelopes of a fetched
batch with ONE statement before the handlers run,

    CREATE TABLE <schema>.inbox (
        event_id    TEXT PRIMARY KEY,      -- the envelope's id (older rows: an event id)
        subject     TEXT NOT NULL,         -- its headline
        received_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );

and an envelope claimed before is skipped whole (its handlers do not run); while a handler
applies an event of a freshly claimed envelope, `first_time` answers True without a statement.
A consumer without an inbox leaves de-duplication to its handlers (`first_time` per event id).

Per instance (ADR 0017): where every instance of a service keeps the copy in memory, each reads
the whole stream with a durable of its own (`Settings.durable`: `risk-accounts-2`), and the
first to claim an envelope applies it to the database; the others find it claimed. Given
`elsewhere`, a handler for the events of an envelope claimed before (by another instance, or a
redelivery), it runs in the transaction instead of skipping them: it takes into memory what the
database holds now (the claim waited for the claiming transaction to commit).

The consumer applies a fetched batch in ONE transaction (one commit for up to `_BATCH`
envelopes), then runs what each handler asked to run after the commit, then acknowledges the
batch. If any handler raises, the batch's transaction is rolled back and its messages are
applied again one per transaction, each with the rules below, so a failing envelope never holds
back or undoes the others:

a message is acknowledged once its transaction commits; redelivered after `retry_seconds` when
a handler raises; dropped (with a log line) when it is not an envelope. An event whose handler
raises `UndeliverableError` (it breaks its contract and could never apply) is skipped with a log
line, and the envelope's other events apply (each in a savepoint on this path).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Final
from typing import TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.message import Message
from nats.aio.msg import Msg
from nats.js.api import AckPolicy
from nats.js.api import ConsumerConfig
from nats.js.api import DeliverPolicy
from nats.js.client import JetStreamContext
from prometheus_client import Counter
from prometheus_client import Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.db import Database
from services.platform.envelope import EnvelopeError
from services.platform.envelope import Event
from services.platform.envelope import matches
from services.platform.envelope import open_envelope
from services.platform.metrics import REGISTRY
from services.platform.outbox import schema_table
from services.platform.sql import insert_rows
from services.platform.tasks import cancel_and_wait

__all__ = [
    "AfterCommit",
    "EventConsumer",
    "EventConsumers",
    "Handler",
    "Outcome",
    "UndeliverableError",
    "claim",
    "decode_known",
    "decode_payload",
    "first_time",
]

_log = logging.getLogger(__name__)
_BATCH: Final = 100
_RETRY_SECONDS: Final = 1.0
CONSUMER_PENDING = Gauge(
    "tradingmesh_events_consumer_pending",
    "Messages waiting in JetStream behind the consumer's last delivery (0 when it is idle)",
    ["consumer"],
    registry=REGISTRY,
)
CONSUMER_DELAY = Gauge(
    "tradingmesh_events_consumer_delay_seconds",
    "Age of the newest message of the consumer's last batch when it was fetched (0 when idle)",
    ["consumer"],
    registry=REGISTRY,
)
CONSUMED = Counter(
    "tradingmesh_events_consumed",
    "Messages delivered to the consumer (each envelope once per delivery)",
    ["consumer"],
    registry=REGISTRY,
)
_CLAIMED: Final = "tradingmesh_inbox_claimed"  # session.info: the envelope being applied is fresh

AfterCommit = Callable[[], None]
# What applying an event did: False nothing changed; True something changed; a callable:
# something changed, and the callable updates what the service holds in memory once the
# transaction has committed (never before: a rolled-back change must not be seen).
Outcome = bool | AfterCommit
# Applies one event in the given transaction.
Handler = Callable[[AsyncSession, Event], Awaitable[Outcome]]


class UndeliverableError(ValueError):
    """The event breaks its contract: no redelivery can make it apply."""


_M = TypeVar("_M", bound=Message)


def decode_payload(subject: str, data: bytes, kind: type[_M], *, needs_id: bool = False) -> _M:
    """The payload of an event on `subject` as `kind`. UndeliverableError if it is not one, or,
    with `needs_id`, if it carries no `metadata.event_id` (it could not be applied once)."""
    try:
        event = kind.FromString(data)
    except DecodeError as error:
        raise UndeliverableError(f"{subject}: not a {kind.DESCRIPTOR.full_name}") from error
    metadata: Any = getattr(event, "metadata", None)
    if needs_id and not (metadata is not None and metadata.event_id):
        raise UndeliverableError(f"{subject}: an event without an id cannot be applied once")
    return event


def decode_known(
    subject: str, data: bytes, subjects: Mapping[str, type[_M]], *, needs_id: bool = False
) -> _M | None:
    """`decode_payload` for the message `subjects` names for `subject`; None for a subject the
    consumer does not use."""
    kind = subjects.get(subject)
    return None if kind is None else decode_payload(subject, data, kind, needs_id=needs_id)


async def claim(
    session: AsyncSession, schema: str, envelopes: Sequence[tuple[str, str]]
) -> set[str]:
    """Records (envelope id, headline subject) pairs in `<schema>.inbox` with one statement, in
    the session's transaction; the ids recorded now (the others were there already)."""
    if not envelopes:
        return set()
    statement, params = insert_rows(
        schema_table(schema, "inbox"),
        ("event_id", "subject"),
        [{"event_id": envelope_id, "subject": subject} for envelope_id, subject in envelopes],
        "ON CONFLICT DO NOTHING RETURNING event_id",
    )
    return {str(row[0]) for row in await session.execute(statement, params)}


async def first_time(session: AsyncSession, schema: str, event_id: str, subject: str) -> bool:
    """Whether this event is applied for the first time: True at once for an event of an
    envelope the consumer claimed fresh; otherwise records `event_id` in `<schema>.inbox` in the
    session's transaction, False if it was there already."""
    if session.info.get(_CLAIMED):
        return True
    fresh = await session.execute(
        text(
            f"INSERT INTO {schema_table(schema, 'inbox')} (event_id, subject)"
            " VALUES (:id, :subject) ON CONFLICT DO NOTHING RETURNING event_id"
        ),
        {"id": event_id, "subject": subject},
    )
    return fresh.first() is not None


def _changed(outcomes: Sequence[Outcome]) -> bool:
    """Runs the after-commit steps in order; True if any outcome changed something."""
    changed = False
    for outcome in outcomes:
        if not callable(outcome):
            changed |= outcome
            continue
        changed = True
        try:
            outcome()
        except Exception:  # committed already: the next reload of the copy puts it right
            _log.exception("updating memory after an applied event failed")
    return changed


class EventConsumer:
    """Reads `subjects` with the durable pull consumer `name` and applies each envelope's events
    that `events` follows (a subject filter, or a predicate on the subject; default:
    `subjects`) with `handle` in a transaction of `db`; an envelope with none of them is
    acknowledged without a transaction. After a
    batch in which something changed, awaits `on_changes`. `claims(subject)` tells which events
    need the inbox (default all): an envelope is claimed if any of its followed events does.
    `linger` (seconds): after a batch smaller than the maximum, wait that long before the next
    fetch, so that under a steady trickle each batch holds what arrived meanwhile (fewer
    fetches, claims and commits per event, for at most `linger` more delay). `before_commit`
    runs once per transaction after the handlers (e.g. to write what they collected with
    multi-row statements). `start` once the service's connections are open, `stop` before they
    close."""

    def __init__(
        self,
        name: str,
        subjects: str,
        db: Database,
        handle: Handler,
        *,
        events: str | Callable[[str], bool] | None = None,
        on_changes: Callable[[], Awaitable[None]] | None = None,
        retry_seconds: float = _RETRY_SECONDS,
        inbox: str | None = None,
        claims: Callable[[str], bool] = lambda subject: True,
        linger: float = 0.0,
        before_commit: Callable[[AsyncSession], Awaitable[None]] | None = None,
        elsewhere: Handler | None = None,
    ) -> None:
        self.name = name
        self.subjects = subjects
        wanted = events or subjects
        self._follows: Callable[[str], bool] = (
            wanted if callable(wanted) else lambda subject: matches(wanted, subject)
        )
        self._db = db
        self._handle = handle
        self._on_changes = on_changes
        self._retry = retry_seconds
        self._inbox = inbox
        self._claims = claims
        self._linger = linger
        self._before_commit = before_commit
        self._elsewhere = elsewhere
        self._task: asyncio.Task[None] | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None

    async def start(self, js: JetStreamContext) -> None:
        self._subscription = subscription = await js.pull_subscribe(
            self.subjects,
            durable=self.name,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, ack_wait=30
            ),
        )
        self._task = asyncio.create_task(self._run(subscription), name=self.name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self._subscription is not None:
            # Gone at once: messages fetched but not applied wait in the subscription's queue,
            # and draining the connection would wait for them (the whole drain timeout). They
            # were not acknowledged, so JetStream delivers them again.
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None

    async def _run(self, subscription: JetStreamContext.PullSubscription) -> None:
        pending = CONSUMER_PENDING.labels(self.name)
        delay = CONSUMER_DELAY.labels(self.name)
        while True:
            try:
                messages = await subscription.fetch(batch=_BATCH, timeout=1)
            except TimeoutError:  # nats-py raises its own or asyncio's when idle
                pending.set(0)  # nothing was waiting for a whole second
                delay.set(0)
                continue
            except Exception:
                _log.exception("reading events failed; retrying", extra={"consumer": self.name})
                await asyncio.sleep(self._retry)
                continue
            if messages:
                # JetStream tells each delivery how many messages wait behind it, and when its
                # message was stored: the consumer's lag, for free.
                newest = messages[-1].metadata
                pending.set(newest.num_pending)
                delay.set(max(time.time() - newest.timestamp.timestamp(), 0.0))
                CONSUMED.labels(self.name).inc(len(messages))
            changed = await self.apply(messages)
            if changed and self._on_changes is not None:
                await self._on_changes()
            if self._linger and len(messages) < _BATCH:
                # Let the next batch gather: one fetch, claim and commit for what arrives in
                # the meantime rather than one per envelope.
                await asyncio.sleep(self._linger)

    def _open(self, message: Msg) -> tuple[str, list[Event]]:
        """The envelope's id (as the inbox's UUID column gives it back) and the events of it
        this consumer follows."""
        envelope_id, events = open_envelope(message.data)
        return _canonical(envelope_id), [e for e in events if self._follows(e.subject)]

    async def apply(self, messages: Sequence[Msg]) -> bool:
        """Applies a batch (see the module doc); True if anything changed."""
        if messages:
            try:
                opened = [self._open(message) for message in messages]
                if not any(events for _, events in opened):  # nothing this consumer follows
                    for message in messages:
                        await message.ack()
                    return False
                async with self._db.transaction() as session:
                    fresh = await self._claim(session, opened, messages)
                    outcomes: list[Outcome] = []
                    for envelope_id, events in opened:
                        if envelope_id in fresh:  # once, also if delivered twice in a batch
                            fresh.discard(envelope_id)
                            outcomes += await self._apply_events(session, events)
                        elif self._elsewhere is not None and events:
                            outcomes += await self._apply_elsewhere(session, events)
                    if self._before_commit is not None:
                        await self._before_commit(session)
            except Exception:
                _log.info(
                    "a batch of events failed; applying them one at a time",
                    extra={"consumer": self.name, "events": len(messages)},
                )
            else:
                changed = _changed(outcomes)
                for message in messages:
                    await message.ack()
                return changed
        changed = False
        for message in messages:
            changed |= await self._deliver(message)
        return changed

    async def _claim(
        self,
        session: AsyncSession,
        opened: Sequence[tuple[str, list[Event]]],
        messages: Sequence[Msg],
    ) -> set[str]:
        """The envelopes of the batch to apply: those with events to apply, claimed fresh in the
        inbox if the consumer has one (an envelope with nothing to claim is applied as is)."""
        wanted = {envelope_id for envelope_id, events in opened if events}
        if self._inbox is None:
            return wanted
        claimable = [
            (envelope_id, message.subject)
            for (envelope_id, events), message in zip(opened, messages, strict=True)
            if _is_uuid(envelope_id) and any(self._claims(e.subject) for e in events)
        ]
        fresh = await claim(session, self._inbox, claimable)
        claimed = {envelope_id for envelope_id, _ in claimable}
        return {e for e in wanted if e in fresh or e not in claimed}

    async def _apply_events(
        self,
        session: AsyncSession,
        events: Sequence[Event],
        *,
        savepoints: bool = False,
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        session.info[_CLAIMED] = self._inbox is not None
        try:
            for event in events:
                if not savepoints:
                    outcomes.append(await self._handle(session, event))
                    continue
                try:
                    async with session.begin_nested():
                        outcomes.append(await self._handle(session, event))
                except UndeliverableError:
                    _log.exception(
                        "an event breaks its contract; skipped",
                        extra={"consumer": self.name, "subject": event.subject},
                    )
        finally:
            session.info.pop(_CLAIMED, None)
        return outcomes

    async def _apply_elsewhere(
        self, session: AsyncSession, events: Sequence[Event]
    ) -> list[Outcome]:
        """The events of an envelope claimed before, through `elsewhere` (see the module doc)."""
        assert self._elsewhere is not None
        return [await self._elsewhere(session, event) for event in events]

    async def _deliver(self, message: Msg) -> bool:
        extra = {"consumer": self.name, "subject": message.subject}
        try:
            opened = self._open(message)
        except EnvelopeError:
            _log.exception("a message is not an event envelope; dropped", extra=extra)
            await message.term()
            return False
        if not opened[1]:  # nothing this consumer follows
            await message.ack()
            return False
        try:
            async with self._db.transaction() as session:
                fresh = await self._claim(session, [opened], [message])
                if opened[0] in fresh:
                    outcomes = await self._apply_events(session, opened[1], savepoints=True)
                elif self._elsewhere is not None:
                    outcomes = await self._apply_elsewhere(session, opened[1])
                else:
                    outcomes = []
                if self._before_commit is not None:
                    await self._before_commit(session)
        except Exception:
            _log.exception("applying an event failed; it will be redelivered", extra=extra)
            await message.nak(delay=self._retry)
            return False
        changed = _changed(outcomes)
        await message.ack()
        return changed


def _canonical(envelope_id: str) -> str:
    """An id as the inbox's UUID column gives it back (lower case, hyphenated)."""
    try:
        return str(uuid.UUID(envelope_id))
    except ValueError:
        return envelope_id


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class EventConsumers:
    """A part that keeps several consumers (its `consumers`), started and stopped together."""

    consumers: Sequence[EventConsumer]

    async def start(self, js: JetStreamContext) -> None:
        for consumer in self.consumers:
            await consumer.start(js)

    async def stop(self) -> None:
        for consumer in self.consumers:
            await consumer.stop()

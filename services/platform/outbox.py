"""The transactional outbox (ADR 0005, ADR 0009): a change and its events commit together.

A handler calls `add_event(session, schema, subject, event)` inside the change's transaction;
the transaction's events for `schema` are collected in an `envelope.Envelope` and written as ONE
row of `<schema>.outbox` just before the commit (a SQLAlchemy `before_commit` hook), so they are
published only if the transaction commits, as one message. A change written as one statement
(`sql.one_statement`) puts its envelope row in that statement (`envelope_write`) and tells the
session (`written`).

Publishing: after the commit, the session's envelopes are handed to the schema's relay in this
process (`OutboxRelay`, registered at its start), which publishes them at once, without reading
them back, with `Nats-Msg-Id` = the envelope id, and marks them sent a batch at a time (one
UPDATE every `mark_seconds`). What no hand-off published (the process stopped after the commit,
NATS was away) its poll finds: unsent rows older than `grace_seconds`, in order. A row published
but not yet marked when the process dies is published again after the restart; JetStream's
duplicate window drops it, and consumers de-duplicate by envelope id anyway. Several replicas may
run relays: a row may then go out twice, never not at all.

Acknowledgements of a batch are awaited together. Rows reach the stream in commit order, except
that a row whose publication failed goes out later through the poll, so consumers that keep
copies apply a change only if it is newer than their copy (by version), never by arrival order.

Retention: the relay deletes rows sent more than `keep` ago (default 7 days), at most every
`prune_seconds`, in batches. After publication an event lives in its JetStream stream; the
outbox row only has to outlive JetStream's duplicate window (2 minutes) and an operator's look
at recent traffic. Unsent rows are never deleted.

The table each schema needs (created by that service's migration); `event_id` holds the
envelope's id:

    CREATE TABLE <schema>.outbox (
        position    BIGSERIAL PRIMARY KEY,
        event_id    UUID NOT NULL UNIQUE,
        subject     TEXT NOT NULL,
        payload     BYTEA NOT NULL,
        created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
        sent_at     TIMESTAMPTZ
    );
    CREATE INDEX outbox_unsent ON <schema>.outbox (position) WHERE sent_at IS NULL;
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Final

from google.protobuf.message import Message
from nats.js.api import PubAck
from nats.js.client import JetStreamContext
from prometheus_client import Counter
from prometheus_client import Gauge
from sqlalchemy import event
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from services.platform.bus import MSG_ID_HEADER
from services.platform.db import Database
from services.platform.envelope import Envelope
from services.platform.envelope import Sealed
from services.platform.metrics import REGISTRY
from services.platform.sql import Write
from services.platform.tasks import cancel_and_wait
from tradingmesh.common.v1.events_pb2 import EventMetadata
from tradingmesh.common.v1.types_pb2 import Actor

__all__ = [
    "OutboxRelay",
    "RelayPace",
    "add_event",
    "committed",
    "envelope_write",
    "event_metadata",
    "event_write",
    "headline_kinds",
    "new_envelope",
    "pending",
    "schema_table",
    "written",
]

_log = logging.getLogger(__name__)
_ID_LIMIT: Final = 128  # correlation and causation ids (common/v1 EventMetadata)


def event_metadata(
    producer: str,
    actor: Actor,
    at: datetime,
    *,
    version: int = 0,
    correlation_id: str = "",
    causation_id: str = "",
) -> EventMetadata:
    """The metadata of one event (ADR 0005): a new event id, when it happened, who produced it
    and who caused it, the aggregate's version after the change, and the ids that tie it to the
    request (`correlation_id`, cut to the contract's 128 characters) and to the event it
    answers (`causation_id`)."""
    metadata = EventMetadata(
        event_id=str(uuid.uuid4()),
        producer=producer,
        correlation_id=correlation_id[:_ID_LIMIT],
        causation_id=causation_id[:_ID_LIMIT],
        aggregate_version=version,
    )
    metadata.actor.CopyFrom(actor)
    metadata.occurred_at.FromDatetime(at)
    return metadata


PUBLISHED = Counter(
    "tradingmesh_outbox_published",
    "Envelopes the relay published: at once after their commit (hand-off) or found by its poll",
    ["schema", "path"],
    registry=REGISTRY,
)
UNSENT_AGE = Gauge(
    "tradingmesh_outbox_oldest_unsent_age_seconds",
    "Age of the oldest outbox row that its hand-off did not publish, at the relay's last poll",
    ["schema"],
    registry=REGISTRY,
)
_SCHEMA: Final = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_RETRY_SECONDS: Final = 2.0
_PRUNE_BATCH: Final = 5000
_PENDING: Final = "tradingmesh_outbox_pending"  # session.info: schema -> Envelope
_WRITTEN: Final = "tradingmesh_outbox_written"  # session.info: [(schema, Sealed)]

# Per schema, the producer's kinds of event from the most to the least significant (the
# envelope's headline, `envelope.Envelope`); and the relay of this process, if one runs.
_KINDS: dict[str, tuple[str, ...]] = {}
_RELAYS: dict[str, OutboxRelay] = {}


def schema_table(schema: str, table: str = "outbox") -> str:
    """`<schema>.<table>`, for a schema name that is safe to put in SQL."""
    if not _SCHEMA.fullmatch(schema):
        raise ValueError(f"{schema!r} is not a schema name")
    return f"{schema}.{table}"


def headline_kinds(schema: str, kinds: Sequence[str]) -> None:
    """Names a producer's kinds of event, most significant first (subject prefixes such as
    "oms.trade."), for the headline of its envelopes."""
    _KINDS[schema] = tuple(kinds)


def new_envelope(schema: str) -> Envelope:
    return Envelope(_KINDS.get(schema, ()))


def envelope_write(schema: str, sealed: Sealed, *, when: str = "") -> Write:
    """The outbox row of a sealed envelope, as a write (for `sql.one_statement`); with `when`
    (an SQL condition, e.g. on another write of the statement), written only if it holds. Tell
    the session with `written` (once it is known to be written) so that the relay publishes it
    after the commit."""
    params = {"event_id": sealed.envelope_id, "subject": sealed.subject, "payload": sealed.payload}
    columns = f"INSERT INTO {schema_table(schema)} (event_id, subject, payload)"
    if when:
        return Write(f"{columns} SELECT :event_id, :subject, :payload WHERE {when}", params)
    return Write(f"{columns} VALUES (:event_id, :subject, :payload)", params)


def event_write(
    schema: str, subject: str, event: Message, *, when: str = ""
) -> tuple[Write, Sealed]:
    """The outbox row of an envelope holding `event` alone, as a write (`envelope_write`); the
    event is checked against its contract here. Tell the session with `written`."""
    envelope = new_envelope(schema)
    envelope.add(subject, event)
    sealed = envelope.seal()
    return envelope_write(schema, sealed, when=when), sealed


def committed(schema: str, sealed: Sealed) -> None:
    """Hands an envelope whose row has committed (a statement that committed by itself) to the
    schema's relay in this process, which publishes it at once."""
    relay = _RELAYS.get(schema)
    if relay is not None:
        relay.hand_off(sealed)


def written(session: AsyncSession, schema: str, sealed: Sealed) -> None:
    """Records that the session's transaction wrote `sealed` to `<schema>.outbox`: the relay
    publishes it once the transaction has committed."""
    session.info.setdefault(_WRITTEN, []).append((schema, sealed))


async def add_event(session: AsyncSession, schema: str, subject: str, event: Message) -> str:
    """Adds `event` to the transaction's envelope for `schema` (checked against its contract
    now, `bus.encode_event`), written to `<schema>.outbox` before the commit; returns its id."""
    pending: dict[str, Envelope] = session.info.setdefault(_PENDING, {})
    envelope = pending.get(schema)
    if envelope is None:
        envelope = pending[schema] = new_envelope(schema)
    return envelope.add(subject, event)


def pending(session: AsyncSession | Session) -> tuple[str, ...]:
    """The schemas whose envelope the session's transaction writes at its commit."""
    envelopes: dict[str, Envelope] = session.info.get(_PENDING, {})
    return tuple(schema for schema, envelope in envelopes.items() if envelope)


@event.listens_for(Session, "before_commit")
def _write_envelopes(session: Session) -> None:
    pending: dict[str, Envelope] | None = session.info.pop(_PENDING, None)
    for schema, envelope in (pending or {}).items():
        if not envelope:
            continue
        sealed = envelope.seal()
        insert = envelope_write(schema, sealed)
        session.execute(text(insert.sql), dict(insert.params))
        session.info.setdefault(_WRITTEN, []).append((schema, sealed))


@event.listens_for(Session, "after_commit")
def _hand_off(session: Session) -> None:
    for schema, sealed in session.info.pop(_WRITTEN, ()):
        committed(schema, sealed)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_WRITTEN, None)


@dataclass(frozen=True)
class RelayPace:
    """How an `OutboxRelay` paces itself; the defaults are production's."""

    batch: int = 100
    """Rows at the most per publication (a poll, or the hand-offs taken at once)."""
    idle_seconds: float = 1.0
    """Between polls for unsent rows."""
    grace_seconds: float = 3.0
    """How old an unsent row is before a poll takes it (younger, its hand-off is under way)."""
    mark_seconds: float = 1.0
    """How long published ids gather before one UPDATE marks them sent."""
    ack_seconds: float = 5.0
    """How long a batch's acknowledgements are awaited."""
    keep: timedelta = timedelta(days=7)
    """How long sent rows are kept (beyond JetStream's duplicate window)."""
    prune_seconds: float = 600.0
    """Between prunes of sent rows older than `keep`."""


class OutboxRelay:
    """Publishes a schema's envelopes to JetStream (the module doc): those its process committed,
    handed off after each commit, and any unsent row older than `grace_seconds` (polled every
    `idle_seconds`). `start` at service start, `stop` at shutdown; one relay per schema and
    process."""

    def __init__(
        self,
        db: Database,
        jetstream: JetStreamContext,
        schema: str,
        pace: RelayPace = RelayPace(),
    ) -> None:
        self._db = db
        self._js = jetstream
        self.schema = schema
        self._table = schema_table(schema)
        self.pace = pace
        self._pruned_at: float | None = None
        self._polled_at = 0.0
        self._handed: deque[Sealed] = deque()
        self._sent: list[str] = []  # envelope ids published, not yet marked
        self._marked_at = time.monotonic()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def hand_off(self, sealed: Sealed) -> None:
        """An envelope its transaction committed: published at once (called after the commit)."""
        self._handed.append(sealed)
        self._wakeup.set()

    async def _publish(self, rows: Sequence[tuple[str, str, bytes]]) -> tuple[list[str], Any]:
        """Publishes (envelope id, subject, payload) rows back to back and awaits their
        acknowledgements together; the ids acknowledged, and the first failure (or None)."""
        pending: list[tuple[str, asyncio.Future[PubAck]]] = []
        failure: BaseException | None = None
        for envelope_id, subject, payload in rows:
            try:
                acknowledged = await self._js.publish_async(
                    subject, payload, headers={MSG_ID_HEADER: envelope_id}
                )
            except Exception as error:
                failure = error
                break
            pending.append((envelope_id, acknowledged))
        if pending:
            await asyncio.wait([ack for _, ack in pending], timeout=self.pace.ack_seconds)
        sent: list[str] = []
        for envelope_id, ack in pending:
            if not ack.done():
                ack.cancel()
                failure = failure or TimeoutError("no acknowledgement from JetStream")
            elif ack.cancelled() or ack.exception() is not None:
                failure = failure or ack.exception() or TimeoutError("cancelled")
            else:
                sent.append(envelope_id)
        return sent, failure

    async def publish_handed(self) -> int:
        """Publishes what was handed off (a batch); returns how many were acknowledged. What
        failed stays unsent in the table, for the poll."""
        rows: list[tuple[str, str, bytes]] = []
        while self._handed and len(rows) < self.pace.batch:
            sealed = self._handed.popleft()
            rows.append((sealed.envelope_id, sealed.subject, sealed.payload))
        if not rows:
            return 0
        sent, failure = await self._publish(rows)
        self._sent.extend(sent)
        PUBLISHED.labels(self.schema, "hand-off").inc(len(sent))
        if failure is not None:
            _log.warning(
                "publishing envelopes failed; the poll sends them",
                extra={"table": self._table, "error": str(failure)},
            )
        return len(sent)

    async def publish_pending(self) -> int:
        """Publishes one batch of unsent rows older than `grace_seconds`, in order, and marks
        them sent; returns how many. Rows written moments ago are left to their hand-off."""
        async with self._db.lone_writes() as session:
            found = (
                await session.execute(
                    text(
                        f"SELECT event_id, subject, payload, created_at FROM {self._table}"
                        " WHERE sent_at IS NULL"
                        " AND created_at < now() - make_interval(secs => :grace)"
                        " ORDER BY position LIMIT :batch"
                    ),
                    {"batch": self.pace.batch, "grace": self.pace.grace_seconds},
                )
            ).all()
        rows = [(str(event_id), subject, bytes(payload)) for event_id, subject, payload, _ in found]
        # What the hand-offs did not publish: its age is the relay's backlog (0: none).
        oldest = found[0][3].timestamp() if found else None
        UNSENT_AGE.labels(self.schema).set(time.time() - oldest if oldest is not None else 0.0)
        if not rows:
            return 0
        sent, failure = await self._publish(rows)
        self._sent.extend(sent)
        PUBLISHED.labels(self.schema, "poll").inc(len(sent))
        await self.mark_sent()
        if failure is not None:
            raise failure
        return len(sent)

    async def mark_sent(self) -> int:
        """Marks what was published since the last mark, with one statement."""
        self._marked_at = time.monotonic()
        if not self._sent:
            return 0
        ids, self._sent = self._sent, []
        try:
            async with self._db.lone_writes() as session:
                await session.execute(
                    text(f"UPDATE {self._table} SET sent_at = now() WHERE event_id = ANY(:ids)"),
                    {"ids": ids},
                )
        except BaseException:
            self._sent[:0] = ids  # marked at the next pass
            raise
        return len(ids)

    async def prune(self) -> int:
        """Deletes rows sent more than `keep` ago, a batch per transaction; returns how many."""
        deleted = 0
        while True:
            async with self._db.transaction() as session:
                result = await session.execute(
                    text(
                        f"DELETE FROM {self._table} WHERE position IN (SELECT position FROM"
                        f" {self._table} WHERE sent_at < now() - make_interval(secs => :keep)"
                        " ORDER BY sent_at LIMIT :batch)"
                    ),
                    {"keep": self.pace.keep.total_seconds(), "batch": _PRUNE_BATCH},
                )
            count = int(result.rowcount)  # type: ignore[attr-defined]
            deleted += count
            if count < _PRUNE_BATCH:
                return deleted

    async def _prune_when_due(self) -> None:
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < self.pace.prune_seconds:
            return
        self._pruned_at = now
        deleted = await self.prune()
        if deleted:
            _log.info("outbox rows pruned", extra={"table": self._table, "rows": deleted})

    async def _pass(self) -> None:
        """One pass: the hand-offs, the mark when due, the poll and the prune when due."""
        while self._handed:
            await self.publish_handed()
        now = time.monotonic()
        if self._sent and now - self._marked_at >= self.pace.mark_seconds:
            await self.mark_sent()
        if now - self._polled_at >= self.pace.idle_seconds:
            self._polled_at = now
            while await self.publish_pending() >= self.pace.batch:
                pass
            await self._prune_when_due()

    async def run(self) -> None:
        """Publishes until cancelled; a failure (NATS or PostgreSQL away) is logged and retried."""
        while True:
            self._wakeup.clear()
            try:
                await self._pass()
            except Exception:
                _log.exception("outbox relay failed; retrying", extra={"table": self._table})
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            if self._handed:
                continue
            wait = self.pace.idle_seconds - (time.monotonic() - self._polled_at)
            if self._sent:
                wait = min(wait, self.pace.mark_seconds - (time.monotonic() - self._marked_at))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), max(wait, 0.0))

    async def start(self) -> None:
        _RELAYS[self.schema] = self
        self._task = asyncio.create_task(self.run(), name=f"outbox-relay {self._table}")

    async def stop(self) -> None:
        if _RELAYS.get(self.schema) is self:
            del _RELAYS[self.schema]
        if self._task is None:
            return
        await cancel_and_wait(self._task)
        self._task = None
        with contextlib.suppress(Exception):  # what was published is marked; the rest polled
            while self._handed:
                await self.publish_handed()
            await self.mark_sent()

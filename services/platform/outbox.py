"""The transactional outbox (ADR 0005): a change and its events commit together.

A handler calls `add_event(session, schema, subject, event)` inside the change's transaction; the
event becomes a row of `<schema>.outbox` and is published only if that transaction commits. The
`OutboxRelay` task of the service publishes unsent rows in order to JetStream, with
`Nats-Msg-Id` = the event id, and marks them sent. A row published but not yet marked when the
process dies is published again after the restart; JetStream's duplicate window drops it, and
consumers de-duplicate by event id anyway. Several replicas may run relays: each batch is taken
with `FOR UPDATE SKIP LOCKED`, so no two publish the same rows at once.

A batch is written to NATS back to back and its acknowledgements awaited together. Rows reach
the stream in outbox order; only when an acknowledgement fails (NATS restarting) can a later row
of the batch be in the stream before that row's retry, so consumers that keep copies apply a
change only if it is newer than their copy (by version), never by arrival order alone.

Retention: the relay deletes rows sent more than `keep` ago (default 7 days), at most every
`prune_seconds`, in batches. After publication an event lives in its JetStream stream; the
outbox row only has to outlive JetStream's duplicate window (2 minutes) and an operator's look
at recent traffic. Unsent rows are never deleted.

The table each schema needs (created by that service's migration):

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
from datetime import timedelta
from typing import Final

from google.protobuf.message import Message
from nats.js.api import PubAck
from nats.js.client import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.bus import MSG_ID_HEADER, encode_event
from services.platform.db import Database
from services.platform.sql import Write

__all__ = ["OutboxRelay", "add_event", "schema_table"]

_log = logging.getLogger(__name__)
_SCHEMA: Final = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_BATCH: Final = 100
_IDLE_SECONDS: Final = 0.5
_RETRY_SECONDS: Final = 2.0
_ACK_SECONDS: Final = 5.0
_KEEP: Final = timedelta(days=7)
_PRUNE_SECONDS: Final = 600.0
_PRUNE_BATCH: Final = 5000


def schema_table(schema: str, table: str = "outbox") -> str:
    """`<schema>.<table>`, for a schema name that is safe to put in SQL."""
    if not _SCHEMA.fullmatch(schema):
        raise ValueError(f"{schema!r} is not a schema name")
    return f"{schema}.{table}"


def event_write(schema: str, subject: str, event: Message) -> tuple[Write, str]:
    """The outbox row of `event` as a write (for `sql.one_statement`), and the event's id.

    The event is checked against its contract here (`bus.encode_event`), so a malformed event
    fails the change that produced it rather than the relay later.
    """
    payload, headers = encode_event(event)
    event_id = headers[MSG_ID_HEADER]
    write = Write(
        f"INSERT INTO {schema_table(schema)} (event_id, subject, payload)"
        " VALUES (:event_id, :subject, :payload)",
        {"event_id": event_id, "subject": subject, "payload": payload},
    )
    return write, event_id


async def add_event(session: AsyncSession, schema: str, subject: str, event: Message) -> str:
    """Writes `event` to `<schema>.outbox` in the session's transaction (`event_write`);
    returns its id."""
    write, event_id = event_write(schema, subject, event)
    await session.execute(text(write.sql), dict(write.params))
    return event_id


class OutboxRelay:
    """Publishes a schema's unsent outbox rows to JetStream; `start` at service start, `stop`
    at shutdown. `wake()` after a commit shortens the wait; without it rows go out within
    `idle_seconds`."""

    def __init__(
        self,
        db: Database,
        jetstream: JetStreamContext,
        schema: str,
        *,
        batch: int = _BATCH,
        idle_seconds: float = _IDLE_SECONDS,
        ack_seconds: float = _ACK_SECONDS,
        keep: timedelta = _KEEP,
        prune_seconds: float = _PRUNE_SECONDS,
    ) -> None:
        self._db = db
        self._js = jetstream
        self._table = schema_table(schema)
        self._batch = batch
        self._idle = idle_seconds
        self._ack_seconds = ack_seconds
        self.keep = keep
        self._prune_seconds = prune_seconds
        self._pruned_at: float | None = None
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wakeup.set()

    async def publish_pending(self) -> int:
        """Publishes one batch of unsent rows in order and marks them sent; returns how many.

        The batch's messages are written to NATS back to back and their acknowledgements
        awaited together (one round trip for the batch rather than one per row); JetStream
        stores them in the order written. A row whose acknowledgement failed or did not come
        within `ack_seconds` stays unsent and goes out again at the next pass."""
        async with self._db.transaction() as session:
            rows = (
                await session.execute(
                    text(
                        f"SELECT position, event_id, subject, payload FROM {self._table}"
                        " WHERE sent_at IS NULL ORDER BY position"
                        " LIMIT :batch FOR UPDATE SKIP LOCKED"
                    ),
                    {"batch": self._batch},
                )
            ).all()
            pending: list[tuple[int, asyncio.Future[PubAck]]] = []
            failure: BaseException | None = None
            for position, event_id, subject, payload in rows:
                try:
                    acknowledged = await self._js.publish_async(
                        subject, bytes(payload), headers={MSG_ID_HEADER: str(event_id)}
                    )
                except Exception as error:
                    failure = error
                    break
                pending.append((position, acknowledged))
            if pending:
                await asyncio.wait([ack for _, ack in pending], timeout=self._ack_seconds)
            sent: list[int] = []
            for position, ack in pending:
                if not ack.done():
                    ack.cancel()
                    failure = failure or TimeoutError("no acknowledgement from JetStream")
                elif ack.cancelled() or ack.exception() is not None:
                    failure = failure or ack.exception() or TimeoutError("cancelled")
                else:
                    sent.append(position)
            # Whatever was acknowledged is marked (and committed), even if another one failed.
            if sent:
                await session.execute(
                    text(
                        f"UPDATE {self._table} SET sent_at = now() WHERE position = ANY(:positions)"
                    ),
                    {"positions": sent},
                )
        if failure is not None:
            raise failure
        return len(sent)

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
                    {"keep": self.keep.total_seconds(), "batch": _PRUNE_BATCH},
                )
            count = int(result.rowcount)  # type: ignore[attr-defined]
            deleted += count
            if count < _PRUNE_BATCH:
                return deleted

    async def _prune_when_due(self) -> None:
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < self._prune_seconds:
            return
        self._pruned_at = now
        deleted = await self.prune()
        if deleted:
            _log.info("outbox rows pruned", extra={"table": self._table, "rows": deleted})

    async def run(self) -> None:
        """Publishes until cancelled; a failure (NATS or PostgreSQL away) is logged and retried."""
        while True:
            try:
                published = await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("outbox relay failed; retrying", extra={"table": self._table})
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            if published >= self._batch:
                continue  # more may be waiting
            try:
                await self._prune_when_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("pruning the outbox failed", extra={"table": self._table})
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._idle)

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"outbox-relay {self._table}")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

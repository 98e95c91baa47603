"""The consuming side of the outbox (ADR 0005): a durable JetStream consumer, and the inbox that
makes each event count once.

A service that keeps a copy of another domain's data runs an `EventConsumer` on that domain's
subjects. Its handler applies one message in the transaction it is given and calls `first_time`
there first, so a redelivered event (JetStream delivers at least once) changes nothing:

    CREATE TABLE <schema>.inbox (
        event_id    UUID PRIMARY KEY,
        subject     TEXT NOT NULL,
        received_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );

A consumer given its `inbox` schema claims a batch's events in that inbox with ONE statement
before the handlers run (`claim`; the event id is the message's `Nats-Msg-Id`, which the outbox
relay sets to the event's id); `first_time` then answers for them from the claim, without a
statement per event. `claims(subject)` limits the claim to the subjects the handler applies.

The consumer applies a fetched batch in ONE transaction (one commit for up to `_BATCH` events
instead of one each: the consumers keep up with the trading core's event rate), then runs what
each handler asked to run after the commit, then acknowledges the batch. If any handler raises,
the batch's transaction is rolled back and its messages are applied again one per transaction,
each with the rules below, so a failing event never holds back or undoes the others:

a message is acknowledged once its transaction commits; redelivered after `retry_seconds` when
its handler raises; and dropped (with a log line) when it raises `UndeliverableError`, i.e.
breaks its contract and could never apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.bus import MSG_ID_HEADER
from services.platform.db import Database
from services.platform.outbox import schema_table
from services.platform.sql import insert_rows

__all__ = [
    "AfterCommit",
    "EventConsumer",
    "Handler",
    "Outcome",
    "UndeliverableError",
    "claim",
    "first_time",
]

_log = logging.getLogger(__name__)
_BATCH: Final = 100
_RETRY_SECONDS: Final = 1.0
_CLAIMS: Final = "tradingmesh_inbox_claims"  # session.info: (schema, event id) -> fresh

AfterCommit = Callable[[], None]
# What applying a message did: False nothing changed; True something changed; a callable:
# something changed, and the callable updates what the service holds in memory once the
# transaction has committed (never before: a rolled-back change must not be seen).
Outcome = bool | AfterCommit
# Applies one message in the given transaction.
Handler = Callable[[AsyncSession, Msg], Awaitable[Outcome]]


class UndeliverableError(Exception):
    """The message breaks its contract: no redelivery can make it apply."""


def _canonical(event_id: str) -> str:
    """An event id as the inbox's UUID column gives it back (lower case, hyphenated)."""
    try:
        return str(uuid.UUID(event_id))
    except ValueError:
        return event_id


async def claim(session: AsyncSession, schema: str, events: Sequence[tuple[str, str]]) -> None:
    """Records (event id, subject) pairs in `<schema>.inbox` with one statement, in the
    session's transaction; `first_time` answers for each of them from here on."""
    if not events:
        return
    statement, params = insert_rows(
        schema_table(schema, "inbox"),
        ("event_id", "subject"),
        [{"event_id": event_id, "subject": subject} for event_id, subject in events],
        "ON CONFLICT DO NOTHING RETURNING event_id",
    )
    fresh = {str(row[0]) for row in await session.execute(statement, params)}
    claims: dict[tuple[str, str], bool] = session.info.setdefault(_CLAIMS, {})
    for event_id, _ in events:
        claims.setdefault((schema, event_id), event_id in fresh)


async def first_time(session: AsyncSession, schema: str, event_id: str, subject: str) -> bool:
    """Records `event_id` in `<schema>.inbox` in the session's transaction; False if it was
    there already (the event was applied before). An event `claim`ed in this transaction is
    answered from the claim, once (asked again, it was seen)."""
    claims = session.info.get(_CLAIMS)
    if claims:
        claimed = claims.pop((schema, _canonical(event_id)), None)
        if claimed is not None:
            return bool(claimed)
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
    """Reads `subjects` with the durable pull consumer `name` and applies each message with
    `handle` in a transaction of `db`; after a batch in which something changed, awaits
    `on_changes`. `start` once the service's connections are open, `stop` before they close."""

    def __init__(
        self,
        name: str,
        subjects: str,
        db: Database,
        handle: Handler,
        *,
        on_changes: Callable[[], Awaitable[None]] | None = None,
        retry_seconds: float = _RETRY_SECONDS,
        inbox: str | None = None,
        claims: Callable[[str], bool] = lambda subject: True,
    ) -> None:
        self.name = name
        self.subjects = subjects
        self._db = db
        self._handle = handle
        self._on_changes = on_changes
        self._retry = retry_seconds
        self._inbox = inbox
        self._claims = claims
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
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._subscription is not None:
            # Gone at once: messages fetched but not applied wait in the subscription's queue,
            # and draining the connection would wait for them (the whole drain timeout). They
            # were not acknowledged, so JetStream delivers them again.
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None

    async def _run(self, subscription: JetStreamContext.PullSubscription) -> None:
        while True:
            try:
                messages = await subscription.fetch(batch=_BATCH, timeout=1)
            except TimeoutError:  # nats-py raises its own or asyncio's when idle
                continue
            except Exception:
                _log.exception("reading events failed; retrying", extra={"consumer": self.name})
                await asyncio.sleep(self._retry)
                continue
            changed = await self.apply(messages)
            if changed and self._on_changes is not None:
                await self._on_changes()

    async def apply(self, messages: Sequence[Msg]) -> bool:
        """Applies a batch (see the module doc); True if anything changed."""
        if len(messages) > 1:
            try:
                async with self._db.transaction() as session:
                    if self._inbox is not None:
                        await claim(session, self._inbox, self._claimable(messages))
                    outcomes = [await self._handle(session, message) for message in messages]
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

    def _claimable(self, messages: Sequence[Msg]) -> list[tuple[str, str]]:
        """The (event id, subject) of each message the handler applies; a message without a
        well-formed id is left to the handler's own `first_time`."""
        events = []
        for message in messages:
            if not self._claims(message.subject):
                continue
            event_id = (message.headers or {}).get(MSG_ID_HEADER, "")
            try:
                events.append((str(uuid.UUID(event_id)), message.subject))
            except ValueError:
                continue
        return events

    async def _deliver(self, message: Msg) -> bool:
        extra = {"consumer": self.name, "subject": message.subject}
        try:
            async with self._db.transaction() as session:
                outcome = await self._handle(session, message)
        except UndeliverableError:
            _log.exception("an event breaks its contract; dropped", extra=extra)
            await message.term()
            return False
        except Exception:
            _log.exception("applying an event failed; it will be redelivered", extra=extra)
            await message.nak(delay=self._retry)
            return False
        changed = _changed([outcome])
        await message.ack()
        return changed

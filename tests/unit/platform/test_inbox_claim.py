"""A batch's envelopes claimed in the inbox with one statement, and `first_time` answering for
the events of a claimed envelope without a statement each (ADR 0009)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from services.platform.envelope import Event
from services.platform.inbox import EventConsumer
from services.platform.inbox import claim
from services.platform.inbox import first_time
from tests.unit.fake_db import FakeDatabase
from tradingmesh.common.v1.events_pb2 import EnvelopedEvent
from tradingmesh.common.v1.events_pb2 import EventEnvelope

FRESH = "6F1D3C0E-8A52-4D1B-9B7E-2C4F5A6B7D81"  # a producer's upper-case id: the same event
SEEN = str(uuid.UUID("6f1d3c0e-8a52-4d1b-9b7e-2c4f5a6b7d82"))


class Session:
    """Answers the claim with the ids PostgreSQL would return as new; counts statements."""

    def __init__(self, new_ids: set[str]) -> None:
        self.info: dict[str, Any] = {}
        self.new_ids = new_ids
        self.statements: list[str] = []

    async def execute(self, statement: Any, params: dict[str, Any]) -> Any:
        self.statements.append(str(statement))
        if "RETURNING" in str(statement) and "VALUES (:event_id_0" in str(statement):
            return [
                (uuid.UUID(v),)
                for k, v in params.items()
                if k.startswith("event_id")
                if v in self.new_ids
            ]
        return _Result(None)


class _Result:
    def __init__(self, row: Any) -> None:
        self.row = row

    def first(self) -> Any:
        return self.row


async def test_a_batch_of_envelopes_is_claimed_with_one_statement() -> None:
    session = Session(new_ids={str(uuid.UUID(FRESH))})

    fresh = await claim(
        session,  # type: ignore[arg-type]
        "risk",
        [(str(uuid.UUID(FRESH)), "oms.trade.executed"), (SEEN, "oms.order.cancelled")],
    )

    assert fresh == {str(uuid.UUID(FRESH))}
    assert len(session.statements) == 1
    assert "INSERT INTO risk.inbox (event_id, subject) VALUES" in session.statements[0]


async def test_the_events_of_a_claimed_envelope_need_no_statement_each() -> None:
    db = FakeDatabase()
    session = Session(new_ids={str(uuid.UUID(FRESH))})
    seen: list[bool] = []

    async def handle(_: object, event: Event) -> bool:
        seen.append(await first_time(session, "risk", str(uuid.uuid4()), event.subject))  # type: ignore[arg-type]
        return True

    class Db:
        @asynccontextmanager
        async def transaction(self) -> AsyncIterator[Session]:
            async with db.transaction():
                yield session

    consumer = EventConsumer("c", "oms.>", Db(), handle, inbox="risk")  # type: ignore[arg-type]
    fresh, again = _message(FRESH, 3), _message(SEEN, 2)
    assert await consumer.apply([fresh, again])  # type: ignore[list-item]

    # One claim for the batch; the fresh envelope's three events applied without a statement
    # each; the envelope seen before skipped whole.
    assert len(session.statements) == 1
    assert seen == [True, True, True]
    assert fresh.acked
    assert again.acked


async def test_first_time_outside_a_claimed_envelope_asks_the_inbox_table() -> None:
    session = Session(new_ids=set())
    assert await first_time(session, "risk", SEEN, "x") is False  # type: ignore[arg-type]
    assert len(session.statements) == 1
    assert "ON CONFLICT DO NOTHING RETURNING event_id" in session.statements[0]


class _Message:
    def __init__(self, data: bytes) -> None:
        self.subject = "oms.trade.executed"
        self.data = data
        self.acked = False

    async def ack(self) -> None:
        self.acked = True


def _message(envelope_id: str, events: int) -> _Message:
    envelope = EventEnvelope(
        envelope_id=envelope_id,
        events=[EnvelopedEvent(subject="oms.trade.executed", payload=b"\x01")] * events,
    )
    return _Message(envelope.SerializeToString())


async def test_an_envelope_claimed_elsewhere_goes_to_the_elsewhere_handler() -> None:
    """Per instance (ADR 0017): the events of an envelope another instance claimed first are
    not skipped but handed to `elsewhere`, which refreshes memory."""
    db = FakeDatabase()
    session = Session(new_ids={str(uuid.UUID(FRESH))})
    applied: list[str] = []
    refreshed: list[str] = []

    async def handle(_: object, event: Event) -> bool:
        applied.append(event.subject)
        return False

    async def elsewhere(_: object, event: Event) -> bool:
        refreshed.append(event.subject)
        return True

    class Db:
        @asynccontextmanager
        async def transaction(self) -> AsyncIterator[Session]:
            async with db.transaction():
                yield session

    consumer = EventConsumer(
        "c",
        "oms.>",
        Db(),  # type: ignore[arg-type]
        handle,
        inbox="risk",
        elsewhere=elsewhere,
    )
    fresh, claimed = _message(FRESH, 1), _message(SEEN, 2)
    assert await consumer.apply([fresh, claimed])  # type: ignore[list-item]

    assert applied == ["oms.trade.executed"]
    assert refreshed == ["oms.trade.executed"] * 2
    assert fresh.acked
    assert claimed.acked

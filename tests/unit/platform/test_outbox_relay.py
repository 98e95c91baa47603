"""The outbox relay (ADR 0009): committed envelopes are published from the hand-off without a
statement, marked sent a batch at a time, and what no hand-off published is found by the poll.
No NATS and no PostgreSQL: a fake JetStream acknowledges (or not), a fake database records the
statements."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import cast

from services.platform.envelope import Sealed
from services.platform.metrics import REGISTRY
from services.platform.outbox import OutboxRelay


class JetStream:
    """Acknowledges every publish, except on the subjects in `failing`."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.failing = failing
        self.published: list[tuple[str, bytes, dict[str, str]]] = []

    async def publish_async(
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> asyncio.Future[object]:
        ack: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if subject in self.failing:
            ack.set_exception(ConnectionError("no responders"))
        else:
            self.published.append((subject, payload, headers))
            ack.set_result(object())
        return ack


class Session:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def execute(self, statement: Any, params: dict[str, Any]) -> Any:
        self.db.statements.append((str(statement), params))
        return _Rows(self.db.unsent if "SELECT" in str(statement) else [])


class _Rows:
    def __init__(self, rows: list[tuple[str, str, bytes, datetime]]) -> None:
        self.rows = rows

    def all(self) -> list[tuple[str, str, bytes, datetime]]:
        return self.rows


class Database:
    def __init__(self, unsent: list[tuple[str, str, bytes, datetime]] | None = None) -> None:
        self.unsent = unsent or []
        self.statements: list[tuple[str, dict[str, Any]]] = []

    @asynccontextmanager
    async def lone_writes(self) -> AsyncIterator[Session]:
        yield Session(self)


def sealed(number: int, subject: str = "oms.trade.executed") -> Sealed:
    return Sealed(f"00000000-0000-4000-8000-{number:012d}", subject, b"envelope", ("e",))


def relay(db: Database, js: JetStream) -> OutboxRelay:
    return OutboxRelay(cast(Any, db), cast(Any, js), "oms")


async def test_a_hand_off_is_published_without_a_statement_and_marked_in_one() -> None:
    db, js = Database(), JetStream()
    outbox = relay(db, js)
    for number in (1, 2, 3):
        outbox.hand_off(sealed(number))

    assert await outbox.publish_handed() == 3
    assert db.statements == []
    ids = [sealed(n).envelope_id for n in (1, 2, 3)]
    assert [h["Nats-Msg-Id"] for _, _, h in js.published] == ids

    assert await outbox.mark_sent() == 3
    ((statement, params),) = db.statements
    assert statement.startswith("UPDATE oms.outbox SET sent_at = now() WHERE event_id = ANY(")
    assert params == {"ids": ids}
    assert await outbox.mark_sent() == 0  # nothing new: no statement
    assert len(db.statements) == 1


async def test_what_failed_to_publish_is_not_marked_and_left_for_the_poll() -> None:
    db, js = Database(), JetStream(failing=frozenset({"oms.order.cancelled"}))
    outbox = relay(db, js)
    outbox.hand_off(sealed(1))
    outbox.hand_off(sealed(2, "oms.order.cancelled"))

    assert await outbox.publish_handed() == 1
    await outbox.mark_sent()
    ((_, params),) = db.statements
    assert params == {"ids": [sealed(1).envelope_id]}


async def test_the_poll_publishes_old_unsent_rows_in_order_and_marks_them() -> None:
    written = datetime.now(UTC) - timedelta(seconds=42)
    rows = [(sealed(n).envelope_id, "oms.trade.executed", b"envelope", written) for n in (7, 8)]
    db, js = Database(unsent=rows), JetStream()
    outbox = relay(db, js)

    assert await outbox.publish_pending() == 2
    # The backlog the poll found: the age of its oldest row.
    age = REGISTRY.get_sample_value(
        "tradingmesh_outbox_oldest_unsent_age_seconds", {"schema": "oms"}
    )
    assert age is not None
    assert 42 <= age < 60

    (select, select_params), (update, update_params) = db.statements
    assert "WHERE sent_at IS NULL AND created_at < now() - make_interval(secs => :grace)" in select
    assert "ORDER BY position" in select
    assert select_params["grace"] == 3.0  # rows written moments ago are their hand-off's
    assert [h["Nats-Msg-Id"] for _, _, h in js.published] == [r[0] for r in rows]
    assert update.startswith("UPDATE oms.outbox SET sent_at")
    assert update_params == {"ids": [r[0] for r in rows]}

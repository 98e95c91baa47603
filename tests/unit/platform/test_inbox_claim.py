"""A batch's inbox rows claimed in one statement, and `first_time` answering from the claim."""

from __future__ import annotations

import uuid
from typing import Any

from services.platform.inbox import claim, first_time

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


async def test_a_claimed_batch_answers_first_time_without_a_statement_each() -> None:
    session = Session(new_ids={str(uuid.UUID(FRESH))})

    await claim(session, "risk", [(str(uuid.UUID(FRESH)), "oms.trade.executed"), (SEEN, "x")])  # type: ignore[arg-type]

    assert len(session.statements) == 1
    assert "INSERT INTO risk.inbox (event_id, subject) VALUES" in session.statements[0]
    assert await first_time(session, "risk", FRESH, "oms.trade.executed") is True  # type: ignore[arg-type]
    assert await first_time(session, "risk", SEEN, "x") is False  # type: ignore[arg-type]
    assert len(session.statements) == 1


async def test_an_event_asked_again_or_not_claimed_goes_to_the_inbox_table() -> None:
    session = Session(new_ids={SEEN})
    await claim(session, "risk", [(SEEN, "x")])  # type: ignore[arg-type]

    assert await first_time(session, "risk", SEEN, "x") is True  # type: ignore[arg-type]
    # Asked again in the same batch (a duplicate delivery): the table decides (here: seen).
    assert await first_time(session, "risk", SEEN, "x") is False  # type: ignore[arg-type]
    assert len(session.statements) == 2
    assert "ON CONFLICT DO NOTHING RETURNING event_id" in session.statements[1]

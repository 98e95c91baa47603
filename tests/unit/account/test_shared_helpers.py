"""The account service's shared helpers that need no database: the actor columns of a row, a
page of a list by offset, and the statement of a one-row insert."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.account.api.common import offset_listing
from services.account.store import Table
from services.account.store import actor_columns
from services.platform.errors import DomainError
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.common.v1.types_pb2 import ActorKind


@dataclass(frozen=True)
class _Page:
    page_size: int
    page_token: str


def _session() -> AsyncSession:
    """A session no test here reads from: the store function is a fake."""
    return cast(AsyncSession, object())


def _actor(row: Mapping[str, Any]) -> Actor:
    """A row as a message (any message does)."""
    return Actor(id=str(row["id"]))


class _Rows:
    """A store function of five rows that records how it was called."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, dict[str, Any]]] = []

    async def __call__(self, session: object, **arguments: Any) -> Sequence[Mapping[str, Any]]:
        self.calls.append((session, arguments))
        limit, offset = arguments["limit"], arguments["offset"]
        return [{"id": n} for n in range(5)][offset : offset + limit]


class _Session:
    """Records the statements it is given; each returns `row`."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.row = row
        self.statements: list[tuple[str, dict[str, Any]]] = []

    async def execute(self, statement: Any, params: dict[str, Any]) -> _Session:
        self.statements.append((str(statement), params))
        return self

    def mappings(self) -> _Session:
        return self

    def first(self) -> Mapping[str, Any]:
        return self.row


def test_actor_columns_name_the_role_kind_and_id() -> None:
    actor = Actor(kind=ActorKind.ACTOR_KIND_OPERATOR, id="u-1")

    assert actor_columns("maker", actor) == {"maker_kind": "OPERATOR", "maker_id": "u-1"}
    assert actor_columns("requested_by", actor) == {
        "requested_by_kind": "OPERATOR",
        "requested_by_id": "u-1",
    }


async def test_a_listing_passes_session_filters_and_page_to_the_store_function() -> None:
    rows, session = _Rows(), _session()

    found, token = await offset_listing(session, _Page(2, ""), rows, _actor, statuses=["OPEN"])

    assert [a.id for a in found] == ["0", "1"]
    assert token == "2"
    assert rows.calls == [(session, {"statuses": ["OPEN"], "limit": 2, "offset": 0})]


async def test_the_last_page_of_a_listing_has_no_next_token() -> None:
    found, token = await offset_listing(_session(), _Page(2, "4"), _Rows(), _actor)

    assert ([a.id for a in found], token) == (["4"], "")


async def test_a_listing_refuses_a_token_that_is_not_an_offset() -> None:
    with pytest.raises(DomainError):
        await offset_listing(_session(), _Page(2, "x"), _Rows(), _actor)


async def test_a_table_inserts_one_row_by_column_and_returns_its_columns() -> None:
    table = Table("account.things", "id, name")
    session = _Session({"id": 1, "name": "a"})

    row = await table.insert(session, {"id": 1, "name": "a"})  # type: ignore[arg-type]

    assert row == {"id": 1, "name": "a"}
    [(statement, params)] = session.statements
    assert statement == (
        "INSERT INTO account.things (id, name) VALUES (:id_0, :name_0) RETURNING id, name"
    )
    assert params == {"id_0": 1, "name_0": "a"}

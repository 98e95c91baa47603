"""An optimistic change (`AccountChange.prepared`, ADR 0009) as the ONE statement it sends:
the account's row first (the lock order of the locking changes: account, then positions), its
head checked against the one read, and a failed check or a unique violation turned into a
conflict the caller retries. No PostgreSQL: the statement is captured."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from decimal import Decimal
from typing import Any
from typing import cast

import psycopg
import pytest
from psycopg.errors import UniqueViolation

from services.oms.domain.positions import PositionMode
from services.oms.domain.state import OrderEvent
from services.oms.domain.state import OrderStatus
from services.oms.model import Account
from services.oms.model import AccountStatus
from services.oms.model import OrderRow
from services.oms.store import changes
from services.oms.store.changes import AccountChange
from services.oms.store.changes import Head
from services.oms.store.changes import OptimisticConflictError
from services.oms.store.events import system_actor
from services.platform.sql import UNEXPECTED_WRITE
from tests.unit.oms import builders

T = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
ACCOUNT = "7b1c1a4e-9a0f-4c57-8f7e-7f6d3d0e2b11"
ORDER = "0c9d3c2e-0b0b-4a5e-9d55-0f3b2f3f4a12"


def _account() -> Account:
    return Account(
        ACCOUNT,
        "5d2f7c1e-1b0b-4a5e-9d55-0f3b2f3f4a13",
        "6e3a8d2f-2c1c-4b6f-8e66-1a4c3a4b5b14",
        "USD",
        AccountStatus.ACTIVE,
        PositionMode.NETTING,
    )


def _order() -> OrderRow:
    return builders.order(
        id=ORDER,
        account_id=ACCOUNT,
        status=OrderStatus.NEW,
        quantity=Decimal("0.10"),
        created_at=T,
        updated_at=T,
        version=1,
    )


async def _submitted(monkeypatch: pytest.MonkeyPatch, fail: Exception | None = None) -> Any:
    sent: list[tuple[str, list[Any]]] = []

    async def execute_raw(connection: Any, statement: str, values: list[Any]) -> list[Any]:
        sent.append((statement, values))
        if fail is not None:
            raise fail
        return [(True,)]

    monkeypatch.setattr(changes, "execute_raw", execute_raw)
    head = Head(7, "hash-7", "EURUSD", None)
    change = AccountChange.prepared(cast(Any, object()), _account(), system_actor(), T, head)
    order = await change.create(_order())
    await change.apply(order, OrderEvent.SUBMITTED)
    await change.finish()
    return change, sent


async def test_the_change_is_one_statement_that_writes_the_account_first_and_checks_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    change, sent = await _submitted(monkeypatch)

    ((statement, values),) = sent
    assert statement.startswith(
        "WITH w0 AS (UPDATE oms.accounts SET audit_sequence = $1, audit_hash = $2"
        " WHERE account_id = $3 AND audit_sequence = $4 RETURNING 1),"
    )
    assert values[:4] == [9, values[1], ACCOUNT, 7]  # two records on the head read (7)
    assert "INSERT INTO oms.orders" in statement
    assert "ON CONFLICT (account_id, client_order_id) DO NOTHING" in statement
    assert "INSERT INTO oms.audit_records" in statement
    assert "INSERT INTO oms.outbox" in statement
    assert "SELECT oms.expect_written(" in statement
    assert values[-4:] == [1, 1, "account", "order"]  # checked in this order: account first
    assert change.sealed is not None
    assert change.sealed.subject == "oms.order.submitted"


def _check_failed(name: str) -> psycopg.Error:
    """What psycopg raises when `expect_written` refuses the statement."""

    class Diag:
        message_primary = name

    class CheckFailedError(psycopg.Error):
        sqlstate = UNEXPECTED_WRITE

        @property
        def diag(self) -> Any:
            return Diag()

    return CheckFailedError()


@pytest.mark.parametrize(
    ("error", "what"),
    [
        pytest.param(_check_failed("account"), "account", id="the head moved on"),
        pytest.param(_check_failed("order"), "order", id="the client_order_id was taken"),
        pytest.param(UniqueViolation(), "position", id="a netting position opened meanwhile"),
    ],
)
async def test_a_refused_statement_is_a_conflict_naming_what_moved(
    monkeypatch: pytest.MonkeyPatch, error: psycopg.Error, what: str
) -> None:
    with pytest.raises(OptimisticConflictError) as conflict:
        await _submitted(monkeypatch, fail=error)
    assert conflict.value.what == what


async def test_another_failure_is_not_a_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(psycopg.OperationalError):
        await _submitted(monkeypatch, fail=psycopg.OperationalError("server closed"))


def _capture(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    sent: list[str] = []

    async def execute_raw(connection: Any, statement: str, values: list[Any]) -> list[Any]:
        sent.append(statement)
        return [(True,)]

    monkeypatch.setattr(changes, "execute_raw", execute_raw)
    return sent


def _prepared() -> AccountChange:
    head = Head(7, "hash-7", "EURUSD", None)
    return AccountChange.prepared(cast(Any, object()), _account(), system_actor(), T, head)


async def test_a_change_block_writes_what_it_changed_as_it_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = _capture(monkeypatch)

    async with _prepared() as change:
        order = await change.create(_order())
        await change.apply(order, OrderEvent.SUBMITTED)
        assert sent == []  # nothing before the block ends

    assert len(sent) == 1
    assert change.sealed is not None


async def test_a_change_block_left_by_an_exception_writes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = _capture(monkeypatch)

    async def refused() -> None:
        async with _prepared() as change:
            order = await change.create(_order())
            await change.apply(order, OrderEvent.SUBMITTED)
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        await refused()
    assert sent == []


async def test_a_change_that_changed_nothing_writes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = _capture(monkeypatch)

    async with _prepared() as change:
        pass

    assert sent == []
    assert change.sealed is None

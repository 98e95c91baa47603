"""SQL of withdrawals (`account.withdrawals`) for the servicers: find, record, list, count."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.account.convert import Row
from services.account.store import WITHDRAWAL_COLUMNS, filters, many, one, where
from tradingmesh.common.v1.types_pb2 import TimeRange


async def withdrawal_by_key(
    session: AsyncSession, account_id: uuid.UUID, idempotency_key: str
) -> Row | None:
    return await one(
        session,
        f"SELECT {WITHDRAWAL_COLUMNS} FROM account.withdrawals"
        " WHERE account_id = :a AND idempotency_key = :k",
        {"a": account_id, "k": idempotency_key},
    )


async def locked_withdrawal(session: AsyncSession, withdrawal_id: uuid.UUID) -> Row | None:
    """The withdrawal's row, locked until the transaction ends."""
    return await one(
        session,
        f"SELECT {WITHDRAWAL_COLUMNS} FROM account.withdrawals WHERE id = :id FOR UPDATE",
        {"id": withdrawal_id},
    )


async def insert_withdrawal(
    session: AsyncSession,
    *,
    withdrawal_id: uuid.UUID,
    account_id: uuid.UUID,
    amount: Decimal,
    currency: str,
    status: str,
    idempotency_key: str,
    ledger_entry_id: uuid.UUID,
    balance_after: Decimal,
    requested_by: tuple[str, str],
) -> Row:
    """The new withdrawal's row; `requested_by` is (actor kind, actor id)."""
    kind, actor_id = requested_by
    row = await one(
        session,
        "INSERT INTO account.withdrawals (id, account_id, amount, currency, status,"
        " idempotency_key, ledger_entry_id, balance_after, requested_by_kind,"
        " requested_by_id) VALUES (:id, :a, :amount, :currency, :status, :k, :entry,"
        f" :after, :kind, :actor) RETURNING {WITHDRAWAL_COLUMNS}",
        {
            "id": withdrawal_id,
            "a": account_id,
            "amount": amount,
            "currency": currency,
            "status": status,
            "k": idempotency_key,
            "entry": ledger_entry_id,
            "after": balance_after,
            "kind": kind,
            "actor": actor_id,
        },
    )
    assert row is not None
    return row


async def list_withdrawals(
    session: AsyncSession,
    *,
    account_id: uuid.UUID | None,
    statuses: Sequence[str],
    time_range: TimeRange | None,
    limit: int,
    offset: int,
) -> list[Row]:
    """Withdrawals newest first, of one account or all; an empty filter is no filter."""
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    clauses = filters(params, account_id=account_id, statuses=statuses, time_range=time_range)
    return await many(
        session,
        f"SELECT {WITHDRAWAL_COLUMNS} FROM account.withdrawals{where(clauses)}"
        " ORDER BY created_at DESC, id LIMIT :limit OFFSET :offset",
        params,
    )


async def count_withdrawals_in(
    session: AsyncSession, account_id: uuid.UUID, statuses: Collection[str]
) -> int:
    """How many of the account's withdrawals are in one of `statuses`."""
    row = await one(
        session,
        "SELECT count(*) AS n FROM account.withdrawals WHERE account_id = :id"
        " AND status = ANY(:statuses)",
        {"id": account_id, "statuses": sorted(statuses)},
    )
    return 0 if row is None else int(row["n"])

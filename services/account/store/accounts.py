"""SQL of trading accounts (`account.trading_accounts`, their `balances` row) and their ledger
entries, for the servicers: list, create, change status, count."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from collections.abc import Sequence
from typing import Any
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from services.account.convert import Row
from services.account.store import ACCOUNT_COLUMNS
from services.account.store import ACCOUNTS
from services.account.store import Table
from services.account.store import filters
from services.account.store import one
from services.account.store.ledger import ENTRY_COLUMNS
from tradingmesh.common.v1.types_pb2 import TimeRange

_LEDGER_ENTRIES: Final = Table("account.ledger_entries", ENTRY_COLUMNS)


async def list_accounts(
    session: AsyncSession,
    *,
    user_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
    account_number: str = "",
    statuses: Sequence[str] = (),
    account_ids: Collection[str] | None = None,
    limit: int,
    offset: int,
) -> list[Row]:
    """Trading accounts newest first; an empty filter is no filter, `account_ids` (an API key's
    scope) the only accounts that may be returned."""
    params: dict[str, Any] = {}
    clauses: list[str] = []
    if user_id is not None:
        clauses.append("user_id = :user_id")
        params["user_id"] = user_id
    if account_ids is not None:
        clauses.append("id::text = ANY(:scoped)")
        params["scoped"] = sorted(account_ids)
    if group_id is not None:
        clauses.append("group_id = :group_id")
        params["group_id"] = group_id
    if account_number:
        clauses.append("account_number = :number")
        params["number"] = account_number
    if statuses:
        clauses.append("status = ANY(:statuses)")
        params["statuses"] = list(statuses)
    return await ACCOUNTS.page(session, clauses, params, limit=limit, offset=offset)


async def account_by_number(session: AsyncSession, account_number: str) -> Row | None:
    return await ACCOUNTS.row_where(session, "account_number = :n", {"n": account_number})


async def account_by_idempotency_key(session: AsyncSession, key: str) -> Row | None:
    return await ACCOUNTS.row_where(session, "idempotency_key = :k", {"k": key})


async def insert_account(
    session: AsyncSession,
    *,
    account_id: uuid.UUID,
    user_id: uuid.UUID,
    group_id: uuid.UUID,
    currency: str,
    position_mode: str,
    status: str,
    idempotency_key: str | None,
) -> Row:
    """The new account's row (its number the next of `account.account_number_seq`) and its
    balance row. The account's insert runs in a savepoint; IntegrityError when another request
    with the same idempotency key got there first."""
    async with session.begin_nested():
        row = await one(
            session,
            "INSERT INTO account.trading_accounts (id, account_number, user_id,"
            " group_id, currency, position_mode, status, idempotency_key) VALUES"
            " (:id, nextval('account.account_number_seq')::text, :user, :group,"
            " :currency, :mode, :status, :k)"
            f" RETURNING {ACCOUNT_COLUMNS}",
            {
                "id": account_id,
                "user": user_id,
                "group": group_id,
                "currency": currency,
                "mode": position_mode,
                "status": status,
                "k": idempotency_key,
            },
        )
    assert row is not None
    await one(
        session,
        "INSERT INTO account.balances (account_id, currency) VALUES (:id, :currency)"
        " RETURNING account_id",
        {"id": account_id, "currency": currency},
    )
    return row


async def count_accounts_not_in(session: AsyncSession, user_id: uuid.UUID, status: str) -> int:
    """How many of the user's trading accounts are not in `status`."""
    row = await one(
        session,
        "SELECT count(*) AS n FROM account.trading_accounts"
        " WHERE user_id = :id AND status <> :status",
        {"id": user_id, "status": status},
    )
    return 0 if row is None else int(row["n"])


async def list_ledger_entries(
    session: AsyncSession,
    *,
    account_id: uuid.UUID,
    time_range: TimeRange | None,
    reasons: Sequence[str],
    limit: int,
    offset: int,
) -> list[Row]:
    """The account's ledger entries, latest first."""
    params: dict[str, Any] = {}
    clauses = filters(params, account_id=account_id, time_range=time_range)
    if reasons:
        clauses.append("reason = ANY(:reasons)")
        params["reasons"] = list(reasons)
    return await _LEDGER_ENTRIES.page(
        session, clauses, params, limit=limit, offset=offset, order="sequence DESC"
    )

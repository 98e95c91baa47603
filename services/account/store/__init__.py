"""The account schema's SQL, in one place: the shared reads and helpers here, and one module per
resource beside them (`users`, `accounts`, `groups`, `withdrawals`, `adjustments`,
`audit_records`) with the servicers' (`api/`) reads and writes. Each function takes the
caller's session, so a change and its ledger legs, audit record and events stay one transaction;
rows come back as mappings of the columns named below (`convert.py` makes messages of them)."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.account.domain import format_money
from services.platform.access import account_not_found
from services.platform.enums import enum_name
from services.platform.errors import DomainError
from services.platform.errors import not_found
from services.platform.sql import values_insert
from tradingmesh.account.v1 import account_pb2 as pb
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.common.v1.types_pb2 import ActorKind
from tradingmesh.common.v1.types_pb2 import TimeRange
from tradingmesh.exact import plain_decimal

_R = ErrorReason
Row = Mapping[Any, Any]  # a row's columns by name (as `convert.Row`)

USER_COLUMNS: Final = (
    "id, username, email, display_name, roles, kyc_status, status, created_at, updated_at,"
    " kyc_event_time"
)
GROUP_COLUMNS: Final = (
    "id, name, description, currency, leverage, margin_call_level, stop_out_level,"
    " execution_mode, position_mode, spread_markup_type, spread_markup, commission_per_lot,"
    " max_deviation_points, created_at, updated_at, version"
)
ACCOUNT_COLUMNS: Final = (
    "id, account_number, user_id, group_id, currency, position_mode, status, created_at, updated_at"
)
WITHDRAWAL_COLUMNS: Final = (
    "id, account_id, amount, currency, status, idempotency_key, ledger_entry_id, balance_after,"
    " reversal_ledger_entry_id, rejection_reason, requested_by_kind, requested_by_id,"
    " rejected_by_kind, rejected_by_id, created_at, completed_at"
)
ADJUSTMENT_COLUMNS: Final = (
    "id, account_id, amount, currency, reason, status, idempotency_key, maker_kind, maker_id,"
    " checker_kind, checker_id, checker_comment, ledger_entry_id, created_at, reviewed_at"
)
SETTINGS_COLUMNS: Final = (
    "group_id, symbol, enabled, spread_markup_type, spread_markup, commission_per_lot,"
    " execution_mode, max_deviation_points, max_order_size, max_position, margin_rate, updated_at"
)


def actor_columns(role: str, actor: Actor) -> dict[str, str]:
    """The columns of who acted in `role` ("maker", "requested_by", ...): `<role>_kind` and
    `<role>_id`."""
    return {f"{role}_kind": enum_name(ActorKind, actor.kind), f"{role}_id": actor.id}


def as_uuid(value: str) -> uuid.UUID | None:
    """The UUID in `value`, or None (ids from tokens are not validated by the contract)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def time_filter(
    column: str, time_range: TimeRange, has_range: bool, params: dict[str, Any]
) -> list[str]:
    clauses: list[str] = []
    if not has_range:
        return clauses
    if time_range.HasField("start_time"):
        clauses.append(f"{column} >= :start_time")
        params["start_time"] = time_range.start_time.ToDatetime(tzinfo=datetime.UTC)
    if time_range.HasField("end_time"):
        clauses.append(f"{column} < :end_time")
        params["end_time"] = time_range.end_time.ToDatetime(tzinfo=datetime.UTC)
    return clauses


def filters(
    params: dict[str, Any],
    *,
    account_id: uuid.UUID | None = None,
    statuses: Sequence[str] = (),
    time_range: TimeRange | None = None,
) -> list[str]:
    """The clauses of a list by account, status and creation time (their values put in
    `params`); an empty filter is no filter."""
    clauses: list[str] = []
    if account_id is not None:
        clauses.append("account_id = :account_id")
        params["account_id"] = account_id
    if statuses:
        clauses.append("status = ANY(:statuses)")
        params["statuses"] = list(statuses)
    if time_range is not None:
        clauses += time_filter("created_at", time_range, True, params)
    return clauses


def where(clauses: list[str]) -> str:
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


async def one(
    session: AsyncSession, sql: str, params: Mapping[str, Any] | None = None
) -> Row | None:
    return (await session.execute(text(sql), dict(params or {}))).mappings().first()


async def many(
    session: AsyncSession, sql: str, params: Mapping[str, Any] | None = None
) -> list[Row]:
    return list((await session.execute(text(sql), dict(params or {}))).mappings().all())


async def execute(session: AsyncSession, sql: str, params: Mapping[str, Any] | None = None) -> None:
    """Runs a statement that returns no rows."""
    await session.execute(text(sql), dict(params or {}))


async def insert(session: AsyncSession, table: str, values: Mapping[str, Any]) -> None:
    """Inserts one row: `values` by column."""
    await execute(session, *values_insert(table, list(values), [values]))


@dataclass(frozen=True)
class Table:
    """A table of the account schema and the columns its reads return, with the reads and
    writes its resources share: one row (by id, by idempotency key, by a condition), a page
    newest first, and a status change."""

    name: str
    columns: str
    # The refusal of an id that names no row (`require`).
    not_found: Callable[[str], DomainError] | None = None

    async def row_where(
        self,
        session: AsyncSession,
        condition: str,
        params: Mapping[str, Any],
        *,
        lock: bool = False,
    ) -> Row | None:
        """The row that passes `condition` (its values in `params`), locked until the
        transaction ends when `lock`."""
        suffix = " FOR UPDATE" if lock else ""
        return await one(
            session, f"SELECT {self.columns} FROM {self.name} WHERE {condition}{suffix}", params
        )

    async def by_id(self, session: AsyncSession, row_id: str, *, lock: bool = False) -> Row | None:
        """The row of `row_id` (None for an id that is no UUID)."""
        uid = as_uuid(row_id)
        if uid is None:
            return None
        return await self.row_where(session, "id = :id", {"id": uid}, lock=lock)

    async def require(self, session: AsyncSession, row_id: str, *, lock: bool = False) -> Row:
        """`by_id`, or the table's NOT_FOUND."""
        row = await self.by_id(session, row_id, lock=lock)
        if row is None:
            assert self.not_found is not None
            raise self.not_found(row_id)
        return row

    async def locked(self, session: AsyncSession, row_id: uuid.UUID) -> Row | None:
        """The row, locked until the transaction ends."""
        return await self.row_where(session, "id = :id", {"id": row_id}, lock=True)

    async def by_key(
        self, session: AsyncSession, account_id: uuid.UUID, idempotency_key: str
    ) -> Row | None:
        """The account's row of an idempotency key."""
        condition = "account_id = :a AND idempotency_key = :k"
        return await self.row_where(session, condition, {"a": account_id, "k": idempotency_key})

    async def page(
        self,
        session: AsyncSession,
        clauses: list[str],
        params: dict[str, Any],
        *,
        limit: int,
        offset: int,
        order: str = "created_at DESC, id",
    ) -> list[Row]:
        """The rows that pass `clauses` (their values in `params`), in `order` (newest first
        unless told), `limit` of them after the first `offset`."""
        return await many(
            session,
            f"SELECT {self.columns} FROM {self.name}{where(clauses)}"
            f" ORDER BY {order} LIMIT :limit OFFSET :offset",
            {**params, "limit": limit, "offset": offset},
        )

    async def page_of_account(
        self,
        session: AsyncSession,
        *,
        account_id: uuid.UUID | None,
        statuses: Sequence[str],
        time_range: TimeRange | None,
        limit: int,
        offset: int,
    ) -> list[Row]:
        """A page newest first, of one account or all (`filters`); an empty filter is no
        filter."""
        params: dict[str, Any] = {}
        clauses = filters(params, account_id=account_id, statuses=statuses, time_range=time_range)
        return await self.page(session, clauses, params, limit=limit, offset=offset)

    async def insert(self, session: AsyncSession, values: Mapping[str, Any]) -> Row:
        """The new row of `values` (by column)."""
        row = await one(
            session, *values_insert(self.name, list(values), [values], f"RETURNING {self.columns}")
        )
        assert row is not None
        return row

    async def set_status(self, session: AsyncSession, row_id: uuid.UUID, status: str) -> Row:
        """The row after its status is set (the caller holds its lock)."""
        row = await one(
            session,
            f"UPDATE {self.name} SET status = :status, updated_at = now() WHERE id = :id"
            f" RETURNING {self.columns}",
            {"status": status, "id": row_id},
        )
        assert row is not None
        return row


def user_not_found(user_id: str) -> DomainError:
    return not_found("user", "user_id", user_id)


def group_not_found(group_id: str) -> DomainError:
    return not_found("client group", "group_id", group_id)


USERS: Final = Table("account.users", USER_COLUMNS, user_not_found)
GROUPS: Final = Table("account.client_groups", GROUP_COLUMNS, group_not_found)
ACCOUNTS: Final = Table("account.trading_accounts", ACCOUNT_COLUMNS, account_not_found)
WITHDRAWALS: Final = Table("account.withdrawals", WITHDRAWAL_COLUMNS)
ADJUSTMENTS: Final = Table("account.balance_adjustments", ADJUSTMENT_COLUMNS)
user_row: Final = USERS.by_id
require_user_row: Final = USERS.require
account_row: Final = ACCOUNTS.by_id
require_account_row: Final = ACCOUNTS.require
group_row: Final = GROUPS.by_id
require_group_row: Final = GROUPS.require


async def ledger_sequence(session: AsyncSession, account_id: Any) -> int:
    """The sequence of the account's latest ledger entry (0 before the first)."""
    row = await one(
        session,
        "SELECT last_sequence FROM account.balances WHERE account_id = :id",
        {"id": account_id},
    )
    return 0 if row is None else int(row["last_sequence"])


async def summary(session: AsyncSession, account: Row) -> pb.AccountSummary:
    """The account's money from the ledger alone: for an account the risk service does not
    know yet, which has no positions (services/account/margin.py), so equity is the balance."""
    currency = account["currency"].strip()
    row = await one(
        session,
        "SELECT b.balance, g.leverage, g.margin_call_level, g.stop_out_level"
        " FROM account.trading_accounts a JOIN account.client_groups g ON g.id = a.group_id"
        " LEFT JOIN account.balances b ON b.account_id = a.id WHERE a.id = :id",
        {"id": account["id"]},
    )
    assert row is not None
    balance: Decimal = row["balance"] if row["balance"] is not None else Decimal(0)
    unrealized = used_margin = Decimal(0)
    equity = balance + unrealized
    free_margin = equity - used_margin
    withdrawable = max(Decimal(0), min(balance, free_margin))
    message = pb.AccountSummary(
        account_id=str(account["id"]),
        currency=currency,
        balance=format_money(balance, currency),
        unrealized_pnl=format_money(unrealized, currency),
        equity=format_money(equity, currency),
        used_margin=format_money(used_margin, currency),
        free_margin=format_money(free_margin, currency),
        margin_level="",
        withdrawable=format_money(withdrawable, currency),
        leverage=row["leverage"],
        margin_call_level=plain_decimal(row["margin_call_level"]),
        stop_out_level=plain_decimal(row["stop_out_level"]),
    )
    message.compute_time.GetCurrentTime()
    return message

"""The account schema's SQL, in one place: the shared reads and helpers here, and one module per
resource beside them (`users`, `accounts`, `groups`, `withdrawals`, `adjustments`,
`audit_records`) with the servicers' (`api/`) reads and writes. Each function takes the
caller's session, so a change and its ledger legs, audit record and events stay one transaction;
rows come back as mappings of the columns named below (`convert.py` makes messages of them)."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.account.domain import format_money
from services.platform.access import account_not_found
from services.platform.errors import DomainError
from tradingmesh.account.v1 import account_pb2 as pb
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.types_pb2 import TimeRange
from tradingmesh.exact import plain_decimal

_R = ErrorReason

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
) -> Mapping[Any, Any] | None:
    return (await session.execute(text(sql), dict(params or {}))).mappings().first()


async def many(
    session: AsyncSession, sql: str, params: Mapping[str, Any] | None = None
) -> list[Mapping[Any, Any]]:
    return list((await session.execute(text(sql), dict(params or {}))).mappings().all())


async def user_row(
    session: AsyncSession, user_id: str, *, lock: bool = False
) -> Mapping[Any, Any] | None:
    uid = as_uuid(user_id)
    if uid is None:
        return None
    suffix = " FOR UPDATE" if lock else ""
    return await one(
        session, f"SELECT {USER_COLUMNS} FROM account.users WHERE id = :id{suffix}", {"id": uid}
    )


def user_not_found(user_id: str) -> DomainError:
    return DomainError(
        _R.ERROR_REASON_NOT_FOUND, f"user {user_id} not found", metadata={"user_id": user_id}
    )


async def account_row(
    session: AsyncSession, account_id: str, *, lock: bool = False
) -> Mapping[Any, Any] | None:
    aid = as_uuid(account_id)
    if aid is None:
        return None
    suffix = " FOR UPDATE" if lock else ""
    return await one(
        session,
        f"SELECT {ACCOUNT_COLUMNS} FROM account.trading_accounts WHERE id = :id{suffix}",
        {"id": aid},
    )


async def require_account_row(
    session: AsyncSession, account_id: str, *, lock: bool = False
) -> Mapping[Any, Any]:
    row = await account_row(session, account_id, lock=lock)
    if row is None:
        raise account_not_found(account_id)
    return row


async def group_row(
    session: AsyncSession, group_id: str, *, lock: bool = False
) -> Mapping[Any, Any] | None:
    gid = as_uuid(group_id)
    if gid is None:
        return None
    suffix = " FOR UPDATE" if lock else ""
    return await one(
        session,
        f"SELECT {GROUP_COLUMNS} FROM account.client_groups WHERE id = :id{suffix}",
        {"id": gid},
    )


def group_not_found(group_id: str) -> DomainError:
    return DomainError(
        _R.ERROR_REASON_NOT_FOUND,
        f"client group {group_id} not found",
        metadata={"group_id": group_id},
    )


async def ledger_sequence(session: AsyncSession, account_id: Any) -> int:
    """The sequence of the account's latest ledger entry (0 before the first)."""
    row = await one(
        session,
        "SELECT last_sequence FROM account.balances WHERE account_id = :id",
        {"id": account_id},
    )
    return 0 if row is None else int(row["last_sequence"])


async def summary(session: AsyncSession, account: Mapping[Any, Any]) -> pb.AccountSummary:
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

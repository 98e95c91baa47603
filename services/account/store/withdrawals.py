"""SQL of withdrawals (`account.withdrawals`) for the servicers: find, record, list, count."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from decimal import Decimal
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from services.account.convert import Row
from services.account.store import WITHDRAWAL_COLUMNS, WITHDRAWALS, one

withdrawal_by_key: Final = WITHDRAWALS.by_key
locked_withdrawal: Final = WITHDRAWALS.locked


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


list_withdrawals: Final = WITHDRAWALS.page_of_account


async def set_rejected(
    session: AsyncSession,
    withdrawal_id: uuid.UUID,
    *,
    reversal_entry_id: uuid.UUID,
    reason: str,
    rejected_by: tuple[str, str],
) -> Row:
    """The withdrawal's row after it is REJECTED with its reversal's ledger entry;
    `rejected_by` is (actor kind, actor id). The caller holds its lock."""
    kind, actor_id = rejected_by
    row = await one(
        session,
        "UPDATE account.withdrawals SET status = 'REJECTED', reversal_ledger_entry_id = :entry,"
        " rejection_reason = :reason, rejected_by_kind = :kind, rejected_by_id = :actor,"
        " completed_at = now(), updated_at = now() WHERE id = :id"
        f" RETURNING {WITHDRAWAL_COLUMNS}",
        {
            "entry": reversal_entry_id,
            "reason": reason,
            "kind": kind,
            "actor": actor_id,
            "id": withdrawal_id,
        },
    )
    assert row is not None
    return row


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

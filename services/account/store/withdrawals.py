"""SQL of withdrawals (`account.withdrawals`) for the servicers: find, record, list, count."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from decimal import Decimal
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from services.account.convert import Row
from services.account.store import WITHDRAWAL_COLUMNS
from services.account.store import WITHDRAWALS
from services.account.store import actor_columns
from services.account.store import one
from tradingmesh.common.v1.types_pb2 import Actor

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
    requested_by: Actor,
) -> Row:
    """The new withdrawal's row."""
    return await WITHDRAWALS.insert(
        session,
        {
            "id": withdrawal_id,
            "account_id": account_id,
            "amount": amount,
            "currency": currency,
            "status": status,
            "idempotency_key": idempotency_key,
            "ledger_entry_id": ledger_entry_id,
            "balance_after": balance_after,
            **actor_columns("requested_by", requested_by),
        },
    )


list_withdrawals: Final = WITHDRAWALS.page_of_account


async def set_rejected(
    session: AsyncSession,
    withdrawal_id: uuid.UUID,
    *,
    reversal_entry_id: uuid.UUID,
    reason: str,
    rejected_by: Actor,
) -> Row:
    """The withdrawal's row after it is REJECTED with its reversal's ledger entry. The caller
    holds its lock."""
    row = await one(
        session,
        "UPDATE account.withdrawals SET status = 'REJECTED', reversal_ledger_entry_id = :entry,"
        " rejection_reason = :reason, rejected_by_kind = :rejected_by_kind,"
        " rejected_by_id = :rejected_by_id, completed_at = now(), updated_at = now()"
        f" WHERE id = :id RETURNING {WITHDRAWAL_COLUMNS}",
        {
            "entry": reversal_entry_id,
            "reason": reason,
            **actor_columns("rejected_by", rejected_by),
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

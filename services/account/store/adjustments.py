"""SQL of maker-checker balance adjustments (`account.balance_adjustments`) for the servicers."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from services.account.convert import Row
from services.account.store import ADJUSTMENT_COLUMNS, ADJUSTMENTS, one

adjustment_by_key: Final = ADJUSTMENTS.by_key
locked_adjustment: Final = ADJUSTMENTS.locked


async def insert_adjustment(
    session: AsyncSession,
    *,
    account_id: uuid.UUID,
    amount: Decimal,
    currency: str,
    reason: str,
    status: str,
    idempotency_key: str,
    maker: tuple[str, str],
) -> Row:
    """The new adjustment's row; `maker` is (actor kind, actor id)."""
    kind, maker_id = maker
    row = await one(
        session,
        "INSERT INTO account.balance_adjustments (id, account_id, amount, currency,"
        " reason, status, idempotency_key, maker_kind, maker_id) VALUES (:id, :a,"
        " :amount, :currency, :reason, :status, :k, :kind, :maker)"
        f" RETURNING {ADJUSTMENT_COLUMNS}",
        {
            "id": uuid.uuid4(),
            "a": account_id,
            "amount": amount,
            "currency": currency,
            "reason": reason,
            "status": status,
            "k": idempotency_key,
            "kind": kind,
            "maker": maker_id,
        },
    )
    assert row is not None
    return row


async def review_adjustment(
    session: AsyncSession,
    adjustment_id: uuid.UUID,
    *,
    status: str,
    checker: tuple[str, str],
    comment: str,
    ledger_entry_id: uuid.UUID | None = None,
) -> Row:
    """The adjustment's row after the checker's decision (`status`, with the ledger entry of an
    approval); `checker` is (actor kind, actor id)."""
    kind, checker_id = checker
    params: dict[str, Any] = {
        "status": status,
        "kind": kind,
        "checker": checker_id,
        "comment": comment,
        "id": adjustment_id,
    }
    entry = ""
    if ledger_entry_id is not None:
        entry = " ledger_entry_id = :entry,"
        params["entry"] = ledger_entry_id
    row = await one(
        session,
        "UPDATE account.balance_adjustments SET status = :status, checker_kind = :kind,"
        f" checker_id = :checker, checker_comment = :comment,{entry}"
        f" reviewed_at = now() WHERE id = :id RETURNING {ADJUSTMENT_COLUMNS}",
        params,
    )
    assert row is not None
    return row


list_adjustments: Final = ADJUSTMENTS.page_of_account

"""SQL of maker-checker balance adjustments (`account.balance_adjustments`) for the servicers."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from services.account.convert import Row
from services.account.store import ADJUSTMENT_COLUMNS
from services.account.store import ADJUSTMENTS
from services.account.store import actor_columns
from services.account.store import one
from tradingmesh.common.v1.types_pb2 import Actor

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
    maker: Actor,
) -> Row:
    """The new adjustment's row."""
    return await ADJUSTMENTS.insert(
        session,
        {
            "id": uuid.uuid4(),
            "account_id": account_id,
            "amount": amount,
            "currency": currency,
            "reason": reason,
            "status": status,
            "idempotency_key": idempotency_key,
            **actor_columns("maker", maker),
        },
    )


async def review_adjustment(
    session: AsyncSession,
    adjustment_id: uuid.UUID,
    *,
    status: str,
    checker: Actor,
    comment: str,
    ledger_entry_id: uuid.UUID | None = None,
) -> Row:
    """The adjustment's row after the checker's decision (`status`, with the ledger entry of an
    approval)."""
    params: dict[str, Any] = {
        "status": status,
        **actor_columns("checker", checker),
        "comment": comment,
        "id": adjustment_id,
    }
    entry = ""
    if ledger_entry_id is not None:
        entry = " ledger_entry_id = :entry,"
        params["entry"] = ledger_entry_id
    row = await one(
        session,
        "UPDATE account.balance_adjustments SET status = :status,"
        " checker_kind = :checker_kind, checker_id = :checker_id, checker_comment = :comment,"
        f"{entry} reviewed_at = now() WHERE id = :id RETURNING {ADJUSTMENT_COLUMNS}",
        params,
    )
    assert row is not None
    return row


list_adjustments: Final = ADJUSTMENTS.page_of_account

"""Withdrawal steps shared by the admin RPCs and the payment webhook."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from services.account import convert
from services.account import events
from services.account import store
from services.account.domain import Reason
from services.account.store import ledger
from services.account.store import withdrawals as withdrawal_store
from tradingmesh.account.v1 import account_events_pb2 as ev
from tradingmesh.account.v1 import account_pb2 as pb
from tradingmesh.common.v1 import types_pb2

# Withdrawal ids are derived from (account, idempotency key): every attempt of one withdrawal
# has the same id, so the risk service's reservation for it is replaced, not added, on a retry.
_WITHDRAWAL_IDS: Final = uuid.UUID("6f1d3c0e-8a52-4d1b-9b7e-2c4f5a6b7d80")


def withdrawal_id_of(account_id: uuid.UUID, idempotency_key: str) -> uuid.UUID:
    """The id of the withdrawal that `idempotency_key` requests from the account."""
    return uuid.uuid5(_WITHDRAWAL_IDS, f"{account_id}:{idempotency_key}")


def withdrawal_event_fields(account: Mapping[Any, Any]) -> dict[str, str]:
    """The owner and account number that withdrawal events carry."""
    return {"user_id": str(account["user_id"]), "account_number": account["account_number"]}


async def reverse_withdrawal(
    session: AsyncSession,
    withdrawal: Mapping[Any, Any],
    *,
    actor: types_pb2.Actor,
    reason: str,
    correlation_id: str,
    provider_event_id: str | None = None,
) -> pb.Withdrawal:
    """REJECTED, with the amount credited back (WITHDRAWAL_REVERSAL), in the caller's
    transaction; publishes `account.withdrawal.rejected`. The caller holds the row lock."""
    posted = await ledger.post_request(
        session,
        "withdrawal",
        withdrawal,
        Reason.WITHDRAWAL_REVERSAL,
        actor=actor,
        description=f"Withdrawal reversed: {reason}"[:512],
        correlation_id=correlation_id,
        provider_event_id=provider_event_id,
    )
    row = await withdrawal_store.set_rejected(
        session,
        withdrawal["id"],
        reversal_entry_id=uuid.UUID(posted.entry.id),
        reason=reason,
        rejected_by=actor,
    )
    result = convert.withdrawal(row)
    account = await store.require_account_row(session, str(withdrawal["account_id"]))
    await events.emit(
        session,
        "account.withdrawal.rejected",
        ev.WithdrawalRejected(
            metadata=events.metadata(actor, correlation_id=correlation_id),
            withdrawal=result,
            **withdrawal_event_fields(account),
        ),
    )
    return result

"""SQL of provider webhooks (`account.webhook_events`, one row per (provider, event_id)) and of
the changes their events make that no servicer makes: a withdrawal's status from its payout,
a user's KYC status from the provider's check."""

from __future__ import annotations

import datetime
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.account.convert import Row
from services.account.store import USER_COLUMNS
from services.account.store import WITHDRAWAL_COLUMNS
from services.account.store import one


async def record_event(
    session: AsyncSession,
    *,
    provider: str,
    event_id: str,
    kind: str,
    outcome: str,
    body: str,
    occurred_at: datetime.datetime,
) -> bool:
    """Records a provider's event with `outcome`: True when this call recorded it, False when
    the (provider, event_id) row was there already (a redelivery)."""
    row = await one(
        session,
        "INSERT INTO account.webhook_events (provider, event_id, kind, outcome, body,"
        " occurred_at) VALUES (:p, :e, :k, :o, :body, :t)"
        " ON CONFLICT (provider, event_id) DO NOTHING RETURNING provider",
        {"p": provider, "e": event_id, "k": kind, "o": outcome, "body": body, "t": occurred_at},
    )
    return row is not None


async def set_event_outcome(
    session: AsyncSession, *, provider: str, event_id: str, outcome: str
) -> None:
    await session.execute(
        text(
            "UPDATE account.webhook_events SET outcome = :o WHERE provider = :p AND event_id = :e"
        ),
        {"o": outcome, "p": provider, "e": event_id},
    )


async def set_payout_status(session: AsyncSession, withdrawal_id: uuid.UUID, status: str) -> Row:
    """The withdrawal's row after the provider's payout moved it to `status` (COMPLETED
    stamps its completion); the caller holds its lock."""
    row = await one(
        session,
        "UPDATE account.withdrawals SET status = :s, updated_at = now(),"
        " completed_at = CASE WHEN :s = 'COMPLETED' THEN now() END"
        f" WHERE id = :id RETURNING {WITHDRAWAL_COLUMNS}",
        {"s": status, "id": withdrawal_id},
    )
    assert row is not None
    return row


async def set_kyc_status(
    session: AsyncSession, user_id: uuid.UUID, status: str, event_time: datetime.datetime
) -> Row:
    """The user's row after the provider's check set its KYC status as of `event_time`; the
    caller holds its lock."""
    row = await one(
        session,
        "UPDATE account.users SET kyc_status = :s, kyc_event_time = :t, updated_at = now()"
        f" WHERE id = :id RETURNING {USER_COLUMNS}",
        {"s": status, "t": event_time, "id": user_id},
    )
    assert row is not None
    return row

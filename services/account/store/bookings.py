"""SQL of `account.trade_bookings` (migration 0010): which trades the ledger has booked, what a
stop-out's correction waits for."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.sql import insert_rows


async def record_bookings(session: AsyncSession, booked: Sequence[Mapping[str, Any]]) -> None:
    """Records booked trades (trade_id, order_id, account_id each) with ONE statement; a trade
    recorded before stays as it was."""
    await session.execute(
        *insert_rows(
            "account.trade_bookings",
            ("trade_id", "order_id", "account_id"),
            booked,
            "ON CONFLICT DO NOTHING",
        )
    )


async def count_booked_orders(session: AsyncSession, order_ids: Sequence[str]) -> int:
    """How many of the orders have a trade booked."""
    booked = await session.execute(
        text(
            "SELECT count(DISTINCT order_id) FROM account.trade_bookings"
            " WHERE order_id = ANY(CAST(:orders AS uuid[]))"
        ),
        {"orders": list(order_ids)},
    )
    return int(booked.scalar_one())

"""The SQL of the account service's copy of pricing's instruments (`account.instruments`: the
lot rules SetGroupInstrumentSettings checks against; `instruments.py` keeps it from events)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["upsert_lots"]


async def upsert_lots(
    session: AsyncSession,
    *,
    symbol: str,
    lot_step: Decimal,
    min_lot: Decimal,
    max_lot: Decimal,
    version: int,
) -> bool:
    """Stores an instrument's lot rules of `version` unless the copy is as new already; True
    if the copy changed."""
    applied = await session.execute(
        text(
            "INSERT INTO account.instruments (symbol, lot_step, min_lot, max_lot, version)"
            " VALUES (:symbol, :lot_step, :min_lot, :max_lot, :version)"
            " ON CONFLICT (symbol) DO UPDATE SET lot_step = EXCLUDED.lot_step,"
            " min_lot = EXCLUDED.min_lot, max_lot = EXCLUDED.max_lot, version = EXCLUDED.version,"
            " updated_at = now() WHERE account.instruments.version < EXCLUDED.version"
            " RETURNING symbol"
        ),
        {
            "symbol": symbol,
            "lot_step": lot_step,
            "min_lot": min_lot,
            "max_lot": max_lot,
            "version": version,
        },
    )
    return applied.first() is not None

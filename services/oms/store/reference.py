"""Reads of the OMS's copies of reference data (`feeds/reference.py` keeps them from account
and pricing events): the instrument catalogue, each instrument's scales, and each account's
group. Functions taking the caller's session."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.model import Instrument

__all__ = ["account_groups", "instrument_known", "instrument_scales", "load_instruments"]


async def load_instruments(session: AsyncSession) -> dict[str, Instrument]:
    """Every instrument, by symbol."""
    rows = await session.execute(text(f"SELECT {Instrument.COLUMNS} FROM oms.instruments"))
    return {r["symbol"]: Instrument.from_row(r) for r in rows.mappings()}


async def instrument_scales(session: AsyncSession) -> list[tuple[str, int, Decimal]]:
    """(symbol, digits, lot step) of every instrument."""
    rows = await session.execute(text("SELECT symbol, digits, lot_step FROM oms.instruments"))
    return [(symbol, digits, Decimal(lot_step)) for symbol, digits, lot_step in rows]


async def instrument_known(session: AsyncSession, symbol: str) -> bool:
    found = await session.execute(
        text("SELECT 1 FROM oms.instruments WHERE symbol = :symbol"), {"symbol": symbol}
    )
    return found.first() is not None


async def account_groups(session: AsyncSession) -> dict[str, str]:
    """Every account's group id, by account id."""
    rows = await session.execute(text("SELECT account_id, group_id FROM oms.accounts"))
    return {str(account_id): str(group_id) for account_id, group_id in rows.all()}

"""The SQL of the broker's day (migration 0018, ADR 0010): swap terms, rollovers, swap charges.

A position's charge for a rollover is a row of `oms.swap_charges` keyed (position_id,
trading_date): written in the transaction that writes the position's new swap, its audit record
and its event, under the account's lock (`AccountChange.opened`), after reading which of the
account's positions have no charge yet. So a charge commits whole or not at all, and a second
run (a resumed job, another replica) finds it and charges nothing again; the key refuses a
second row even if that reasoning had a hole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from datetime import datetime
from decimal import Decimal
from typing import Any
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.columns import from_columns
from services.oms.domain.swaps import SwapTerms
from services.oms.domain.swaps import SwapType
from services.oms.model import PositionRow
from services.oms.store.rows import first_row
from services.platform.sql import insert_rows

__all__ = [
    "CHARGE_COLUMNS",
    "RolloverRow",
    "StoredTerms",
    "accounts_to_charge",
    "complete",
    "insert_charges",
    "list_terms",
    "load_terms",
    "positions_to_charge",
    "rollover",
    "running",
    "save_terms",
    "start",
]

CHARGE_COLUMNS: Final = (
    "position_id",
    "trading_date",
    "id",
    "account_id",
    "symbol",
    "side",
    "quantity",
    "swap_type",
    "rate",
    "nights",
    "amount",
    "currency",
    "charged_at",
)
_OPEN_UNCHARGED: Final = (
    " p.status = 'OPEN' AND p.open_time < :rollover_time AND NOT EXISTS ("
    "SELECT 1 FROM oms.swap_charges c WHERE c.position_id = p.id"
    " AND c.trading_date = :trading_date)"
)


@dataclass(frozen=True)
class StoredTerms:
    symbol: str
    group_id: str  # '' for the instrument's terms
    terms: SwapTerms
    updated_at: datetime


@dataclass(frozen=True)
class RolloverRow:
    trading_date: date
    rollover_time: datetime
    started_at: datetime
    completed_at: datetime | None
    positions_charged: int


def _terms(row: Any) -> StoredTerms:
    return StoredTerms(
        symbol=row["symbol"],
        group_id=row["group_id"],
        terms=SwapTerms(
            SwapType(row["swap_type"]),
            row["long_rate"],
            row["short_rate"],
            int(row["triple_swap_day"]),
        ),
        updated_at=row["updated_at"],
    )


_TERMS_COLUMNS: Final = (
    "symbol, group_id, swap_type, long_rate, short_rate, triple_swap_day, updated_at"
)


async def load_terms(session: AsyncSession) -> dict[tuple[str, str], SwapTerms]:
    """Every instrument's and group's terms, by (symbol, group id or '')."""
    rows = await session.execute(text(f"SELECT {_TERMS_COLUMNS} FROM oms.swap_rates"))
    return {(t.symbol, t.group_id): t.terms for t in map(_terms, rows.mappings())}


async def list_terms(
    session: AsyncSession, symbol: str, after: tuple[str, str] | None, limit: int
) -> list[StoredTerms]:
    """A page of terms by (symbol, group id), after the key `after`."""
    rows = await session.execute(
        text(
            f"SELECT {_TERMS_COLUMNS} FROM oms.swap_rates"
            " WHERE (:symbol = '' OR symbol = :symbol)"
            " AND (CAST(:after_symbol AS text) IS NULL"
            " OR (symbol, group_id) > (:after_symbol, :after_group))"
            " ORDER BY symbol, group_id LIMIT :limit"
        ),
        {
            "symbol": symbol,
            "after_symbol": None if after is None else after[0],
            "after_group": "" if after is None else after[1],
            "limit": limit,
        },
    )
    return [_terms(row) for row in rows.mappings()]


async def save_terms(
    session: AsyncSession, symbol: str, group_id: str, terms: SwapTerms, now: datetime
) -> tuple[StoredTerms | None, StoredTerms]:
    """Sets the terms; returns them before (None if new) and after."""
    before = await first_row(
        session,
        f"SELECT {_TERMS_COLUMNS} FROM oms.swap_rates"
        " WHERE symbol = :symbol AND group_id = :group_id FOR UPDATE",
        {"symbol": symbol, "group_id": group_id},
        _terms,
    )
    after = (
        (
            await session.execute(
                text(
                    "INSERT INTO oms.swap_rates (symbol, group_id, swap_type, long_rate,"
                    " short_rate, triple_swap_day, updated_at) VALUES (:symbol, :group_id,"
                    " :swap_type, :long_rate, :short_rate, :triple_swap_day, :now)"
                    " ON CONFLICT (symbol, group_id) DO UPDATE SET"
                    " swap_type = EXCLUDED.swap_type, long_rate = EXCLUDED.long_rate,"
                    " short_rate = EXCLUDED.short_rate,"
                    " triple_swap_day = EXCLUDED.triple_swap_day, updated_at = EXCLUDED.updated_at"
                    f" RETURNING {_TERMS_COLUMNS}"
                ),
                {
                    "symbol": symbol,
                    "group_id": group_id,
                    "swap_type": terms.swap_type.value,
                    "long_rate": terms.long_rate,
                    "short_rate": terms.short_rate,
                    "triple_swap_day": terms.triple_swap_day,
                    "now": now,
                },
            )
        )
        .mappings()
        .one()
    )
    return before, _terms(after)


# -- rollovers ------------------------------------------------------------------------------------

_ROLLOVER: Final = (
    "SELECT r.trading_date, r.rollover_time, r.started_at, r.completed_at,"
    " (SELECT count(*) FROM oms.swap_charges c WHERE c.trading_date = r.trading_date"
    " AND c.amount <> 0) AS positions_charged FROM oms.rollovers r"
)


def _rollover(row: Any) -> RolloverRow:
    return from_columns(RolloverRow, row)


async def start(
    session: AsyncSession, trading_date: date, rollover_time: datetime, now: datetime
) -> None:
    """Records the rollover as started, unless it was."""
    await session.execute(
        text(
            "INSERT INTO oms.rollovers (trading_date, rollover_time, started_at)"
            " VALUES (:trading_date, :rollover_time, :now) ON CONFLICT DO NOTHING"
        ),
        {"trading_date": trading_date, "rollover_time": rollover_time, "now": now},
    )


async def rollover(session: AsyncSession, trading_date: date) -> RolloverRow | None:
    return await first_row(
        session,
        f"{_ROLLOVER} WHERE r.trading_date = :trading_date",
        {"trading_date": trading_date},
        _rollover,
    )


async def running(session: AsyncSession) -> list[RolloverRow]:
    """The rollovers not completed, oldest first."""
    rows = await session.execute(
        text(f"{_ROLLOVER} WHERE r.completed_at IS NULL ORDER BY r.trading_date")
    )
    return [_rollover(row) for row in rows.mappings()]


async def complete(
    session: AsyncSession, trading_date: date, now: datetime, began: datetime
) -> RolloverRow | None:
    """Marks the rollover completed; None if it was already (another run completed it), or if
    an envelope committed before `began` (the pass's start) is still unpublished: the charges of
    an interrupted run go out (the relay's poll) before the rollover is announced, so that
    consumers see every charge before the announcement."""
    done = (
        await session.execute(
            text(
                "UPDATE oms.rollovers SET completed_at = :now"
                " WHERE trading_date = :trading_date AND completed_at IS NULL"
                " AND NOT EXISTS (SELECT 1 FROM oms.outbox"
                " WHERE sent_at IS NULL AND created_at < :began)"
                " RETURNING trading_date"
            ),
            {"trading_date": trading_date, "now": now, "began": began},
        )
    ).first()
    return None if done is None else await rollover(session, trading_date)


# -- charges --------------------------------------------------------------------------------------


async def accounts_to_charge(
    session: AsyncSession, rollover: RolloverRow, after: str, limit: int
) -> list[str]:
    """Accounts (by id, after `after`) holding a position the rollover has not charged yet."""
    rows = await session.execute(
        text(
            "SELECT DISTINCT p.account_id::text AS account_id FROM oms.positions p"
            f" WHERE {_OPEN_UNCHARGED} AND p.account_id > CAST(:after AS uuid)"
            " ORDER BY 1 LIMIT :limit"
        ),
        {
            "rollover_time": rollover.rollover_time,
            "trading_date": rollover.trading_date,
            "after": after,
            "limit": limit,
        },
    )
    return [str(row[0]) for row in rows]


async def positions_to_charge(
    session: AsyncSession, account_id: str, rollover: RolloverRow
) -> list[PositionRow]:
    """The account's positions the rollover has not charged yet, locked (the caller holds the
    account's lock, so no other run charges them meanwhile)."""
    rows = await session.execute(
        text(
            f"SELECT {PositionRow.COLUMNS} FROM oms.positions p"
            f" WHERE p.account_id = :account_id AND {_OPEN_UNCHARGED}"
            " ORDER BY p.open_time, p.id FOR UPDATE"
        ),
        {
            "account_id": account_id,
            "rollover_time": rollover.rollover_time,
            "trading_date": rollover.trading_date,
        },
    )
    return [PositionRow.from_row(row) for row in rows.mappings()]


async def insert_charges(session: AsyncSession, charges: Sequence[dict[str, Any]]) -> None:
    """The charges of a transaction, ONE statement; a second charge of a position for the same
    rollover violates the primary key and fails the transaction."""
    if charges:
        await session.execute(*insert_rows("oms.swap_charges", CHARGE_COLUMNS, charges))


def charge_row(
    *,
    charge_id: str,
    position: PositionRow,
    rollover: RolloverRow,
    terms: SwapTerms | None,
    nights: int,
    amount: Decimal,
    currency: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "position_id": position.id,
        "trading_date": rollover.trading_date,
        "id": charge_id,
        "account_id": position.account_id,
        "symbol": position.symbol,
        "side": position.side.value,
        "quantity": position.quantity,
        "swap_type": "" if terms is None else terms.swap_type.value,
        "rate": Decimal(0) if terms is None else terms.rate(position.side),
        "nights": nights,
        "amount": amount,
        "currency": currency,
        "charged_at": now,
    }

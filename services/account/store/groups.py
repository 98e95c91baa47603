"""SQL of client groups (`account.client_groups`) and their per-instrument settings
(`account.group_instrument_settings`, checked against `account.instruments`) for the servicers."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from services.account.convert import Row
from services.account.store import GROUP_COLUMNS
from services.account.store import GROUPS
from services.account.store import SETTINGS_COLUMNS
from services.account.store import Table
from services.account.store import many
from services.account.store import one
from services.platform.copies import GroupInstrumentTerms

_SETTINGS: Final = Table("account.group_instrument_settings", SETTINGS_COLUMNS)


@dataclass(frozen=True)
class GroupTerms:
    """A client group's columns that its creation and an update write (enums by name)."""

    name: str
    description: str
    leverage: int
    margin_call_level: Decimal
    stop_out_level: Decimal
    execution_mode: str
    position_mode: str
    spread_markup_type: str
    spread_markup: Decimal
    commission_per_lot: Decimal
    max_deviation_points: int


@dataclass(frozen=True, slots=True)
class InstrumentTerms(GroupInstrumentTerms):
    """A group's settings for one instrument: the terms every service copies, and the spread
    markup (which pricing alone copies); None leaves the group's own term in force."""

    spread_markup_type: str | None
    spread_markup: Decimal | None


async def insert_group(session: AsyncSession, currency: str, terms: GroupTerms) -> Row:
    """The new group's row; IntegrityError when the name is taken."""
    return await GROUPS.insert(session, {"id": uuid.uuid4(), "currency": currency, **asdict(terms)})


async def update_group(session: AsyncSession, group_id: uuid.UUID, terms: GroupTerms) -> Row:
    """The group's row after its terms are set and its version raised by one; IntegrityError
    when the new name is another group's."""
    row = await one(
        session,
        "UPDATE account.client_groups SET name = :name, description = :description,"
        " leverage = :leverage, margin_call_level = :margin_call_level,"
        " stop_out_level = :stop_out_level, execution_mode = :execution_mode,"
        " position_mode = :position_mode, spread_markup_type = :spread_markup_type,"
        " spread_markup = :spread_markup, commission_per_lot = :commission_per_lot,"
        " max_deviation_points = :max_deviation_points,"
        " version = version + 1, updated_at = now() WHERE id = :id"
        f" RETURNING {GROUP_COLUMNS}",
        {"id": group_id, **asdict(terms)},
    )
    assert row is not None
    return row


async def list_groups(session: AsyncSession, *, limit: int, offset: int) -> list[Row]:
    return await GROUPS.page(session, [], {}, limit=limit, offset=offset)


async def lot_step(session: AsyncSession, symbol: str) -> Decimal | None:
    """The instrument's lot step in this service's copy of pricing's catalogue
    (`instruments.py`), or None when the copy does not know the symbol."""
    row = await one(
        session, "SELECT lot_step FROM account.instruments WHERE symbol = :s", {"s": symbol}
    )
    return None if row is None else Decimal(row["lot_step"])


async def locked_instrument_settings(
    session: AsyncSession, group_id: uuid.UUID, symbol: str
) -> Row | None:
    """The group's settings for the symbol, locked until the transaction ends, or None."""
    return await _SETTINGS.row_where(
        session, "group_id = :g AND symbol = :s", {"g": group_id, "s": symbol}, lock=True
    )


async def put_instrument_settings(
    session: AsyncSession, group_id: uuid.UUID, symbol: str, terms: InstrumentTerms
) -> Row:
    """The group's settings for the symbol after they are written (created or replaced)."""
    row = await one(
        session,
        "INSERT INTO account.group_instrument_settings (group_id, symbol, enabled,"
        " spread_markup_type, spread_markup, commission_per_lot, execution_mode,"
        " max_deviation_points, max_order_size, max_position, margin_rate, updated_at)"
        " VALUES (:g, :s, :enabled, :spread_markup_type, :spread_markup, :commission_per_lot,"
        " :execution_mode, :max_deviation_points, :max_order_size, :max_position,"
        " :margin_rate, now())"
        " ON CONFLICT (group_id, symbol) DO UPDATE SET enabled = EXCLUDED.enabled,"
        " spread_markup_type = EXCLUDED.spread_markup_type,"
        " spread_markup = EXCLUDED.spread_markup,"
        " commission_per_lot = EXCLUDED.commission_per_lot,"
        " execution_mode = EXCLUDED.execution_mode,"
        " max_deviation_points = EXCLUDED.max_deviation_points,"
        " max_order_size = EXCLUDED.max_order_size,"
        " max_position = EXCLUDED.max_position, margin_rate = EXCLUDED.margin_rate,"
        f" updated_at = now() RETURNING {SETTINGS_COLUMNS}",
        {"g": group_id, "s": symbol, **asdict(terms)},
    )
    assert row is not None
    return row


async def list_instrument_settings(
    session: AsyncSession, group_id: uuid.UUID, *, limit: int, offset: int
) -> list[Row]:
    """The group's settings, by symbol."""
    return await many(
        session,
        f"SELECT {SETTINGS_COLUMNS} FROM account.group_instrument_settings"
        " WHERE group_id = :g ORDER BY symbol LIMIT :limit OFFSET :offset",
        {"g": group_id, "limit": limit, "offset": offset},
    )

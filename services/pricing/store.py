"""The pricing schema's SQL: the reference data (`reference.py`).

Each function runs in the caller's session and transaction, so a change stays one transaction;
none commits. Rows come back as SQLAlchemy rows of the columns each function names.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Final

from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.pricing.model import Markup, MarkupKind

__all__ = [
    "INSTRUMENT_COLUMNS",
    "insert_account",
    "load_accounts",
    "load_group_markups",
    "load_group_offers",
    "load_instruments",
    "save_group",
    "save_group_instrument",
]

INSTRUMENT_COLUMNS: Final = (
    "symbol, description, asset_class, base_currency, quote_currency, digits, tick_size,"
    " contract_size, min_lot, max_lot, lot_step, margin_rate, trading_status, halt_reason,"
    " sessions, version, updated_at"
)


# -- the reference data (reference.py) ----------------------------------------------------------


async def load_instruments(session: AsyncSession) -> Sequence[RowMapping]:
    """Every instrument's row (`INSTRUMENT_COLUMNS`), by symbol."""
    result = await session.execute(
        text(f"SELECT {INSTRUMENT_COLUMNS} FROM pricing.instruments ORDER BY symbol")
    )
    return result.mappings().all()


def _markup(kind: str, value: Decimal) -> Markup:
    return Markup(MarkupKind(kind), Decimal(value).normalize())


async def load_group_markups(session: AsyncSession) -> dict[str, Markup]:
    """Every group's default markup, by group id."""
    result = await session.execute(
        text("SELECT group_id::text, markup_type, markup FROM pricing.groups")
    )
    return {group_id: _markup(kind, value) for group_id, kind, value in result}


async def load_group_offers(session: AsyncSession) -> list[tuple[str, str, Markup | None]]:
    """The instruments the groups offer (enabled): (group_id, symbol, markup), the markup None
    where the group's default applies (migration 0004: type and value are both set or both
    NULL)."""
    result = await session.execute(
        text(
            "SELECT group_id::text, symbol, markup_type, markup FROM pricing.group_instruments"
            " WHERE enabled"
        )
    )
    return [
        (group_id, symbol, None if kind is None else _markup(kind, value))
        for group_id, symbol, kind, value in result
    ]


async def load_accounts(session: AsyncSession) -> list[tuple[str, str, str]]:
    """Every trading account: (account_id, user_id, group_id)."""
    result = await session.execute(
        text("SELECT account_id::text, user_id::text, group_id::text FROM pricing.accounts")
    )
    return [(account_id, user_id, group_id) for account_id, user_id, group_id in result]


async def save_group(
    session: AsyncSession,
    *,
    group_id: str,
    name: str,
    markup_type: str,
    markup: Decimal,
    version: int,
) -> None:
    """Upserts a group's copy if `version` is newer than the one stored."""
    await session.execute(
        text(
            "INSERT INTO pricing.groups (group_id, name, markup_type, markup, version)"
            " VALUES (:id, :name, :kind, :markup, :version)"
            " ON CONFLICT (group_id) DO UPDATE SET name = EXCLUDED.name,"
            " markup_type = EXCLUDED.markup_type, markup = EXCLUDED.markup,"
            " version = EXCLUDED.version, updated_at = now()"
            " WHERE pricing.groups.version < EXCLUDED.version"
        ),
        {"id": group_id, "name": name, "kind": markup_type, "markup": markup, "version": version},
    )


async def save_group_instrument(
    session: AsyncSession,
    *,
    group_id: str,
    symbol: str,
    enabled: bool,
    markup_type: str | None,
    markup: Decimal | None,
    version: int,
) -> None:
    """Upserts a group's offer of an instrument if `version` is newer than the one stored; its
    markup None: the group's default applies."""
    await session.execute(
        text(
            "INSERT INTO pricing.group_instruments (group_id, symbol, enabled,"
            " markup_type, markup, version)"
            " VALUES (:group, :symbol, :enabled, :kind, :markup, :version)"
            " ON CONFLICT (group_id, symbol) DO UPDATE SET enabled = EXCLUDED.enabled,"
            " markup_type = EXCLUDED.markup_type, markup = EXCLUDED.markup,"
            " version = EXCLUDED.version, updated_at = now()"
            " WHERE pricing.group_instruments.version < EXCLUDED.version"
        ),
        {
            "group": group_id,
            "symbol": symbol,
            "enabled": enabled,
            "kind": markup_type,
            "markup": markup,
            "version": version,
        },
    )


async def insert_account(
    session: AsyncSession, *, account_id: str, user_id: str, group_id: str
) -> None:
    """Stores a trading account's group, unless the account is stored already."""
    await session.execute(
        text(
            "INSERT INTO pricing.accounts (account_id, user_id, group_id)"
            " VALUES (:id, :user, :group) ON CONFLICT (account_id) DO NOTHING"
        ),
        {"id": account_id, "user": user_id, "group": group_id},
    )

"""The pricing schema's SQL: the reference data (`reference.py`) and the instrument changes of
PricingAdminService (`admin.py`).

Each function runs in the caller's session and transaction, so a change stays one transaction;
none commits. Rows come back as SQLAlchemy rows of the columns each function names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Final

from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.pricing.model import Markup, MarkupKind

__all__ = [
    "INSTRUMENT_COLUMNS",
    "insert_account",
    "insert_instrument",
    "load_accounts",
    "load_group_markups",
    "load_group_offers",
    "load_instruments",
    "lock_instrument",
    "save_group",
    "save_group_instrument",
    "update_instrument_spec",
    "update_trading_status",
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


# -- instrument changes (admin.py) ------------------------------------------------------------

_INSERT_INSTRUMENT: Final = text(
    "INSERT INTO pricing.instruments (symbol, description, asset_class, base_currency,"
    " quote_currency, digits, tick_size, contract_size, min_lot, max_lot, lot_step, margin_rate,"
    " sessions) VALUES (:symbol, :description, :asset_class, :base_currency, :quote_currency,"
    " :digits, :tick_size, :contract_size, :min_lot, :max_lot, :lot_step, :margin_rate,"
    " CAST(:sessions AS jsonb)) ON CONFLICT (symbol) DO NOTHING"
    f" RETURNING {INSTRUMENT_COLUMNS}"
)
_LOCK_INSTRUMENT: Final = text(
    f"SELECT {INSTRUMENT_COLUMNS} FROM pricing.instruments WHERE symbol = :symbol FOR UPDATE"
)
_UPDATE_SPEC: Final = text(
    "UPDATE pricing.instruments SET description = :description, digits = :digits,"
    " tick_size = :tick_size, min_lot = :min_lot, max_lot = :max_lot, lot_step = :lot_step,"
    " margin_rate = :margin_rate, sessions = CAST(:sessions AS jsonb), version = version + 1,"
    f" updated_at = now() WHERE symbol = :symbol RETURNING {INSTRUMENT_COLUMNS}"
)
_UPDATE_STATUS: Final = text(
    "UPDATE pricing.instruments SET trading_status = :status, halt_reason = :reason,"
    " version = version + 1, updated_at = now() WHERE symbol = :symbol"
    f" RETURNING {INSTRUMENT_COLUMNS}"
)


async def insert_instrument(
    session: AsyncSession, values: Mapping[str, object]
) -> RowMapping | None:
    """Inserts an instrument (`values`: its columns, `sessions` as JSON text); its row
    (`INSTRUMENT_COLUMNS`), or None when an instrument of the symbol exists."""
    result = await session.execute(_INSERT_INSTRUMENT, values)
    return result.mappings().first()


async def lock_instrument(session: AsyncSession, symbol: str) -> RowMapping | None:
    """The instrument's row (`INSTRUMENT_COLUMNS`), locked (FOR UPDATE) until the transaction
    ends; None when there is no such instrument."""
    result = await session.execute(_LOCK_INSTRUMENT, {"symbol": symbol})
    return result.mappings().first()


async def update_instrument_spec(session: AsyncSession, values: Mapping[str, object]) -> RowMapping:
    """Writes an instrument's changeable fields (`values`, by column, with its `symbol`) and a
    new version; the row after (`INSTRUMENT_COLUMNS`). The row must exist."""
    result = await session.execute(_UPDATE_SPEC, values)
    return result.mappings().one()


async def update_trading_status(
    session: AsyncSession, symbol: str, status: str, reason: str
) -> RowMapping:
    """Writes an instrument's trading status ("TRADING" or "HALTED") and halt reason, and a new
    version; the row after (`INSTRUMENT_COLUMNS`). The row must exist."""
    result = await session.execute(
        _UPDATE_STATUS, {"symbol": symbol, "status": status, "reason": reason}
    )
    return result.mappings().one()

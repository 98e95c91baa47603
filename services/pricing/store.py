"""The pricing schema's SQL: the reference data (`reference.py`), the instrument changes of
PricingAdminService (`admin.py`), the candle job's reads and writes and GetCandles' reads
(`candles.py`).

Each function runs in the caller's session (the candle job's: its connection) and transaction,
so a change stays one transaction; none commits. Reads return the rows of the columns each
function names, or plain values (markups, tuples).

The tick store's own machinery stays beside it: the COPY batches of `ticks.py` with their
shared advisory lock, and in `candles.py` the job's cutoff (the exclusive advisory lock and the
id sequence it reads under it) and the partition functions of migration 0005.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from typing import Final
from typing import NamedTuple

from sqlalchemy import Row
from sqlalchemy import RowMapping
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.asyncio import AsyncSession

from services.pricing.model import Bar
from services.pricing.model import Markup
from services.pricing.model import MarkupKind

__all__ = [
    "INSTRUMENT_COLUMNS",
    "CandleRow",
    "advance_candle_watermark",
    "candle_page",
    "insert_account",
    "insert_instrument",
    "instrument_digits",
    "load_accounts",
    "load_group_markups",
    "load_group_offers",
    "load_instruments",
    "lock_candle_watermark",
    "lock_instrument",
    "mark_candles_complete",
    "published_prices_after",
    "save_group",
    "save_group_instrument",
    "stored_candles",
    "update_instrument_spec",
    "update_trading_status",
    "upsert_candles",
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


# -- the candle job (candles.py) --------------------------------------------------------------


class CandleRow(NamedTuple):
    """A `pricing.candles` row as the candle job writes it: a group's bar of a symbol and
    timeframe, and whether its period has ended."""

    group_id: str
    symbol: str
    timeframe: str  # M1, M5, H1, D1
    bar: Bar
    complete: bool


_INTERVALS_SQL: Final = (
    "CASE timeframe WHEN 'M1' THEN interval '1 minute' WHEN 'M5' THEN interval '5 minutes'"
    " WHEN 'H1' THEN interval '1 hour' ELSE interval '1 day' END"
)


async def lock_candle_watermark(connection: AsyncConnection, job: str) -> int | None:
    """The id of the last published price the job folded, its row locked (FOR UPDATE) until the
    transaction ends, so that instances of the job take turns; None without the job's row."""
    last_id: int | None = await connection.scalar(
        text("SELECT last_id FROM pricing.candle_watermark WHERE job = :job FOR UPDATE"),
        {"job": job},
    )
    return last_id


async def advance_candle_watermark(connection: AsyncConnection, job: str, last_id: int) -> None:
    await connection.execute(
        text(
            "UPDATE pricing.candle_watermark SET last_id = :last_id, updated_at = now()"
            " WHERE job = :job"
        ),
        {"last_id": last_id, "job": job},
    )


async def published_prices_after(
    connection: AsyncConnection, after: int, cutoff: int, limit: int
) -> Sequence[Row[int, str, str, datetime, Decimal]]:
    """Up to `limit` published prices whose ids are above `after` and at most `cutoff`, in id
    order: (id, group_id, symbol, time, bid)."""
    result = await connection.execute(
        text(
            "SELECT id, group_id::text, symbol, time, bid FROM pricing.published_prices"
            " WHERE id > :after AND id <= :cutoff ORDER BY id LIMIT :limit"
        ),
        {"after": after, "cutoff": cutoff, "limit": limit},
    )
    return result.all()


def _key_arrays(keys: Iterable[tuple[str, str, str, datetime]]) -> dict[str, list[Any]]:
    arrays: dict[str, list[Any]] = {"groups": [], "symbols": [], "timeframes": [], "open_times": []}
    for group_id, symbol, timeframe, open_time in keys:
        arrays["groups"].append(group_id)
        arrays["symbols"].append(symbol)
        arrays["timeframes"].append(timeframe)
        arrays["open_times"].append(open_time)
    return arrays


async def stored_candles(
    connection: AsyncConnection, keys: Sequence[tuple[str, str, str, datetime]]
) -> dict[tuple[str, str, str, datetime], Bar]:
    """The stored candles of these keys, (group_id, symbol, timeframe, open_time) each."""
    result = await connection.execute(
        text(
            # From c.open_time on, the columns are a Bar's fields in order.
            "SELECT c.group_id::text AS group_id, c.symbol, c.timeframe, c.open_time, c.open,"
            " c.high, c.low, c.close, c.tick_volume, c.first_tick_time, c.last_tick_time"
            " FROM pricing.candles c"
            " JOIN unnest(CAST(:groups AS uuid[]), CAST(:symbols AS text[]),"
            "   CAST(:timeframes AS text[]), CAST(:open_times AS timestamptz[]))"
            "   AS k(group_id, symbol, timeframe, open_time)"
            " ON c.group_id = k.group_id AND c.symbol = k.symbol"
            "  AND c.timeframe = k.timeframe AND c.open_time = k.open_time"
        ),
        _key_arrays(keys),
    )
    return {(row[0], row[1], row[2], row[3]): Bar(*row[3:]) for row in result.all()}


async def upsert_candles(connection: AsyncConnection, candles: Sequence[CandleRow]) -> None:
    """Writes the candles in one statement: a stored candle takes the new values, and stays
    complete once it was."""
    params = _key_arrays((c.group_id, c.symbol, c.timeframe, c.bar.open_time) for c in candles)
    params |= {
        "opens": [c.bar.open for c in candles],
        "highs": [c.bar.high for c in candles],
        "lows": [c.bar.low for c in candles],
        "closes": [c.bar.close for c in candles],
        "volumes": [c.bar.tick_volume for c in candles],
        "completes": [c.complete for c in candles],
        "firsts": [c.bar.first_tick_time for c in candles],
        "lasts": [c.bar.last_tick_time for c in candles],
    }
    await connection.execute(
        text(
            "INSERT INTO pricing.candles (group_id, symbol, timeframe, open_time, open, high,"
            " low, close, tick_volume, complete, first_tick_time, last_tick_time)"
            " SELECT * FROM unnest(CAST(:groups AS uuid[]), CAST(:symbols AS text[]),"
            "  CAST(:timeframes AS text[]), CAST(:open_times AS timestamptz[]),"
            "  CAST(:opens AS numeric[]), CAST(:highs AS numeric[]), CAST(:lows AS numeric[]),"
            "  CAST(:closes AS numeric[]), CAST(:volumes AS bigint[]),"
            "  CAST(:completes AS boolean[]), CAST(:firsts AS timestamptz[]),"
            "  CAST(:lasts AS timestamptz[]))"
            " ON CONFLICT (group_id, symbol, timeframe, open_time) DO UPDATE SET"
            "  open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,"
            "  close = EXCLUDED.close, tick_volume = EXCLUDED.tick_volume,"
            "  complete = candles.complete OR EXCLUDED.complete,"
            "  first_tick_time = EXCLUDED.first_tick_time,"
            "  last_tick_time = EXCLUDED.last_tick_time, updated_at = now()"
        ),
        params,
    )


async def mark_candles_complete(connection: AsyncConnection, completed_by: datetime) -> None:
    """Marks complete every candle whose period ended by `completed_by`."""
    await connection.execute(
        text(
            "UPDATE pricing.candles SET complete = true, updated_at = now()"
            f" WHERE NOT complete AND open_time + {_INTERVALS_SQL} <= :completed_by"
        ),
        {"completed_by": completed_by},
    )


# -- GetCandles (candles.py) ------------------------------------------------------------------


async def candle_page(
    session: AsyncSession,
    *,
    group_id: str,
    symbol: str,
    timeframe: str,
    start: datetime | None,
    end: datetime | None,
    before: datetime | None,
    limit: int,
) -> Sequence[Row[datetime, Decimal, Decimal, Decimal, Decimal, int, bool]]:
    """Up to `limit` of the group's candles of `symbol` and `timeframe`, newest first, whose
    open time is in [start, end) and before `before` (None: no bound): (open_time, open, high,
    low, close, tick_volume, complete)."""
    clauses = ["group_id = CAST(:group_id AS uuid)", "symbol = :symbol", "timeframe = :tf"]
    params: dict[str, Any] = {
        "group_id": group_id,
        "symbol": symbol,
        "tf": timeframe,
        "limit": limit,
    }
    if start is not None:
        clauses.append("open_time >= :start")
        params["start"] = start
    if end is not None:
        clauses.append("open_time < :end")
        params["end"] = end
    if before is not None:
        clauses.append("open_time < :before")
        params["before"] = before
    result = await session.execute(
        text(
            "SELECT open_time, open, high, low, close, tick_volume, complete"
            f" FROM pricing.candles WHERE {' AND '.join(clauses)}"
            " ORDER BY open_time DESC LIMIT :limit"
        ),
        params,
    )
    return result.all()


async def instrument_digits(session: AsyncSession, symbol: str) -> int | None:
    """The instrument's digits; None for a symbol that is no instrument."""
    digits: int | None = await session.scalar(
        text("SELECT digits FROM pricing.instruments WHERE symbol = :symbol"),
        {"symbol": symbol},
    )
    return digits

"""The tick store's writer: LP ticks and published prices to PostgreSQL in batches (ADR 0006).

`TickWriter.add_lp_ticks` and `add_published` are called on the hot path: they only append to
in-memory buffers and never await. A background task writes the buffers with COPY every
`flush_interval` seconds, or as soon as `batch_rows` rows wait. While PostgreSQL is away the
rows stay buffered, up to `max_buffered` rows per table; beyond that the oldest are dropped and
counted (`pricing_tick_rows_dropped_total`), never grown without limit.

Rows land in `pricing.lp_ticks` and `pricing.published_prices` (migration 0005), whose daily
partitions the candle job creates ahead of time. A row outside every partition fails its whole
batch, which is then retried like any other failure.

Every insert into `pricing.published_prices` holds `PUBLISHED_PRICES_WRITE_LOCK` shared for its
transaction: the candle job takes it exclusively for an instant to learn an id below which
every row has committed (see `services.pricing.candles`). Another writer of that table must do
the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from decimal import Context
from decimal import Decimal
from decimal import InvalidOperation
from typing import Any
from typing import Final

import psycopg
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.platform.db import Database
from services.platform.tasks import cancel_and_wait
from services.pricing.model import LpQuote
from services.pricing.model import PublishedPrice

__all__ = [
    "LP_TICK_COLUMNS",
    "PUBLISHED_PRICES_WRITE_LOCK",
    "PUBLISHED_PRICE_COLUMNS",
    "TickWriter",
    "lp_tick_row",
    "published_price_row",
]

_log = logging.getLogger(__name__)

PUBLISHED_PRICES_WRITE_LOCK: Final = 0x7072_6963_6573  # "prices": pg_advisory lock key
"""Held shared by every transaction that inserts into pricing.published_prices."""

# (column, PostgreSQL type) in COPY order; binary COPY needs the types.
_LP_TICKS: Final = (
    ("time", "timestamptz"),
    ("lp", "text"),
    ("symbol", "text"),
    ("bid", "numeric"),
    ("ask", "numeric"),
    ("bid_size", "numeric"),
    ("ask_size", "numeric"),
    ("quote_id", "text"),
    ("lp_time", "timestamptz"),
)
_PUBLISHED_PRICES: Final = (
    ("time", "timestamptz"),
    ("group_id", "uuid"),
    ("symbol", "text"),
    ("bid", "numeric"),
    ("ask", "numeric"),
    ("version", "int8"),
    ("bid_lp", "text"),
    ("ask_lp", "text"),
    ("bid_quote_id", "text"),
    ("ask_quote_id", "text"),
    ("markup_type", "text"),
    ("markup", "numeric"),
)
LP_TICK_COLUMNS: Final = tuple(name for name, _ in _LP_TICKS)
PUBLISHED_PRICE_COLUMNS: Final = tuple(name for name, _ in _PUBLISHED_PRICES)

# NUMERIC(30, 12): a value with more fraction digits would be rounded by PostgreSQL.
_MAX_FRACTION_DIGITS: Final = 12
_MAX_INTEGER_DIGITS: Final = 18
_SMALLEST: Final = Decimal(1).scaleb(-_MAX_FRACTION_DIGITS)
_WIDE: Final = Context(prec=_MAX_INTEGER_DIGITS + _MAX_FRACTION_DIGITS + 2)

_FLUSH_INTERVAL_SECONDS: Final = 0.2
_BATCH_ROWS: Final = 5_000
# Per table. At 20,000 LP ticks a second this is 10 s of ticks; beyond it the oldest go.
_MAX_BUFFERED_ROWS: Final = 200_000
_MAX_RETRY_SECONDS: Final = 5.0
_STOP_FLUSH_TIMEOUT_SECONDS: Final = 10.0
_DROP_LOG_SECONDS: Final = 10.0

_ROWS_WRITTEN = Counter(
    "pricing_tick_rows_written_total", "Rows written to the tick store, by table.", ["table"]
)
_ROWS_DROPPED = Counter(
    "pricing_tick_rows_dropped_total",
    "Rows never written to the tick store, by table and reason (buffer_full, inexact, stopped).",
    ["table", "reason"],
)
_ROWS_BUFFERED = Gauge(
    "pricing_tick_rows_buffered", "Rows waiting to be written to the tick store.", ["table"]
)
_FLUSH_SECONDS = Histogram(
    "pricing_tick_flush_seconds", "Time to write one batch of the tick store with COPY."
)
_FLUSH_FAILURES = Counter("pricing_tick_flush_failures_total", "Failed tick store writes.")


class InexactValueError(ValueError):
    """A value that NUMERIC(30, 12) cannot hold exactly."""


def _exact(value: Decimal) -> Decimal:
    """`value`, if NUMERIC(30, 12) holds it exactly (18 integer, 12 fraction digits)."""
    try:
        fits = (
            value.quantize(_SMALLEST, context=_WIDE) == value
            and value.adjusted() < _MAX_INTEGER_DIGITS
        )
    except InvalidOperation:  # infinite, or a signalling NaN
        fits = False
    if not fits:
        raise InexactValueError(f"{value} does not fit NUMERIC(30, 12) exactly")
    return value


def lp_tick_row(quote: LpQuote) -> tuple[Any, ...]:
    """The `pricing.lp_ticks` row of an LP quote, in `LP_TICK_COLUMNS` order.

    Its time is when the gateway received it (our clock), the partition key.
    """
    return (
        quote.received_at,
        quote.lp,
        quote.symbol,
        _exact(quote.bid),
        _exact(quote.ask),
        _exact(quote.bid_size),
        _exact(quote.ask_size),
        quote.quote_id,
        quote.lp_time,
    )


@functools.lru_cache(maxsize=4096)
def _group_uuid(group_id: str) -> uuid.UUID:
    # Few groups, many prices: parse each id once.
    return uuid.UUID(group_id)


def published_price_row(price: PublishedPrice) -> tuple[Any, ...]:
    """The `pricing.published_prices` row of a price, in `PUBLISHED_PRICE_COLUMNS` order."""
    return (
        price.time,
        _group_uuid(price.group_id),
        price.symbol,
        _exact(price.bid),
        _exact(price.ask),
        price.version,
        price.bid_source.lp,
        price.ask_source.lp,
        price.bid_source.quote_id,
        price.ask_source.quote_id,
        price.markup.kind.value,
        _exact(price.markup.value),
    )


@dataclass
class _Buffer:
    """One table's pending rows, oldest first, at most `limit` of them."""

    table: str
    limit: int
    rows: deque[Any] = field(default_factory=deque)
    unlogged_drops: int = 0
    last_drop_log: float = -_DROP_LOG_SECONDS

    def add(self, items: Iterable[Any]) -> None:
        rows = self.rows
        rows.extend(items)
        excess = len(rows) - self.limit
        if excess > 0:
            for _ in range(excess):
                rows.popleft()
            self._dropped(excess)

    def take(self) -> list[Any]:
        taken = list(self.rows)
        self.rows.clear()
        return taken

    def put_back(self, taken: list[Any]) -> None:
        """Returns rows that could not be written, ahead of those that came meanwhile."""
        newer = list(self.rows)
        self.rows.clear()
        self.rows.extend(taken)
        self.add(newer)

    def _dropped(self, count: int) -> None:
        _ROWS_DROPPED.labels(self.table, "buffer_full").inc(count)
        # Logged at most every few seconds: while the database is away this runs per batch.
        self.unlogged_drops += count
        now = time.monotonic()
        if now - self.last_drop_log >= _DROP_LOG_SECONDS:
            _log.warning(
                "tick store buffer full: dropped the oldest rows",
                extra={"table": self.table, "dropped": self.unlogged_drops},
            )
            self.unlogged_drops = 0
            self.last_drop_log = now


class TickWriter:
    """Buffers LP ticks and published prices and writes them with COPY in the background.

    `start()` at service start; `stop()` at shutdown writes what is left (once, within a time
    limit). `flush()` writes now and returns how many rows it wrote (tests, shutdown).
    """

    def __init__(
        self,
        db: Database,
        *,
        flush_interval: float = _FLUSH_INTERVAL_SECONDS,
        batch_rows: int = _BATCH_ROWS,
        max_buffered: int = _MAX_BUFFERED_ROWS,
    ) -> None:
        if flush_interval <= 0 or batch_rows < 1 or max_buffered < batch_rows:
            raise ValueError("need flush_interval > 0 and 1 <= batch_rows <= max_buffered")
        self._db = db
        self._flush_interval = flush_interval
        self._batch_rows = batch_rows
        self._lp_ticks = _Buffer("lp_ticks", max_buffered)
        self._published = _Buffer("published_prices", max_buffered)
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()

    # -- the hot path: no I/O, no await ---------------------------------------------------------

    def add_lp_ticks(self, quotes: Iterable[LpQuote]) -> None:
        self._lp_ticks.add(quotes)
        self._wake_if_full(self._lp_ticks)

    def add_published(self, prices: Iterable[PublishedPrice]) -> None:
        self._published.add(prices)
        self._wake_if_full(self._published)

    def _wake_if_full(self, buffer: _Buffer) -> None:
        if len(buffer.rows) >= self._batch_rows:
            self._full.set()

    @property
    def buffered(self) -> tuple[int, int]:
        """How many LP ticks and published prices wait to be written."""
        return len(self._lp_ticks.rows), len(self._published.rows)

    # -- writing ----------------------------------------------------------------------------------

    async def flush(self) -> int:
        """Writes every buffered row in one transaction; returns how many rows were written.

        On failure the rows go back to the front of their buffers (within the bound) and the
        error propagates.
        """
        async with self._flush_lock:
            quotes = self._lp_ticks.take()
            prices = self._published.take()
            if not quotes and not prices:
                return 0
            ticks_rows = _convert(quotes, lp_tick_row, "lp_ticks")
            price_rows = _convert(prices, published_price_row, "published_prices")
            try:
                started = time.perf_counter()
                async with self._db.primary.begin() as connection:
                    await _copy(connection, "lp_ticks", _LP_TICKS, ticks_rows)
                    if price_rows:
                        await connection.execute(
                            text("SELECT pg_advisory_xact_lock_shared(:key)"),
                            {"key": PUBLISHED_PRICES_WRITE_LOCK},
                        )
                    await _copy(connection, "published_prices", _PUBLISHED_PRICES, price_rows)
                _FLUSH_SECONDS.observe(time.perf_counter() - started)
            except BaseException:
                # Converted already: a retry neither converts nor refuses them twice.
                self._lp_ticks.put_back(ticks_rows)
                self._published.put_back(price_rows)
                raise
            finally:
                self._update_gauges()
            _ROWS_WRITTEN.labels("lp_ticks").inc(len(ticks_rows))
            _ROWS_WRITTEN.labels("published_prices").inc(len(price_rows))
            return len(ticks_rows) + len(price_rows)

    def _update_gauges(self) -> None:
        _ROWS_BUFFERED.labels("lp_ticks").set(len(self._lp_ticks.rows))
        _ROWS_BUFFERED.labels("published_prices").set(len(self._published.rows))

    async def run(self) -> None:
        """Flushes until cancelled; a failure is logged and retried with back-off."""
        failures = 0
        while True:
            if failures:
                # Back off, even if a full batch is waiting: the database is in trouble.
                await asyncio.sleep(min(_MAX_RETRY_SECONDS, self._flush_interval * 2**failures))
            elif max(self.buffered) < self._batch_rows:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._flush_interval)
            try:
                await self.flush()
            except Exception:
                failures += 1
                _FLUSH_FAILURES.inc()
                if failures == 1 or failures % 20 == 0:
                    lp, published = self.buffered
                    _log.exception(
                        "tick store write failed; rows stay buffered and are retried",
                        extra={"failures": failures, "lp_ticks": lp, "published_prices": published},
                    )
                continue
            if failures:
                _log.info("tick store writes recovered", extra={"failures": failures})
            failures = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="tick-writer")

    async def stop(self) -> None:
        """Stops the background task, then writes what is left; what cannot be written within
        the time limit is counted as dropped (reason "stopped") and logged."""
        await cancel_and_wait(self._task)
        self._task = None
        try:
            async with asyncio.timeout(_STOP_FLUSH_TIMEOUT_SECONDS):
                await self.flush()
        except Exception:
            lp, published = self.buffered
            _ROWS_DROPPED.labels("lp_ticks", "stopped").inc(lp)
            _ROWS_DROPPED.labels("published_prices", "stopped").inc(published)
            _log.exception(
                "tick store: rows lost at shutdown",
                extra={"lp_ticks": lp, "published_prices": published},
            )
            self._lp_ticks.take()
            self._published.take()


def _convert(
    items: Sequence[Any], row_of: Callable[[Any], tuple[Any, ...]], table: str
) -> list[tuple[Any, ...]]:
    """The rows of `items` (model objects, or rows put back after a failed write); an item
    whose values PostgreSQL would round is dropped and logged, so that one bad value never
    blocks the batch and is never stored rounded."""
    rows: list[tuple[Any, ...]] = []
    for item in items:
        if isinstance(item, tuple):
            rows.append(item)
            continue
        try:
            rows.append(row_of(item))
        except InexactValueError as error:
            _ROWS_DROPPED.labels(table, "inexact").inc()
            _log.error("tick store: row refused", extra={"table": table, "error": str(error)})
    return rows


async def _copy(
    connection: AsyncConnection,
    table: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """COPY in binary: no text round trip for timestamps and decimals (exact either way)."""
    if not rows:
        return
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if not isinstance(driver, psycopg.AsyncConnection):
        raise TypeError(f"COPY needs psycopg 3 (async), not {type(driver).__name__}")
    names = ", ".join(name for name, _ in columns)
    statement = f"COPY pricing.{table} ({names}) FROM STDIN (FORMAT BINARY)"
    async with driver.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types([pg_type for _, pg_type in columns])
        for row in rows:
            await copy.write_row(row)

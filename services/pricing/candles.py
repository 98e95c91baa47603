"""Candles: OHLC of the bid and tick volume per client group, symbol and timeframe (ADR 0006).

Three parts:

- Pure (no I/O): UTC buckets of each `Timeframe`, the `merge` of two bars (`model.Bar`),
  `aggregate` of (time, bid) ticks into bars, `roll_up` of M1 bars into wider ones, page tokens.
- `CandleJob`: folds the rows of `pricing.published_prices` added since its watermark into
  `pricing.candles` (M1 from the ticks, M5/H1/D1 rolled up from those M1 bars, each merged into
  the stored candle), advances the watermark in the same transaction, marks candles complete
  once their period has ended, and keeps the tick partitions: created ahead, dropped past the
  retention (`TM_PRICING_TICK_RETENTION_DAYS`, default 7 days besides today).
- `CandleStore.page`: what `PricingService.GetCandles` returns, newest first, in pages.

The reads and writes of the watermark, the published prices and the candles are `store.py`'s;
the cutoff's advisory lock and the partition functions are the job's own, here.

Which rows are new. `published_prices.id` comes from a sequence, but ids are not committed in
order (two writers, or a long COPY). The job therefore takes `PUBLISHED_PRICES_WRITE_LOCK`
exclusively for an instant: writers hold it shared for their whole transaction, so once the job
has it no write is in flight, and every id up to the sequence's current value has committed (or
never will). That id is the cutoff of the run; rows above the watermark and up to the cutoff are
folded, in id order, in batches. A row written late (after an outage, with an old time) is
therefore still counted, and merges into its candle exactly: it becomes the open or the close
only if its time is before or after every tick the candle already holds.

A candle is complete once its period ended `completion_grace` before the run (its ticks may
still sit in a writer's buffer for up to one flush interval). A tick that arrives even later
(a long outage) still updates the complete candle.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from typing import Final
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.platform import paging
from services.platform.db import Database
from services.platform.errors import DomainError
from services.platform.messages import timestamp
from services.platform.paging import bad_token
from services.platform.paging import decode_token
from services.platform.paging import encode_token
from services.platform.settings import SettingsError
from services.platform.tasks import cancel_and_wait
from services.pricing import store
from services.pricing.model import Bar
from services.pricing.ticks import PUBLISHED_PRICES_WRITE_LOCK
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.exact import format_decimal
from tradingmesh.pricing.v1 import pricing_pb2

__all__ = [
    "RETENTION_VARIABLE",
    "CandleJob",
    "CandleKey",
    "CandleStore",
    "PriceTick",
    "Timeframe",
    "aggregate",
    "bucket_start",
    "build_candles",
    "decode_page_token",
    "encode_page_token",
    "is_complete",
    "merge",
    "price_text",
    "roll_up",
    "tick_retention_days",
]

_log = logging.getLogger(__name__)

RETENTION_VARIABLE: Final = "TM_PRICING_TICK_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS: Final = 7

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_JOB: Final = "candles"
_TOKEN_VERSION: Final = "c1"


# -- pure --------------------------------------------------------------------------------------


class Timeframe(Enum):
    """The candle widths; every bucket starts on a multiple of its width since 1970-01-01 UTC,
    which is the full minute, the minutes 00, 05, 10, ..., the full hour and 00:00 UTC."""

    M1 = "M1"
    M5 = "M5"
    H1 = "H1"
    D1 = "D1"

    @property
    def width(self) -> timedelta:
        return _WIDTHS[self]

    @property
    def proto(self) -> pricing_pb2.Timeframe.ValueType:
        return _PROTO[self]

    @classmethod
    def from_proto(cls, value: pricing_pb2.Timeframe.ValueType) -> Timeframe:
        for timeframe, proto in _PROTO.items():
            if proto == value:
                return timeframe
        raise ValueError(f"{value} is not a timeframe")


_WIDTHS: Final = {
    Timeframe.M1: timedelta(minutes=1),
    Timeframe.M5: timedelta(minutes=5),
    Timeframe.H1: timedelta(hours=1),
    Timeframe.D1: timedelta(days=1),
}
_PROTO: Final = {
    Timeframe.M1: pricing_pb2.TIMEFRAME_M1,
    Timeframe.M5: pricing_pb2.TIMEFRAME_M5,
    Timeframe.H1: pricing_pb2.TIMEFRAME_H1,
    Timeframe.D1: pricing_pb2.TIMEFRAME_D1,
}
ROLLED_UP: Final = (Timeframe.M5, Timeframe.H1, Timeframe.D1)


def bucket_start(time: datetime, timeframe: Timeframe) -> datetime:
    """The open time of the `timeframe` candle that holds `time` (an aware datetime)."""
    if time.tzinfo is None:
        raise ValueError("candle times must be timezone-aware")
    since_epoch = time - _EPOCH
    return _EPOCH + (since_epoch // timeframe.width) * timeframe.width


def is_complete(open_time: datetime, timeframe: Timeframe, now: datetime) -> bool:
    """Whether the candle opened at `open_time` has ended by `now`."""
    return open_time + timeframe.width <= now


def merge(known: Bar, newer: Bar) -> Bar:
    """One bar of the ticks of both; `newer` holds ticks that arrived after those of `known`.

    The open is the earliest tick's bid and the close the latest's; between ticks of the same
    time, arrival decides (the first arrived opens, the last arrived closes).
    """
    if known.open_time != newer.open_time:
        raise ValueError("only bars of the same period merge")
    earlier = known if known.first_tick_time <= newer.first_tick_time else newer
    later = newer if newer.last_tick_time >= known.last_tick_time else known
    return Bar(
        open_time=known.open_time,
        open=earlier.open,
        high=max(known.high, newer.high),
        low=min(known.low, newer.low),
        close=later.close,
        tick_volume=known.tick_volume + newer.tick_volume,
        first_tick_time=earlier.first_tick_time,
        last_tick_time=later.last_tick_time,
    )


def aggregate(ticks: Iterable[tuple[datetime, Decimal]], timeframe: Timeframe) -> list[Bar]:
    """The bars of (time, bid) ticks given in arrival order, oldest period first.

    The same as folding every tick into its bar with `merge` (tests hold them equal), written
    with mutable accumulators because it runs once per published price.
    """
    width = timeframe.width // _MICROSECOND
    # open micros -> [open, high, low, close, volume, first time, last time]
    acc: dict[int, list[Any]] = {}
    for time, bid in ticks:
        if time.tzinfo is None:
            raise ValueError("candle times must be timezone-aware")
        micros = (time - _EPOCH) // _MICROSECOND
        start = micros - micros % width
        bar = acc.get(start)
        if bar is None:
            acc[start] = [bid, bid, bid, bid, 1, time, time]
            continue
        if time < bar[5]:
            bar[0], bar[5] = bid, time
        if time >= bar[6]:
            bar[3], bar[6] = bid, time
        if bid > bar[1]:
            bar[1] = bid
        if bid < bar[2]:
            bar[2] = bid
        bar[4] += 1
    return [Bar(_EPOCH + start * _MICROSECOND, *acc[start]) for start in sorted(acc)]


def roll_up(bars: Iterable[Bar], timeframe: Timeframe) -> list[Bar]:
    """Narrower bars (e.g. M1) of one series folded into `timeframe` bars, oldest first.

    Equal to aggregating the underlying ticks directly, since each bar keeps the times of its
    first and last tick.
    """
    wider: dict[datetime, Bar] = {}
    for bar in sorted(bars, key=lambda b: b.open_time):
        open_time = bucket_start(bar.open_time, timeframe)
        if bucket_start(bar.last_tick_time, timeframe) != open_time:
            raise ValueError(f"a bar of {bar.open_time} does not fit one {timeframe.value} bar")
        moved = replace(bar, open_time=open_time)
        known = wider.get(open_time)
        wider[open_time] = moved if known is None else merge(known, moved)
    return [wider[t] for t in sorted(wider)]


class PriceTick(NamedTuple):
    """The part of a published price that candles use."""

    group_id: str
    symbol: str
    time: datetime
    bid: Decimal


CandleKey = tuple[str, str, Timeframe, datetime]
"""(group id, symbol, timeframe, open time): a candle's identity."""


def build_candles(ticks: Iterable[tuple[str, str, datetime, Decimal]]) -> dict[CandleKey, Bar]:
    """Every candle (M1, M5, H1, D1) of published prices (`PriceTick`s, or plain tuples in
    that order) given in arrival order: M1 from the ticks, the wider ones rolled up from those
    M1 bars."""
    series: dict[tuple[str, str], list[tuple[datetime, Decimal]]] = defaultdict(list)
    for group_id, symbol, time, bid in ticks:
        series[(group_id, symbol)].append((time, bid))
    candles: dict[CandleKey, Bar] = {}
    for (group_id, symbol), points in series.items():
        minutes = aggregate(points, Timeframe.M1)
        for bar in minutes:
            candles[(group_id, symbol, Timeframe.M1, bar.open_time)] = bar
        for timeframe in ROLLED_UP:
            for bar in roll_up(minutes, timeframe):
                candles[(group_id, symbol, timeframe, bar.open_time)] = bar
    return candles


def merge_candles(
    stored: Mapping[CandleKey, Bar], new: Mapping[CandleKey, Bar]
) -> dict[CandleKey, Bar]:
    """The new candles, each merged into the stored candle of the same key if there is one."""
    return {key: merge(stored[key], bar) if key in stored else bar for key, bar in new.items()}


def encode_page_token(timeframe: Timeframe, last_open_time: datetime) -> str:
    """An opaque token: the page continues with candles older than `last_open_time`."""
    micros = (last_open_time - _EPOCH) // timedelta(microseconds=1)
    return encode_token(_TOKEN_VERSION, timeframe.value, str(micros))


def decode_page_token(token: str, timeframe: Timeframe) -> datetime:
    """The open time a token continues before; `bad_token` (VALIDATION_FAILED naming
    page_token) for a token we did not issue, or issued for another timeframe."""
    parts = decode_token(token, 3)
    if parts is None:
        raise bad_token()
    version, token_timeframe, micros = parts
    if version != _TOKEN_VERSION or not micros.isascii() or not micros.lstrip("-").isdigit():
        raise bad_token()
    if token_timeframe != timeframe.value:
        raise bad_token("(it is for another timeframe)")
    try:
        return _EPOCH + timedelta(microseconds=int(micros))
    except OverflowError:
        raise bad_token() from None


def price_text(value: Decimal, digits: int | None) -> str:
    """A stored price as a wire decimal: with the instrument's digits when it has no more
    ("1.085120000000" → "1.08512" for 5 digits), else without trailing zeros, never rounded."""
    if digits is not None:
        scaled = value.quantize(Decimal(1).scaleb(-digits))
        if scaled == value:
            return format_decimal(scaled)
    return format_decimal(value.normalize())


def tick_retention_days(environ: Mapping[str, str] = os.environ) -> int:
    """`TM_PRICING_TICK_RETENTION_DAYS`: how many days of ticks are kept besides today
    (default 7); `SettingsError` unless a whole number from 1 to 3650."""
    raw = environ.get(RETENTION_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 3650):
        raise SettingsError(
            [f"{RETENTION_VARIABLE} must be a whole number of days from 1 to 3650, got {raw!r}"]
        )
    return int(raw)


# -- the job -----------------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CandleJob:
    """Builds candles from published prices, incrementally; `start`/`stop` with the service.

    Every `interval` seconds it folds the new rows (`run_once`); every `maintenance_interval`
    seconds (and at start) it creates tick partitions `partitions_ahead` days ahead and drops
    those older than `retention_days` (`maintain_partitions`). `retention_days` None reads
    `TM_PRICING_TICK_RETENTION_DAYS` (see `tick_retention_days`). Several instances may run:
    the watermark row serializes them.
    """

    def __init__(
        self,
        db: Database,
        *,
        interval: float = 1.0,
        retention_days: int | None = None,
        partitions_ahead: int = 2,
        maintenance_interval: float = 3600.0,
        batch_rows: int = 20_000,
        completion_grace: timedelta = timedelta(seconds=2),
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._db = db
        self._interval = interval
        self.retention_days = tick_retention_days() if retention_days is None else retention_days
        if self.retention_days < 1 or partitions_ahead < 1 or batch_rows < 1:
            raise ValueError("retention_days, partitions_ahead and batch_rows must be 1 or more")
        self._partitions_ahead = partitions_ahead
        self._maintenance_interval = maintenance_interval
        self._batch_rows = batch_rows
        self._grace = completion_grace
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """Folds every published price committed before this call into candles; returns how
        many rows it folded."""
        cutoff = await self._cutoff()
        completed_by = self._clock() - self._grace
        folded = 0
        while True:
            async with self._db.primary.begin() as connection:
                count = await self._fold_batch(connection, cutoff, completed_by)
                await store.mark_candles_complete(connection, completed_by)
            folded += count
            if count < self._batch_rows:
                return folded

    async def _cutoff(self) -> int:
        async with self._db.primary.begin() as connection:
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": PUBLISHED_PRICES_WRITE_LOCK}
            )
            value = await connection.scalar(
                text(
                    "SELECT CASE WHEN is_called THEN last_value ELSE 0 END"
                    " FROM pricing.published_prices_id_seq"
                )
            )
        return int(value or 0)

    async def _fold_batch(
        self, connection: AsyncConnection, cutoff: int, completed_by: datetime
    ) -> int:
        watermark = await store.lock_candle_watermark(connection, _JOB)
        if watermark is None:
            raise RuntimeError("pricing.candle_watermark has no 'candles' row (migration 0005)")
        if watermark >= cutoff:
            return 0
        rows = await store.published_prices_after(connection, watermark, cutoff, self._batch_rows)
        if rows:
            # (group_id, symbol, time, bid); by index: twice as fast as by name, per row.
            new = build_candles([(r[1], r[2], r[3], r[4]) for r in rows])
            stored = await _stored_candles(connection, list(new))
            await _upsert(connection, merge_candles(stored, new), completed_by)
        # A short batch is the last before the cutoff: ids up to it that have no row (rolled
        # back, or in a dropped partition) are passed too.
        last_id = rows[-1].id if len(rows) == self._batch_rows else cutoff
        await store.advance_candle_watermark(connection, _JOB, last_id)
        return len(rows)

    async def maintain_partitions(self) -> list[str]:
        """Creates the tick partitions of today and `partitions_ahead` days, drops those older
        than the retention; returns the names of the dropped partitions."""
        async with self._db.primary.begin() as connection:
            created = await connection.scalar(
                text("SELECT pricing.ensure_tick_partitions(:ahead)"),
                {"ahead": self._partitions_ahead},
            )
            dropped = list(
                (
                    await connection.scalars(
                        text("SELECT pricing.drop_tick_partitions(:days)"),
                        {"days": self.retention_days},
                    )
                ).all()
            )
        if created or dropped:
            _log.info("tick partitions maintained", extra={"created": created, "dropped": dropped})
        return dropped

    async def run(self) -> None:
        """Runs until cancelled; failures are logged and retried on the next tick."""
        loop = asyncio.get_running_loop()
        next_maintenance = loop.time()
        while True:
            if loop.time() >= next_maintenance:
                try:
                    await self.maintain_partitions()
                    next_maintenance = loop.time() + self._maintenance_interval
                except Exception:
                    _log.exception("tick partition maintenance failed; retrying")
                    next_maintenance = loop.time() + min(60.0, self._maintenance_interval)
            try:
                await self.run_once()
            except Exception:
                _log.exception("candle job failed; retrying")
            await asyncio.sleep(self._interval)

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="candle-job")

    async def stop(self) -> None:
        if self._task is None:
            return
        await cancel_and_wait(self._task)
        self._task = None


async def _stored_candles(
    connection: AsyncConnection, keys: list[CandleKey]
) -> dict[CandleKey, Bar]:
    stored = await store.stored_candles(
        connection, [(group_id, symbol, tf.value, time) for group_id, symbol, tf, time in keys]
    )
    return {(g, s, Timeframe(tf), time): bar for (g, s, tf, time), bar in stored.items()}


async def _upsert(
    connection: AsyncConnection, candles: Mapping[CandleKey, Bar], completed_by: datetime
) -> None:
    await store.upsert_candles(
        connection,
        [
            store.CandleRow(
                group_id,
                symbol,
                timeframe.value,
                bar,
                is_complete(open_time, timeframe, completed_by),
            )
            for (group_id, symbol, timeframe, open_time), bar in candles.items()
        ],
    )


# -- reading -----------------------------------------------------------------------------------


class CandleStore:
    """Reads candles for GetCandles (from the read replica)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def page(
        self,
        group_id: str,
        symbol: str,
        timeframe: pricing_pb2.Timeframe.ValueType,
        start: datetime | None,
        end: datetime | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[pricing_pb2.Candle], str]:
        """One page of the group's candles of `symbol`, newest first, and the token of the next
        (older) page ("" on the last page).

        Candles whose open time is in [start, end) (an unset bound is open). The open candle
        (complete = false) is included when the range reaches it. `page_size` 0 means 100;
        more than 500 means 500. VALIDATION_FAILED for an unset timeframe, a negative page size
        or a page token that no earlier page of this timeframe returned.
        """
        frame = _timeframe(timeframe)
        if page_size < 0:
            raise _invalid("page_size", "must be 0 (the default, 100) to 500")
        limit = min(paging.page_size(page_size), paging.MAX_PAGE_SIZE)
        if start is not None:
            _aware(start, "time_range.start_time")
        if end is not None:
            _aware(end, "time_range.end_time")
        before = decode_page_token(page_token, frame) if page_token else None
        async with self._db.read_session() as session:
            rows = await store.candle_page(
                session,
                group_id=group_id,
                symbol=symbol,
                timeframe=frame.value,
                start=start,
                end=end,
                before=before,
                limit=limit + 1,
            )
            digits = await store.instrument_digits(session, symbol)
        page = rows[:limit]
        candles = [
            pricing_pb2.Candle(
                open_time=timestamp(r.open_time),
                open=price_text(r.open, digits),
                high=price_text(r.high, digits),
                low=price_text(r.low, digits),
                close=price_text(r.close, digits),
                tick_volume=r.tick_volume,
                complete=r.complete,
            )
            for r in page
        ]
        more = len(rows) > limit
        return candles, encode_page_token(frame, page[-1].open_time) if more else ""


def _timeframe(value: pricing_pb2.Timeframe.ValueType) -> Timeframe:
    try:
        return Timeframe.from_proto(value)
    except ValueError:
        raise _invalid("timeframe", "must be M1, M5, H1 or D1") from None


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise _invalid(field, "must be a point in time (timezone-aware)")
    return value


def _invalid(field: str, description: str) -> DomainError:
    return DomainError(
        ErrorReason.ERROR_REASON_VALIDATION_FAILED,
        f"{field} {description}",
        field_violations=[(field, description)],
    )

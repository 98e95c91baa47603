"""The tick store and candles against the stack's PostgreSQL, as the pricing role.

The writer, the candle job and the store log in as the service does (its role from Vault), so
the grants of migration 0005 are exercised too. Arranged rows go in directly (as the admin),
with explicit times, under a fresh group id per test: the live prices of the running pricing
service never match them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from sqlalchemy import URL
from sqlalchemy.ext.asyncio import create_async_engine

from services.platform.db import Database
from services.pricing.candles import CandleJob
from services.pricing.candles import CandleStore
from services.pricing.candles import Timeframe
from services.pricing.model import LpQuote
from services.pricing.model import Markup
from services.pricing.model import MarkupKind
from services.pricing.model import PublishedPrice
from services.pricing.model import SourceRef
from services.pricing.ticks import TickWriter
from tests.integration.conftest import RunningStack
from tests.integration.support.waiting import eventually_async
from tradingmesh.pricing.v1 import pricing_pb2


@dataclass(frozen=True)
class TickStack:
    admin_url: str
    pricing_url: URL

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_url, autocommit=True)


@pytest.fixture(scope="module")
def tick_stack(running_stack: RunningStack) -> TickStack:
    url, pricing_url = running_stack.database_urls("pricing")
    stack = TickStack(url, pricing_url)
    with stack.admin() as conn:
        # The days the tests write to (a few days back) need their partitions.
        conn.execute("SELECT pricing.ensure_tick_partitions(2, 3)")
    return stack


@pytest.fixture
async def db(tick_stack: TickStack) -> AsyncIterator[Database]:
    engine = create_async_engine(tick_stack.pricing_url)
    try:
        yield Database(engine, engine)
    finally:
        await engine.dispose()


def _today() -> date:
    return datetime.now(UTC).date()


def _at(day: date, clock: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=UTC)


def _insert_prices(
    stack: TickStack, group_id: str, symbol: str, ticks: list[tuple[datetime, str]]
) -> None:
    """Published prices as the writer would store them, in this order (ids ascending)."""
    with stack.admin() as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO pricing.published_prices (time, group_id, symbol, bid, ask, version,"
            " bid_lp, ask_lp, bid_quote_id, ask_quote_id, markup_type, markup)"
            " VALUES (%s, %s, %s, %s, %s + 0.0002, %s, 'lp-it', 'lp-it', 'q', 'q', 'POINTS', 0)",
            [
                (when, group_id, symbol, Decimal(bid), Decimal(bid), version)
                for version, (when, bid) in enumerate(ticks, start=1)
            ],
        )


# (timeframe, open_time, open, high, low, close, tick_volume, complete)
Candle = tuple[Any, ...]


def _candles(stack: TickStack, group_id: str) -> list[Candle]:
    with stack.admin() as conn:
        rows = conn.execute(
            "SELECT timeframe, open_time, open, high, low, close, tick_volume, complete"
            " FROM pricing.candles WHERE group_id = %s"
            " ORDER BY array_position(ARRAY['M1', 'M5', 'H1', 'D1'], timeframe), open_time",
            (group_id,),
        ).fetchall()
    return [tuple(row) for row in rows]


def _partitions(stack: TickStack) -> set[str]:
    with stack.admin() as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent IN ('pricing.lp_ticks'::regclass,"
            " 'pricing.published_prices'::regclass)"
        ).fetchall()
    return {name for (name,) in rows}


def _partition_days(stack: TickStack, table: str) -> set[date]:
    prefix = f"{table}_p"
    return {
        datetime.strptime(name.removeprefix(prefix), "%Y%m%d").replace(tzinfo=UTC).date()
        for name in _partitions(stack)
        if name.startswith(prefix)
    }


def _quote(lp: str, n: int, received_at: datetime) -> LpQuote:
    return LpQuote(
        lp=lp,
        symbol="EURUSD",
        bid=Decimal(f"1.{n:012d}"),
        ask=Decimal("123456789012345678.123456789012"),
        bid_size=Decimal("1000000.000000000001"),
        ask_size=Decimal(n),
        quote_id=f"{lp}:1:{n}",
        lp_time=received_at - timedelta(milliseconds=3) if n % 2 else None,
        received_at=received_at,
    )


def _price(group_id: str, n: int, when: datetime) -> PublishedPrice:
    source = SourceRef("lp-it", f"lp-it:1:{n}", Decimal("1.08512"), None, when)
    return PublishedPrice(
        group_id=group_id,
        symbol="EURUSD",
        bid=Decimal(f"1.08{n:05d}"),
        ask=Decimal(f"1.09{n:05d}"),
        time=when,
        version=n,
        bid_source=source,
        ask_source=SourceRef("lp-other", f"lp-other:2:{n}", Decimal("1.0852"), when, when),
        markup=Markup(MarkupKind.PERCENT, Decimal("0.012500000001")),
        bid_markup=Decimal(0),
        ask_markup=Decimal(0),
    )


# -- the writer --------------------------------------------------------------------------------


async def test_the_writer_copies_a_batch_and_every_value_is_stored_exactly(
    tick_stack: TickStack, db: Database
) -> None:
    lp = f"lp-it-{uuid.uuid4().hex[:8]}"
    group_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    quotes = [_quote(lp, n, now + timedelta(microseconds=n)) for n in range(1, 7_001)]
    prices = [_price(group_id, n, now + timedelta(microseconds=n)) for n in range(1, 301)]
    writer = TickWriter(db)

    writer.add_lp_ticks(quotes)
    writer.add_published(prices)
    written = await writer.flush()

    assert written == 7_300
    assert writer.buffered == (0, 0)
    with tick_stack.admin() as conn:
        stored_ticks = conn.execute(
            "SELECT time, lp, symbol, bid, ask, bid_size, ask_size, quote_id, lp_time"
            " FROM pricing.lp_ticks WHERE lp = %s ORDER BY time",
            (lp,),
        ).fetchall()
        stored_prices = conn.execute(
            "SELECT time, group_id::text, symbol, bid, ask, version, bid_lp, ask_lp,"
            " bid_quote_id, ask_quote_id, markup_type, markup"
            " FROM pricing.published_prices WHERE group_id = %s ORDER BY version",
            (group_id,),
        ).fetchall()
    assert [tuple(r) for r in stored_ticks] == [
        (q.received_at, q.lp, q.symbol, q.bid, q.ask, q.bid_size, q.ask_size, q.quote_id, q.lp_time)
        for q in quotes
    ]
    # Exact to the last digit, not merely equal after rounding: compare the text too.
    assert str(stored_ticks[0][4]) == "123456789012345678.123456789012"
    assert str(stored_ticks[0][5]) == "1000000.000000000001"
    assert [tuple(r) for r in stored_prices] == [
        (
            p.time,
            group_id,
            "EURUSD",
            p.bid,
            p.ask,
            p.version,
            "lp-it",
            "lp-other",
            p.bid_source.quote_id,
            p.ask_source.quote_id,
            "PERCENT",
            Decimal("0.012500000001"),
        )
        for p in prices
    ]


async def test_the_running_writer_flushes_in_the_background_and_stop_writes_the_rest(
    tick_stack: TickStack, db: Database
) -> None:
    lp = f"lp-it-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    writer = TickWriter(db, flush_interval=0.05)
    await writer.start()
    try:
        writer.add_lp_ticks([_quote(lp, 1, now)])

        async def flushed() -> bool:
            return writer.buffered == (0, 0) and _tick_count(tick_stack, lp) == 1

        await eventually_async(flushed, 10, "the tick written in the background", every=0.05)
    finally:
        await writer.stop()

    idle = TickWriter(db, flush_interval=3600)
    await idle.start()
    idle.add_lp_ticks([_quote(lp, n, now) for n in range(2, 5)])
    await idle.stop()

    assert _tick_count(tick_stack, lp) == 4


def _tick_count(stack: TickStack, lp: str) -> int:
    with stack.admin() as conn:
        row = conn.execute("SELECT count(*) FROM pricing.lp_ticks WHERE lp = %s", (lp,)).fetchone()
    assert row is not None
    return int(row[0])


async def test_a_failed_write_keeps_its_rows_in_order_and_writes_them_once_it_can(
    tick_stack: TickStack, db: Database
) -> None:
    # A day beyond every partition: the COPY fails, as it would with the database away.
    beyond = max(_partition_days(tick_stack, "lp_ticks")) + timedelta(days=1)
    lp = f"lp-it-{uuid.uuid4().hex[:8]}"
    when = _at(beyond, "12:00:00")
    writer = TickWriter(db, batch_rows=2, max_buffered=3)
    writer.add_lp_ticks([_quote(lp, 1, when), _quote(lp, 2, when)])

    with pytest.raises(psycopg.errors.CheckViolation, match="no partition"):
        await writer.flush()
    writer.add_lp_ticks([_quote(lp, 3, when), _quote(lp, 4, when)])  # one too many: 1 goes

    assert writer.buffered == (3, 0)
    assert _tick_count(tick_stack, lp) == 0
    with tick_stack.admin() as conn:
        conn.execute("SELECT pricing.ensure_tick_partitions(%s)", ((beyond - _today()).days,))
    assert await writer.flush() == 3
    with tick_stack.admin() as conn:
        ids = conn.execute(
            "SELECT quote_id FROM pricing.lp_ticks WHERE lp = %s ORDER BY quote_id", (lp,)
        ).fetchall()
    assert [i for (i,) in ids] == [f"{lp}:1:2", f"{lp}:1:3", f"{lp}:1:4"]


# -- the candle job ----------------------------------------------------------------------------


def _d(text: str) -> Decimal:
    return Decimal(text)


async def test_the_job_turns_known_prices_into_exactly_the_expected_candles(
    tick_stack: TickStack, db: Database
) -> None:
    group_id = str(uuid.uuid4())
    day = _today() - timedelta(days=2)
    nxt = day + timedelta(days=1)
    _insert_prices(
        tick_stack,
        group_id,
        "EURUSD",
        [
            (_at(day, "23:58:10"), "1.08510"),
            (_at(day, "23:58:20"), "1.08530"),
            (_at(day, "23:58:59.999999"), "1.08490"),
            (_at(day, "23:59:00"), "1.08500"),
            (_at(day, "23:59:59"), "1.08560"),
            (_at(nxt, "00:00:00"), "1.08570"),
            (_at(nxt, "00:04:59"), "1.08450"),
            (_at(nxt, "00:05:00"), "1.08455"),
        ],
    )
    job = CandleJob(db, retention_days=7)

    # The running pricing service's own candle job (the same code, elected) may fold some or all
    # of these rows first; either way, once this pass returns every row before it is folded, and
    # the candles below are what both make together.
    await job.run_once()

    m = _d
    expected: list[Candle] = [
        ("M1", _at(day, "23:58"), m("1.08510"), m("1.08530"), m("1.08490"), m("1.08490"), 3, True),
        ("M1", _at(day, "23:59"), m("1.08500"), m("1.08560"), m("1.08500"), m("1.08560"), 2, True),
        ("M1", _at(nxt, "00:00"), m("1.08570"), m("1.08570"), m("1.08570"), m("1.08570"), 1, True),
        ("M1", _at(nxt, "00:04"), m("1.08450"), m("1.08450"), m("1.08450"), m("1.08450"), 1, True),
        ("M1", _at(nxt, "00:05"), m("1.08455"), m("1.08455"), m("1.08455"), m("1.08455"), 1, True),
        ("M5", _at(day, "23:55"), m("1.08510"), m("1.08560"), m("1.08490"), m("1.08560"), 5, True),
        ("M5", _at(nxt, "00:00"), m("1.08570"), m("1.08570"), m("1.08450"), m("1.08450"), 2, True),
        ("M5", _at(nxt, "00:05"), m("1.08455"), m("1.08455"), m("1.08455"), m("1.08455"), 1, True),
        ("H1", _at(day, "23:00"), m("1.08510"), m("1.08560"), m("1.08490"), m("1.08560"), 5, True),
        ("H1", _at(nxt, "00:00"), m("1.08570"), m("1.08570"), m("1.08450"), m("1.08455"), 3, True),
        ("D1", _at(day, "00:00"), m("1.08510"), m("1.08560"), m("1.08490"), m("1.08560"), 5, True),
        ("D1", _at(nxt, "00:00"), m("1.08570"), m("1.08570"), m("1.08450"), m("1.08455"), 3, True),
    ]
    assert _candles(tick_stack, group_id) == expected

    # Nothing new: the watermark has passed every row, so nothing is counted twice.
    await job.run_once()
    assert _candles(tick_stack, group_id) == expected

    # A late row (written after an outage) that happened before the first tick of 23:58.
    _insert_prices(tick_stack, group_id, "EURUSD", [(_at(day, "23:58:05"), "1.08400")])
    await job.run_once()

    late = {(c[0], c[1]): c for c in _candles(tick_stack, group_id)}
    for timeframe, open_time, volume, close in [
        ("M1", _at(day, "23:58"), 4, m("1.08490")),
        ("M5", _at(day, "23:55"), 6, m("1.08560")),
        ("H1", _at(day, "23:00"), 6, m("1.08560")),
        ("D1", _at(day, "00:00"), 6, m("1.08560")),
    ]:
        assert late[(timeframe, open_time)][2:] == (
            m("1.08400"),  # the new open
            late[(timeframe, open_time)][3],  # high unchanged
            m("1.08400"),  # the new low
            close,  # the close stays the latest tick's
            volume,
            True,
        )
    assert late[("D1", _at(nxt, "00:00"))] == expected[-1]


async def test_the_current_candle_is_open_and_earlier_ones_complete(
    tick_stack: TickStack, db: Database
) -> None:
    group_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    _insert_prices(
        tick_stack,
        group_id,
        "EURUSD",
        [(now - timedelta(minutes=3), "1.10000"), (now, "1.10010")],
    )
    job = CandleJob(db, retention_days=7, clock=lambda: now)

    await job.run_once()

    open_candles = {(c[0], c[1]) for c in _candles(tick_stack, group_id) if not c[7]}
    assert ("M1", now.replace(second=0, microsecond=0)) in open_candles
    assert ("D1", datetime.combine(now.date(), time(), tzinfo=UTC)) in open_candles
    assert ("M1", (now - timedelta(minutes=3)).replace(second=0, microsecond=0)) not in (
        open_candles
    )
    candles, token = await CandleStore(db).page(
        group_id, "EURUSD", Timeframe.M1.proto, None, None, 0, ""
    )
    assert [(c.close, c.complete) for c in candles] == [("1.10010", False), ("1.10000", True)]
    assert token == ""


async def test_candle_pages_run_newest_first_and_end_with_an_empty_token(
    tick_stack: TickStack, db: Database
) -> None:
    group_id = str(uuid.uuid4())
    day = _today() - timedelta(days=2)
    minutes = [_at(day, f"10:0{n}:30") for n in range(7)]
    _insert_prices(
        tick_stack, group_id, "EURUSD", [(t, f"1.0851{n}") for n, t in enumerate(minutes)]
    )
    await CandleJob(db, retention_days=7).run_once()
    store = CandleStore(db)
    m1 = pricing_pb2.TIMEFRAME_M1

    pages: list[list[str]] = []
    token = ""
    while True:
        candles, token = await store.page(group_id, "EURUSD", m1, None, None, 3, token)
        pages.append([c.close for c in candles])
        if not token:
            break
    ranged, ranged_token = await store.page(
        group_id, "EURUSD", m1, _at(day, "10:02"), _at(day, "10:05"), 0, ""
    )
    (daily,), _ = await store.page(group_id, "EURUSD", pricing_pb2.TIMEFRAME_D1, None, None, 0, "")

    # EURUSD has 5 digits: stored NUMERIC(30, 12) values are shown as "1.08516".
    assert pages == [
        ["1.08516", "1.08515", "1.08514"],
        ["1.08513", "1.08512", "1.08511"],
        ["1.08510"],
    ]
    assert [c.open_time.ToDatetime(tzinfo=UTC) for c in ranged] == [
        _at(day, "10:04"),
        _at(day, "10:03"),
        _at(day, "10:02"),
    ]
    assert ranged_token == ""
    assert (daily.open, daily.high, daily.low, daily.close) == (
        "1.08510",
        "1.08516",
        "1.08510",
        "1.08516",
    )
    assert (daily.tick_volume, daily.complete) == (7, True)
    assert daily.open_time.ToDatetime(tzinfo=UTC) == _at(day, "00:00")


# -- partitions --------------------------------------------------------------------------------


async def test_partitions_are_made_ahead_and_dropped_past_the_retention(
    tick_stack: TickStack, db: Database
) -> None:
    today = _today()
    async with db.primary.begin() as connection:
        # As the pricing role, which may call the function but owns no table.
        await connection.exec_driver_sql("SELECT pricing.ensure_tick_partitions(0, 12)")
    old_group = str(uuid.uuid4())
    _insert_prices(
        tick_stack, old_group, "EURUSD", [(_at(today - timedelta(days=10), "12:00"), "1.1")]
    )
    assert today - timedelta(days=12) in _partition_days(tick_stack, "published_prices")

    dropped = await CandleJob(db, retention_days=7, partitions_ahead=3).maintain_partitions()

    for table in ("lp_ticks", "published_prices"):
        days = _partition_days(tick_stack, table)
        assert {today + timedelta(days=n) for n in range(-7, 4)} <= days
        assert not {today - timedelta(days=n) for n in range(8, 13)} & days
    # Only old days are dropped (the service's own job may have dropped some of them first).
    assert dropped
    assert all(
        datetime.strptime(name[-8:], "%Y%m%d").replace(tzinfo=UTC).date()
        < today - timedelta(days=7)
        for name in dropped
    )
    with tick_stack.admin() as conn:
        left = conn.execute(
            "SELECT count(*) FROM pricing.published_prices WHERE group_id = %s", (old_group,)
        ).fetchone()
    assert left == (0,)

"""Candles without a database: UTC buckets, aggregation, merging, roll-up, page tokens."""

from __future__ import annotations

import random
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from services.platform.db import Database
from services.platform.errors import DomainError
from services.platform.paging import encode_token
from services.platform.settings import SettingsError
from services.pricing.candles import CandleStore
from services.pricing.candles import PriceTick
from services.pricing.candles import Timeframe
from services.pricing.candles import aggregate
from services.pricing.candles import bucket_start
from services.pricing.candles import build_candles
from services.pricing.candles import decode_page_token
from services.pricing.candles import encode_page_token
from services.pricing.candles import is_complete
from services.pricing.candles import merge
from services.pricing.candles import merge_candles
from services.pricing.candles import price_text
from services.pricing.candles import roll_up
from services.pricing.candles import tick_retention_days
from services.pricing.model import Bar
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.pricing.v1 import pricing_pb2


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def d(text: str) -> Decimal:
    return Decimal(text)


# -- buckets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("time", "timeframe", "expected"),
    [
        ("2026-03-10 10:04:59.999999", Timeframe.M1, "2026-03-10 10:04:00"),
        ("2026-03-10 10:05:00", Timeframe.M1, "2026-03-10 10:05:00"),
        ("2026-03-10 10:04:59.999999", Timeframe.M5, "2026-03-10 10:00:00"),
        ("2026-03-10 10:05:00", Timeframe.M5, "2026-03-10 10:05:00"),
        ("2026-03-10 10:59:59.999999", Timeframe.M5, "2026-03-10 10:55:00"),
        ("2026-03-10 10:59:59.999999", Timeframe.H1, "2026-03-10 10:00:00"),
        ("2026-03-10 11:00:00", Timeframe.H1, "2026-03-10 11:00:00"),
        ("2026-03-10 23:59:59.999999", Timeframe.D1, "2026-03-10 00:00:00"),
        ("2026-03-11 00:00:00", Timeframe.D1, "2026-03-11 00:00:00"),
        ("1969-12-31 23:59:30", Timeframe.M1, "1969-12-31 23:59:00"),
    ],
)
def test_a_tick_falls_in_the_utc_bucket_its_timeframe_defines(
    time: str, timeframe: Timeframe, expected: str
) -> None:
    assert bucket_start(at(time), timeframe) == at(expected)


def test_buckets_are_utc_whatever_the_zone_of_the_time() -> None:
    # 01:30 in UTC+2 is 23:30 UTC of the day before.
    time = datetime(2026, 3, 11, 1, 30, tzinfo=timezone(timedelta(hours=2)))

    assert bucket_start(time, Timeframe.D1) == at("2026-03-10 00:00:00")
    assert bucket_start(time, Timeframe.H1) == at("2026-03-10 23:00:00")


def test_a_naive_time_has_no_bucket() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        bucket_start(datetime(2026, 3, 10, 10, 0), Timeframe.M1)


def test_a_candle_is_complete_exactly_when_its_period_has_ended() -> None:
    open_time = at("2026-03-10 10:05:00")

    assert not is_complete(open_time, Timeframe.M5, at("2026-03-10 10:09:59.999999"))
    assert is_complete(open_time, Timeframe.M5, at("2026-03-10 10:10:00"))


def test_timeframes_map_to_and_from_the_contract() -> None:
    for timeframe in Timeframe:
        assert Timeframe.from_proto(timeframe.proto) is timeframe
    with pytest.raises(ValueError, match="not a timeframe"):
        Timeframe.from_proto(pricing_pb2.TIMEFRAME_UNSPECIFIED)


# -- aggregation -------------------------------------------------------------------------------

# A known sequence across M1, M5, H1 and D1 boundaries (times, bids), in arrival order.
KNOWN_TICKS = [
    (at("2026-03-10 23:58:10"), d("1.08510")),
    (at("2026-03-10 23:58:20"), d("1.08530")),
    (at("2026-03-10 23:58:59.999999"), d("1.08490")),
    (at("2026-03-10 23:59:00"), d("1.08500")),
    (at("2026-03-10 23:59:59"), d("1.08560")),
    (at("2026-03-11 00:00:00"), d("1.08570")),
    (at("2026-03-11 00:04:59"), d("1.08450")),
    (at("2026-03-11 00:05:00"), d("1.08455")),
]


def test_candles_of_a_known_tick_sequence_have_exactly_the_expected_ohlc_and_volume() -> None:
    m1 = aggregate(KNOWN_TICKS, Timeframe.M1)

    assert [(b.open_time, b.open, b.high, b.low, b.close, b.tick_volume) for b in m1] == [
        (at("2026-03-10 23:58:00"), d("1.08510"), d("1.08530"), d("1.08490"), d("1.08490"), 3),
        (at("2026-03-10 23:59:00"), d("1.08500"), d("1.08560"), d("1.08500"), d("1.08560"), 2),
        (at("2026-03-11 00:00:00"), d("1.08570"), d("1.08570"), d("1.08570"), d("1.08570"), 1),
        (at("2026-03-11 00:04:00"), d("1.08450"), d("1.08450"), d("1.08450"), d("1.08450"), 1),
        (at("2026-03-11 00:05:00"), d("1.08455"), d("1.08455"), d("1.08455"), d("1.08455"), 1),
    ]
    m5 = aggregate(KNOWN_TICKS, Timeframe.M5)
    assert [(b.open_time, b.open, b.high, b.low, b.close, b.tick_volume) for b in m5] == [
        (at("2026-03-10 23:55:00"), d("1.08510"), d("1.08560"), d("1.08490"), d("1.08560"), 5),
        (at("2026-03-11 00:00:00"), d("1.08570"), d("1.08570"), d("1.08450"), d("1.08450"), 2),
        (at("2026-03-11 00:05:00"), d("1.08455"), d("1.08455"), d("1.08455"), d("1.08455"), 1),
    ]
    d1 = aggregate(KNOWN_TICKS, Timeframe.D1)
    assert [(b.open_time, b.open, b.high, b.low, b.close, b.tick_volume) for b in d1] == [
        (at("2026-03-10 00:00:00"), d("1.08510"), d("1.08560"), d("1.08490"), d("1.08560"), 5),
        (at("2026-03-11 00:00:00"), d("1.08570"), d("1.08570"), d("1.08450"), d("1.08455"), 3),
    ]


def test_prices_stay_exact_decimals_with_their_scale() -> None:
    (bar,) = aggregate([(at("2026-03-10 10:00:01"), d("1.123456789012"))], Timeframe.H1)

    assert bar.open == bar.close == Decimal("1.123456789012")
    assert isinstance(bar.high, Decimal)


def test_a_late_tick_with_an_earlier_time_becomes_the_open_not_the_close() -> None:
    ticks = [
        (at("2026-03-10 10:00:20"), d("2")),
        (at("2026-03-10 10:00:40"), d("3")),
        (at("2026-03-10 10:00:05"), d("1")),  # arrives last, happened first
    ]

    (bar,) = aggregate(ticks, Timeframe.M1)

    assert (bar.open, bar.high, bar.low, bar.close, bar.tick_volume) == (
        d("1"),
        d("3"),
        d("1"),
        d("3"),
        3,
    )
    assert (bar.first_tick_time, bar.last_tick_time) == (
        at("2026-03-10 10:00:05"),
        at("2026-03-10 10:00:40"),
    )


def test_between_ticks_of_the_same_time_the_first_arrived_opens_and_the_last_closes() -> None:
    same = at("2026-03-10 10:00:30")

    (bar,) = aggregate([(same, d("5")), (same, d("7")), (same, d("6"))], Timeframe.M1)

    assert (bar.open, bar.close, bar.high, bar.low) == (d("5"), d("6"), d("7"), d("5"))


def test_bars_of_different_periods_do_not_merge() -> None:
    one = Bar.of_tick(at("2026-03-10 10:00:00"), at("2026-03-10 10:00:01"), d("1"))
    other = Bar.of_tick(at("2026-03-10 10:01:00"), at("2026-03-10 10:01:01"), d("1"))

    with pytest.raises(ValueError, match="same period"):
        merge(one, other)


def _random_walk(seed: int, count: int, start: datetime) -> list[tuple[datetime, Decimal]]:
    rng = random.Random(seed)
    price = Decimal("1.10000")
    time = start
    ticks = []
    for _ in range(count):
        time += timedelta(milliseconds=rng.randint(0, 90_000))
        price += Decimal(rng.randint(-30, 30)) / 100_000
        ticks.append((time, price))
    return ticks


@pytest.mark.parametrize("timeframe", [Timeframe.M5, Timeframe.H1, Timeframe.D1])
def test_rolling_m1_up_gives_the_same_candles_as_aggregating_the_ticks(
    timeframe: Timeframe,
) -> None:
    ticks = _random_walk(seed=5, count=3_000, start=at("2026-03-10 21:17:13"))

    rolled = roll_up(aggregate(ticks, Timeframe.M1), timeframe)

    assert rolled == aggregate(ticks, timeframe)
    assert sum(b.tick_volume for b in rolled) == len(ticks)
    assert len(rolled) > 2  # the walk crosses several periods


def test_a_bar_wider_than_the_timeframe_does_not_roll_up() -> None:
    (hour,) = aggregate(
        [(at("2026-03-10 10:00:00"), d("1")), (at("2026-03-10 10:30:00"), d("2"))], Timeframe.H1
    )

    with pytest.raises(ValueError, match="does not fit"):
        roll_up([hour], Timeframe.M5)


def test_folding_a_sequence_in_two_runs_gives_the_candles_of_one_run() -> None:
    ticks = [
        PriceTick("g1", "EURUSD", time, bid)
        for time, bid in _random_walk(seed=7, count=800, start=at("2026-03-10 22:41:00"))
    ]

    for split in (1, 250, 799):
        first = build_candles(ticks[:split])
        second = build_candles(ticks[split:])

        assert {**first, **merge_candles(first, second)} == build_candles(ticks)


def test_each_group_and_symbol_gets_its_own_candles_in_every_timeframe() -> None:
    time = at("2026-03-10 10:00:30")
    ticks = [
        PriceTick("g1", "EURUSD", time, d("1.1")),
        PriceTick("g2", "EURUSD", time, d("1.2")),
        PriceTick("g1", "XAUUSD", time, d("2000.5")),
    ]

    candles = build_candles(ticks)

    assert len(candles) == 3 * 4
    assert candles[("g2", "EURUSD", Timeframe.H1, at("2026-03-10 10:00:00"))].close == d("1.2")
    assert candles[("g1", "XAUUSD", Timeframe.D1, at("2026-03-10 00:00:00"))].open == d("2000.5")


# -- reading -----------------------------------------------------------------------------------


def test_a_page_token_round_trips_to_the_microsecond() -> None:
    last = at("2026-03-10 10:05:00.000001")

    token = encode_page_token(Timeframe.M5, last)

    assert decode_page_token(token, Timeframe.M5) == last
    assert token.isascii()
    assert "=" not in token


@pytest.mark.parametrize(
    "token",
    [
        "garbage!",
        "",
        encode_token("c9", "M5", "123"),  # another version
        encode_token("c1", "M5", ""),
        encode_token("c1", "M5", "1e3"),
        encode_token("c1", "M5"),
    ],
)
def test_a_token_we_did_not_issue_is_refused(token: str) -> None:
    with pytest.raises(DomainError, match="page_token is not a token") as refused:
        decode_page_token(token, Timeframe.M5)
    assert refused.value.reason == ErrorReason.ERROR_REASON_VALIDATION_FAILED


def test_a_token_of_another_timeframe_is_refused() -> None:
    token = encode_page_token(Timeframe.M1, at("2026-03-10 10:05:00"))

    with pytest.raises(DomainError, match="another timeframe"):
        decode_page_token(token, Timeframe.H1)


@pytest.mark.parametrize(
    ("stored", "digits", "expected"),
    [
        ("1.085120000000", 5, "1.08512"),
        ("1.080000000000", 5, "1.08000"),
        ("150.123000000000", 3, "150.123"),
        ("1.085125000000", 5, "1.085125"),  # more decimals than the instrument: not rounded
        ("1.085120000000", None, "1.08512"),
        ("100.000000000000", None, "100"),
    ],
)
def test_stored_prices_are_shown_with_the_instruments_digits_never_rounded(
    stored: str, digits: int | None, expected: str
) -> None:
    assert price_text(Decimal(stored), digits) == expected


def test_retention_defaults_to_seven_days_and_refuses_nonsense() -> None:
    assert tick_retention_days({}) == 7
    assert tick_retention_days({"TM_PRICING_TICK_RETENTION_DAYS": "30"}) == 30
    for bad in ("0", "-1", "7.5", "seven", "99999"):
        with pytest.raises(SettingsError, match="TM_PRICING_TICK_RETENTION_DAYS"):
            tick_retention_days({"TM_PRICING_TICK_RETENTION_DAYS": bad})


@pytest.fixture
def store() -> CandleStore:
    # An engine that is never used: these requests are refused before any query.
    engine = create_async_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    return CandleStore(Database(engine, engine))


@pytest.mark.parametrize(
    ("timeframe", "page_size", "token", "field"),
    [
        (pricing_pb2.TIMEFRAME_UNSPECIFIED, 0, "", "timeframe"),
        (pricing_pb2.TIMEFRAME_M1, -1, "", "page_size"),
        (pricing_pb2.TIMEFRAME_M1, 10, "not-a-token", "page_token"),
    ],
)
async def test_a_bad_candle_request_is_refused_naming_the_field(
    store: CandleStore,
    timeframe: pricing_pb2.Timeframe.ValueType,
    page_size: int,
    token: str,
    field: str,
) -> None:
    group = "7d0c1d5e-8d5a-4c55-9d7e-2f3f1f1f1f1f"

    with pytest.raises(DomainError) as caught:
        await store.page(group, "EURUSD", timeframe, None, None, page_size, token)

    assert caught.value.reason == ErrorReason.ERROR_REASON_VALIDATION_FAILED
    assert [v.field for v in caught.value.field_violations] == [field]

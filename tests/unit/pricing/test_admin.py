"""PricingAdminService's pure logic: instrument rules, update masks, trading status, the books
and provenance, LP activity, and how the reference data takes a committed change."""

from __future__ import annotations

import json
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Any
from typing import cast

import pytest

from services.platform import schedule
from services.platform.db import Database
from services.platform.errors import DomainError
from services.pricing.admin import LpActivity
from services.pricing.admin import canonical
from services.pricing.admin import changed_paths
from services.pricing.admin import check_instrument
from services.pricing.admin import liquidity_provider
from services.pricing.admin import merge
from services.pricing.admin import nearest_rank
from services.pricing.admin import new_instrument
from services.pricing.admin import provenance_response
from services.pricing.admin import row_values
from services.pricing.engine import PricingEngine
from services.pricing.gateway import LpStatus
from services.pricing.gateway import SessionState
from services.pricing.lp_health import FeedState
from services.pricing.model import LpQuote
from services.pricing.reference import Reference
from services.pricing.reference import instrument_from_row
from services.pricing.reference import trading_status
from tests.messages import fx_instrument
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.pricing.v1 import pricing_pb2

# A Wednesday, 10:00 UTC.
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
TRADING = pricing_pb2.TRADING_STATUS_TRADING
HALTED = pricing_pb2.TRADING_STATUS_HALTED
CLOSED = pricing_pb2.TRADING_STATUS_CLOSED


def session(day: int, start: int, end: int) -> pricing_pb2.TradingSession:
    """A session on `day` (1 = Monday ... 7 = Sunday)."""
    return pricing_pb2.TradingSession(
        day=pricing_pb2.DayOfWeek.ValueType(day), start_minute=start, end_minute=end
    )


def eurusd(**changes: Any) -> pricing_pb2.Instrument:
    """EURUSD, open on Wednesdays."""
    wednesday = session(pricing_pb2.DAY_OF_WEEK_WEDNESDAY, 0, 1440)
    return fx_instrument(**{"sessions": [wednesday], **changes})


def violations(error: pytest.ExceptionInfo[DomainError]) -> list[str]:
    assert error.value.reason == ErrorReason.ERROR_REASON_VALIDATION_FAILED
    return [v.field for v in error.value.field_violations]


# -- instrument rules ---------------------------------------------------------------------------


def test_a_consistent_instrument_passes() -> None:
    check_instrument(eurusd())


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"min_lot": "200"}, ["instrument.min_lot"]),  # above max_lot
        ({"min_lot": "0.015"}, ["instrument.min_lot"]),  # not a multiple of lot_step
        ({"tick_size": "0.000001"}, ["instrument.tick_size"]),  # finer than a point
        (
            {"digits": 1, "tick_size": "0.25"},
            ["instrument.tick_size"],
        ),  # 0.25 is no whole number of 0.1
        ({"margin_rate": "0"}, ["instrument.margin_rate"]),
        ({"margin_rate": "1.5"}, ["instrument.margin_rate"]),
        ({"min_lot": "200", "margin_rate": "2"}, ["instrument.min_lot", "instrument.margin_rate"]),
    ],
)
def test_inconsistent_fields_are_refused_each_with_its_field(
    changes: dict[str, Any], fields: list[str]
) -> None:
    with pytest.raises(DomainError) as refused:
        check_instrument(eurusd(**changes))
    assert violations(refused) == fields


def test_a_tick_of_several_points_is_allowed() -> None:
    check_instrument(eurusd(digits=2, tick_size="0.25"))


def test_a_new_instrument_drops_output_fields_and_spells_decimals_one_way() -> None:
    given = eurusd(tick_size="0.000010", max_lot="100.00", halt_reason="ignored")
    given.trading_status = HALTED
    given.update_time.FromDatetime(T0)

    stored = new_instrument(given)

    assert (stored.tick_size, stored.max_lot) == ("0.00001", "100")
    assert stored.trading_status == pricing_pb2.TRADING_STATUS_UNSPECIFIED
    assert stored.halt_reason == ""
    assert not stored.HasField("update_time")


def test_canonical_keeps_the_value_exactly() -> None:
    assert [canonical(v) for v in ("0.010", "100000", "1.50", "0")] == [
        "0.01",
        "100000",
        "1.5",
        "0",
    ]


# -- update masks ------------------------------------------------------------------------------


def test_only_the_masked_fields_change() -> None:
    given = eurusd(margin_rate="0.05", description="not in the mask", max_lot="50")

    after = merge(eurusd(), given, ["margin_rate", "max_lot"])

    assert (after.margin_rate, after.max_lot) == ("0.05", "50")
    assert after.description == "Euro vs US Dollar"


def test_sessions_are_replaced_as_a_whole() -> None:
    given = eurusd()
    del given.sessions[:]
    given.sessions.extend([session(1, 0, 600), session(2, 0, 600)])

    after = merge(eurusd(), given, ["sessions"])

    assert list(after.sessions) == [session(1, 0, 600), session(2, 0, 600)]


@pytest.mark.parametrize("path", ["contract_size", "symbol", "asset_class", "trading_status", "x"])
def test_a_path_outside_the_updatable_fields_is_refused(path: str) -> None:
    with pytest.raises(DomainError) as refused:
        merge(eurusd(), eurusd(), ["description", path])
    assert violations(refused) == ["update_mask"]


def test_a_masked_field_left_empty_or_inconsistent_is_refused() -> None:
    with pytest.raises(DomainError) as refused:
        merge(eurusd(), eurusd(tick_size=""), ["tick_size"])
    assert violations(refused) == ["instrument.tick_size"]
    with pytest.raises(DomainError) as refused:
        merge(eurusd(), eurusd(digits=3), ["digits"])  # the tick 0.00001 is below a point then
    assert violations(refused) == ["instrument.tick_size"]


def test_changed_paths_compare_values_not_spellings() -> None:
    before = eurusd()
    after = merge(before, eurusd(margin_rate="0.010", max_lot="50"), ["margin_rate", "max_lot"])
    assert changed_paths(before, after, ["margin_rate", "max_lot", "max_lot"]) == ["max_lot"]


# -- trading status -----------------------------------------------------------------------------


def test_a_halt_overrides_the_schedule() -> None:
    assert trading_status(True, [session(3, 0, 1440)], T0) == HALTED


@pytest.mark.parametrize(
    ("sessions", "status"),
    [
        ([session(3, 600, 601)], TRADING),  # Wednesday 10:00 is the first minute
        ([session(3, 0, 600)], CLOSED),  # the end minute is excluded
        ([session(2, 0, 1440), session(4, 0, 1440)], CLOSED),  # other days
        ([], CLOSED),  # never open
    ],
)
def test_the_status_follows_the_weekly_sessions_in_utc(
    sessions: list[pricing_pb2.TradingSession], status: int
) -> None:
    assert trading_status(False, sessions, T0) == status


def row(**changes: Any) -> dict[str, Any]:
    """A pricing.instruments row as SQLAlchemy returns it."""
    values = {
        "symbol": "US500",
        "description": "US 500 Index",
        "asset_class": "INDEX",
        "base_currency": "   ",  # CHAR(3) of an empty value
        "quote_currency": "USD",
        "digits": 1,
        "tick_size": Decimal("0.1000"),
        "contract_size": Decimal("1"),
        "min_lot": Decimal("0.10"),
        "max_lot": Decimal("500"),
        "lot_step": Decimal("0.1"),
        "margin_rate": Decimal("0.05"),
        "trading_status": "TRADING",
        "halt_reason": "",
        "sessions": json.loads(schedule.to_json([session(3, 0, 1440)])),
        "version": 1,
        "updated_at": T0,
    }
    values.update(changes)
    return values


def test_a_row_becomes_the_contracts_instrument_and_back() -> None:
    instrument = instrument_from_row(row(), T0)

    assert instrument.base_currency == ""
    assert (instrument.tick_size, instrument.min_lot) == ("0.1", "0.1")
    assert list(instrument.sessions) == [session(3, 0, 1440)]
    assert instrument.trading_status == TRADING
    values = row_values(instrument)
    assert values["tick_size"] == Decimal("0.1")
    assert values["asset_class"] == "INDEX"
    assert json.loads(str(values["sessions"])) == [
        {"day": "WEDNESDAY", "start_minute": 0, "end_minute": 1440}
    ]


def test_a_halted_row_shows_its_reason_and_a_trading_one_none() -> None:
    assert instrument_from_row(row(trading_status="HALTED", halt_reason="why"), T0).halt_reason == (
        "why"
    )
    assert instrument_from_row(row(halt_reason="stale text"), T0).halt_reason == ""


# -- the reference data takes committed changes ------------------------------------------------


def reference() -> Reference:
    return Reference(cast(Database, None))  # put and refresh_statuses never touch the database


def test_a_committed_change_reaches_the_reference_once_and_only_if_newer() -> None:
    ref = reference()
    digits = ref.digits
    calls: list[dict[str, int]] = []
    ref.on_instruments_changed = lambda: calls.append(dict(ref.digits))

    assert ref.put(instrument_from_row(row(digits=1), T0), 2)
    assert not ref.put(instrument_from_row(row(digits=2), T0), 1)  # an older change, late

    assert ref.digits is digits  # shared with the stream hub: updated in place
    assert ref.digits == {"US500": 1}
    assert calls == [{"US500": 1}]


def test_the_status_clock_opens_and_closes_by_the_schedule_but_never_lifts_a_halt() -> None:
    ref = reference()
    ref.put(instrument_from_row(row(), T0), 1)
    ref.put(instrument_from_row(row(symbol="HALTED1", trading_status="HALTED"), T0), 1)
    before = ref.instruments["US500"]

    thursday = T0 + timedelta(days=1)
    assert ref.refresh_statuses(thursday) == ["US500"]

    assert ref.instruments["US500"].trading_status == CLOSED
    assert before.trading_status == TRADING  # replaced, not changed under a reader
    assert ref.instruments["HALTED1"].trading_status == HALTED
    assert ref.refresh_statuses(thursday) == []


# -- the books and the provenance ---------------------------------------------------------------


def lp_quote(lp: str, bid: str, ask: str, at: datetime, **more: Any) -> LpQuote:
    values: dict[str, Any] = {
        "lp": lp,
        "symbol": "EURUSD",
        "bid": Decimal(bid),
        "ask": Decimal(ask),
        "bid_size": Decimal(50),
        "ask_size": Decimal(50),
        "quote_id": f"{lp}:1:7:EURUSD",
        "lp_time": at - timedelta(milliseconds=3),
        "received_at": at,
        "sequence": 7,
    }
    values.update(more)
    return LpQuote(**values)


def test_the_engine_keeps_every_lps_last_book_and_marks_the_ones_that_no_longer_count() -> None:
    engine = PricingEngine({"EURUSD": 5}, max_quote_age=timedelta(seconds=2))
    engine.on_quotes(
        [
            lp_quote("lp-beta", "1.10005", "1.10030", T0),
            lp_quote("lp-alpha", "1.10000", "1.10020", T0),
            lp_quote("lp-gamma", "1.10001", "1.10021", T0 - timedelta(seconds=1)),
        ],
        T0,
    )
    engine.lp_down("lp-beta", T0)
    now = T0 + timedelta(seconds=1, milliseconds=500)
    engine.expire(now)

    books = engine.lp_books("EURUSD", now)

    assert [(q.lp, stale) for q, stale in books] == [
        ("lp-alpha", False),
        ("lp-beta", True),  # its session ended
        ("lp-gamma", True),  # older than 2 s
    ]
    assert engine.lp_books("NOPE", now) == []


def test_the_provenance_lists_a_book_per_lp_and_the_quote_as_published() -> None:
    alpha = lp_quote("lp-alpha", "1.10000", "1.10020", T0, bid_size=Decimal(0))
    quote = pricing_pb2.Quote(symbol="EURUSD", bid="1.09995", ask="1.10025")
    quote.provenance.markup.bid_markup = "0.00005"

    response = provenance_response(quote, [(alpha, False)], ["lp-beta", "lp-alpha"])

    assert response.quote == quote
    assert [b.liquidity_provider_id for b in response.books] == ["lp-alpha", "lp-beta"]
    book, silent = response.books
    assert (book.bid.raw_price, book.ask.raw_price) == ("1.10000", "1.10020")
    assert (book.bid.sequence, book.ask.liquidity_provider_id) == (7, "lp-alpha")
    assert book.bid.receive_time.ToDatetime(UTC) == T0
    assert (book.bid_size, book.ask_size) == ("", "50")  # 0 means the LP sent no size
    assert not book.stale
    assert silent.stale
    assert not silent.HasField("bid")
    assert not silent.HasField("ask")


def test_without_a_published_price_the_quote_is_unset() -> None:
    assert not provenance_response(None, [], ["lp-alpha"]).HasField("quote")


# -- LP activity -------------------------------------------------------------------------------


def test_quotes_are_counted_per_session_and_latency_is_sampled_once_per_message() -> None:
    activity = LpActivity()
    message = [
        lp_quote("lp-alpha", "1.1", "1.2", T0, lp_time=T0 - timedelta(milliseconds=9)),
        lp_quote("lp-alpha", "1.1", "1.2", T0, symbol="GBPUSD", lp_time=T0),
    ]
    activity.on_quotes(message)
    for i in range(1, 100):  # 99 messages of 1 ms delay after it
        at = T0 + timedelta(milliseconds=i)
        activity.on_quotes(
            [lp_quote("lp-alpha", "1.1", "1.2", at, lp_time=at - timedelta(milliseconds=1))]
        )

    assert activity.quote_count("lp-alpha") == 101
    assert activity.last_quote_at("lp-alpha") == T0 + timedelta(milliseconds=99)
    median, p99 = activity.latency("lp-alpha", T0 + timedelta(seconds=1)) or (None, None)
    assert median == timedelta(milliseconds=1)
    assert p99 == timedelta(milliseconds=1)  # the 9 ms sample is the 100th of 100
    activity.on_state(LpStatus("lp-alpha", SessionState.LOGGED_ON))
    assert activity.quote_count("lp-alpha") == 0


def test_latency_covers_the_last_minute_only() -> None:
    activity = LpActivity()
    activity.on_quotes([lp_quote("lp-alpha", "1.1", "1.2", T0)])
    assert activity.latency("lp-alpha", T0 + timedelta(seconds=59)) is not None
    assert activity.latency("lp-alpha", T0 + timedelta(seconds=61)) is None
    assert activity.latency("lp-beta", T0) is None


def test_nearest_rank_picks_observed_values() -> None:
    values = [timedelta(milliseconds=n) for n in range(1, 11)]
    assert nearest_rank(values, 50) == timedelta(milliseconds=5)
    assert nearest_rank(values, 99) == timedelta(milliseconds=10)
    assert nearest_rank(values[:1], 50) == timedelta(milliseconds=1)


def test_a_liquidity_provider_shows_its_activity_and_hides_old_errors_while_connected() -> None:
    activity = LpActivity()
    activity.on_quotes([lp_quote("lp-alpha", "1.1", "1.2", T0)])
    status = LpStatus("lp-alpha", SessionState.LOGGED_ON, T0, last_error="market data refused")

    provider = liquidity_provider(status, activity, 6, 1, T0)

    assert provider.session_state == pricing_pb2.LIQUIDITY_PROVIDER_SESSION_STATE_CONNECTED
    assert (provider.quote_count, provider.subscribed_instrument_count) == (1, 6)
    assert provider.stale_instrument_count == 1
    assert provider.last_quote_time.ToDatetime(UTC) == T0
    assert provider.median_latency.ToTimedelta() == timedelta(milliseconds=3)
    assert provider.last_error == ""
    down = LpStatus("lp-alpha", SessionState.DISCONNECTED, T0, last_error="socket closed")
    assert liquidity_provider(down, LpActivity(), 0, 0, T0).last_error == "socket closed"


def test_a_logged_on_lp_whose_market_data_is_refused_is_connecting_with_the_lps_reason() -> None:
    refused = LpStatus(
        "lp-alpha",
        SessionState.LOGGED_ON,
        T0,
        last_error="market data refused: not available",
        feed=FeedState.REFUSED,
    )

    provider = liquidity_provider(refused, LpActivity(), 6, 6, T0)

    assert not refused.serving
    assert provider.session_state == pricing_pb2.LIQUIDITY_PROVIDER_SESSION_STATE_CONNECTING
    assert provider.last_error == "market data refused: not available"
    flowing = LpStatus("lp-alpha", SessionState.LOGGED_ON, T0, feed=FeedState.FLOWING)
    assert liquidity_provider(flowing, LpActivity(), 6, 0, T0).session_state == (
        pricing_pb2.LIQUIDITY_PROVIDER_SESSION_STATE_CONNECTED
    )


def test_quotes_are_counted_per_logon_not_per_market_data_health_change() -> None:
    activity = LpActivity()
    activity.on_state(LpStatus("lp-alpha", SessionState.LOGGED_ON, logons=1))
    activity.on_quotes([lp_quote("lp-alpha", "1.1", "1.2", T0)])

    activity.on_state(LpStatus("lp-alpha", SessionState.LOGGED_ON, logons=1, feed=FeedState.SILENT))
    assert activity.quote_count("lp-alpha") == 1
    activity.on_state(LpStatus("lp-alpha", SessionState.LOGGED_ON, logons=2))
    assert activity.quote_count("lp-alpha") == 0

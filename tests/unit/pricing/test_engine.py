"""The pricing engine: best bid and ask across LPs, staleness, markups, provenance."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal

import pytest

from services.pricing.engine import GroupConfig
from services.pricing.engine import PricingEngine
from services.pricing.engine import apply_markup
from services.pricing.model import LpQuote
from services.pricing.model import Markup
from services.pricing.model import MarkupKind

T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
NO_MARKUP = Markup.none()


def quote(lp: str, bid: str, ask: str, at: datetime = T0, symbol: str = "EURUSD") -> LpQuote:
    return LpQuote(
        lp=lp,
        symbol=symbol,
        bid=Decimal(bid),
        ask=Decimal(ask),
        bid_size=Decimal(10),
        ask_size=Decimal(10),
        quote_id=f"{lp}:{bid}:{ask}",
        lp_time=None,
        received_at=at,
    )


def engine(*groups: GroupConfig) -> PricingEngine:
    e = PricingEngine({"EURUSD": 5, "USDJPY": 3}, max_quote_age=timedelta(seconds=2))
    e.set_groups(groups or [GroupConfig("raw", {"EURUSD": NO_MARKUP, "USDJPY": NO_MARKUP})], T0)
    return e


def test_best_bid_and_best_ask_may_come_from_different_lps() -> None:
    e = engine()
    update = e.on_quotes([quote("a", "1.08500", "1.08510"), quote("b", "1.08503", "1.08512")], T0)
    (price,) = [p for p in update.prices if p.symbol == "EURUSD"][-1:]
    assert (price.bid, price.ask) == (Decimal("1.08503"), Decimal("1.08510"))
    assert price.bid_source.lp == "b"
    assert price.ask_source.lp == "a"
    assert price.bid_source.quote_id == "b:1.08503:1.08512"
    assert price.ask_source.raw_price == Decimal("1.08510")


def test_a_crossed_book_across_lps_falls_back_to_the_tightest_lp() -> None:
    e = engine()
    update = e.on_quotes([quote("a", "1.08500", "1.08504"), quote("b", "1.08506", "1.08520")], T0)
    price = update.prices[-1]
    assert (price.bid, price.ask) == (Decimal("1.08500"), Decimal("1.08504"))
    assert price.bid_source.lp == price.ask_source.lp == "a"


def test_a_locked_book_is_never_published_with_zero_spread() -> None:
    e = engine()
    update = e.on_quotes([quote("a", "1.08500", "1.08510"), quote("b", "1.08510", "1.08530")], T0)
    price = update.prices[-1]
    assert price.ask > price.bid


def test_a_single_lp_quoting_crossed_gives_no_price() -> None:
    e = engine()
    update = e.on_quotes([quote("a", "1.08510", "1.08500")], T0)
    assert update.prices == []


@pytest.mark.parametrize(
    ("markup", "bid", "ask"),
    [
        (Markup(MarkupKind.POINTS, Decimal(3)), "1.08499", "1.08512"),  # 1 off the bid, 2 on
        (Markup(MarkupKind.POINTS, Decimal(4)), "1.08498", "1.08512"),
        (Markup(MarkupKind.POINTS, Decimal(0)), "1.08500", "1.08510"),
        # 0.02 % of 1.08505 = 0.000217..., rounded up to 22 points: 11 off the bid, 11 on
        (Markup(MarkupKind.PERCENT, Decimal("0.02")), "1.08489", "1.08521"),
    ],
)
def test_a_group_sees_exactly_the_marked_up_price(markup: Markup, bid: str, ask: str) -> None:
    e = engine(GroupConfig("g", {"EURUSD": markup}))
    price = e.on_quotes([quote("a", "1.08500", "1.08510")], T0).prices[-1]
    assert (price.bid, price.ask) == (Decimal(bid), Decimal(ask))
    assert price.markup == markup
    assert price.bid + price.bid_markup == Decimal("1.08500")
    assert price.ask - price.ask_markup == Decimal("1.08510")


def test_the_percent_example_of_the_contract() -> None:
    # common/v1/pricing.proto: "0.02" on a mid of 1.10000 widens the spread by 0.00022.
    bid_m, ask_m = apply_markup(
        Markup(MarkupKind.PERCENT, Decimal("0.02")),
        Decimal("1.09995"),
        Decimal("1.10005"),
        Decimal("0.00001"),
    )
    assert bid_m + ask_m == Decimal("0.00022")


def test_each_group_gets_its_own_markup_and_only_its_instruments() -> None:
    e = engine(
        GroupConfig("std", {"EURUSD": Markup(MarkupKind.POINTS, Decimal(10))}),
        GroupConfig("pro", {"EURUSD": NO_MARKUP, "USDJPY": NO_MARKUP}),
    )
    update = e.on_quotes(
        [quote("a", "1.08500", "1.08510"), quote("a", "151.200", "151.210", symbol="USDJPY")], T0
    )
    by_group = {(p.group_id, p.symbol): (p.bid, p.ask) for p in update.prices}
    assert by_group == {
        ("std", "EURUSD"): (Decimal("1.08495"), Decimal("1.08515")),
        ("pro", "EURUSD"): (Decimal("1.08500"), Decimal("1.08510")),
        ("pro", "USDJPY"): (Decimal("151.200"), Decimal("151.210")),
    }


def test_stale_quotes_stop_counting_and_the_other_lp_carries_on() -> None:
    e = engine()
    e.on_quotes([quote("a", "1.08505", "1.08510")], T0)
    e.on_quotes([quote("b", "1.08500", "1.08512", at=T0 + timedelta(seconds=1))], T0)
    later = T0 + timedelta(seconds=2, milliseconds=500)  # a's quote is 2.5 s old, b's 1.5 s
    update = e.expire(later)
    price = update.prices[-1]
    assert (price.bid, price.ask) == (Decimal("1.08500"), Decimal("1.08512"))
    assert update.stale == []
    # Then b goes stale too: the price is reported stale, not republished.
    update = e.expire(T0 + timedelta(seconds=4))
    assert update.prices == []
    assert ("raw", "EURUSD") in update.stale


def test_a_disconnected_lp_counts_no_more_until_it_is_back() -> None:
    e = engine()
    e.on_quotes([quote("a", "1.08505", "1.08510"), quote("b", "1.08500", "1.08512")], T0)
    price = e.lp_down("a", T0).prices[-1]
    assert price.bid_source.lp == price.ask_source.lp == "b"
    # A late message of the dead session is ignored.
    assert e.on_quotes([quote("a", "1.08600", "1.08601")], T0).prices == []
    e.lp_up("a")
    assert e.on_quotes([quote("a", "1.08506", "1.08509")], T0).prices[-1].bid_source.lp == "a"


def test_unchanged_prices_are_not_republished_and_versions_count_up() -> None:
    e = engine()
    first = e.on_quotes([quote("a", "1.08500", "1.08510")], T0).prices
    same = e.on_quotes([quote("a", "1.08500", "1.08510")], T0).prices
    moved = e.on_quotes([quote("a", "1.08501", "1.08511")], T0).prices
    assert [p.version for p in first] == [1]
    assert same == []
    assert [p.version for p in moved] == [2]


def test_an_unchanged_live_price_is_published_again_once_a_second_so_it_never_looks_stale() -> None:
    e = engine()
    e.on_quotes([quote("a", "1.08500", "1.08510")], T0)
    later = T0 + timedelta(milliseconds=900)
    quiet = e.on_quotes([quote("a", "1.08500", "1.08510", at=later)], later).prices
    second = T0 + timedelta(milliseconds=1000)
    again = e.on_quotes([quote("a", "1.08500", "1.08510", at=second)], second).prices

    assert quiet == []
    assert [(p.bid, p.ask, p.version, p.time) for p in again] == [
        (Decimal("1.08500"), Decimal("1.08510"), 2, second)
    ]


def test_a_group_that_stops_offering_an_instrument_reports_it_stale() -> None:
    e = engine(GroupConfig("g", {"EURUSD": NO_MARKUP}))
    e.on_quotes([quote("a", "1.08500", "1.08510")], T0)
    update = e.set_groups([GroupConfig("g", {})], T0)
    assert update.stale == [("g", "EURUSD")]

"""The working set's bookkeeping (positions by account and symbol, trades not yet booked) and
the prices taken from QuotePublished."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from datetime import timedelta
from decimal import Decimal

from services.risk.model import Side
from services.risk.model import UnbookedTrade
from services.risk.quotes import parse_quote
from tests.unit.risk.builders import GROUP
from tests.unit.risk.builders import NOW
from tests.unit.risk.builders import account
from tests.unit.risk.builders import broker
from tests.unit.risk.builders import position
from tradingmesh.pricing.v1 import pricing_events_pb2

D = Decimal


def test_closed_positions_leave_the_working_set_and_their_holders() -> None:
    state = broker()
    owner = account(state)
    first = position(state, owner, "EURUSD", Side.BUY, "1", "1.1")
    second = position(state, owner, "EURUSD", Side.SELL, "1", "1.1")

    state.put_position(replace(first, quantity=D(0), is_open=False, version=2))
    assert state.holders_of("EURUSD") == {owner.id}
    state.put_position(replace(second, quantity=D(0), is_open=False, version=2))

    assert state.holders_of("EURUSD") == set()
    assert state.accounts_with_positions() == []
    assert list(state.positions_of(owner.id)) == []


def test_unbooked_trades_add_up_per_account_until_booked() -> None:
    state = broker()
    owner = account(state)
    state.put_unbooked(UnbookedTrade("t-1", owner.id, "o-1", D("-120.00"), D("3.50")))
    state.put_unbooked(UnbookedTrade("t-2", owner.id, "o-2", D("20.00"), D("0")))

    assert state.unbooked_amount(owner.id) == D("-103.50")
    # The ledger booked t-1's P&L, then its commission.
    state.put_unbooked(UnbookedTrade("t-1", owner.id, "o-1", D("0"), D("3.50")))
    assert state.unbooked_amount(owner.id) == D("16.50")
    state.put_unbooked(UnbookedTrade("t-1", owner.id, "o-1", D("0"), D("0")))
    state.put_unbooked(UnbookedTrade("t-2", owner.id, "o-2", D("0"), D("0")))
    assert state.unbooked_amount(owner.id) == 0


def _published(version: int, bid: str, ask: str, at: datetime = NOW) -> bytes:
    event = pricing_events_pb2.QuotePublished(group_id=GROUP)
    event.metadata.aggregate_version = version
    event.quote.symbol = "EURUSD"
    event.quote.bid, event.quote.ask = bid, ask
    event.quote.quote_time.FromDatetime(at)
    event.quote.provenance.bid_source.raw_price = "1.10005"
    event.quote.provenance.ask_source.raw_price = "1.10015"
    return event.SerializeToString()


def test_a_published_price_carries_the_group_price_and_the_raw_lp_prices() -> None:
    parsed = parse_quote(_published(7, "1.10000", "1.10020"))

    assert parsed is not None
    group, symbol, quote = parsed
    assert (group, symbol, quote.version, quote.time) == (GROUP, "EURUSD", 7, NOW)
    assert (quote.bid, quote.ask, quote.raw_mid) == (D("1.10000"), D("1.10020"), D("1.10010"))
    assert parse_quote(b"\xff not a message") is None


def test_an_older_price_never_replaces_a_newer_one() -> None:
    state = broker()
    newer = parse_quote(_published(9, "1.20000", "1.20020"))
    older = parse_quote(_published(8, "1.10000", "1.10020"))
    assert newer is not None
    assert older is not None

    assert state.put_quote(*newer)
    assert not state.put_quote(*older)
    assert state.quotes[(GROUP, "EURUSD")].bid == D("1.20000")


def test_a_restarted_pricing_s_first_prices_replace_the_old_ones_despite_lower_versions() -> None:
    state = broker()
    before_restart = parse_quote(_published(5000, "1.20000", "1.20020"))
    after_restart = parse_quote(_published(1, "1.10000", "1.10020", NOW + timedelta(seconds=3)))
    assert before_restart is not None
    assert after_restart is not None

    assert state.put_quote(*before_restart)
    assert state.put_quote(*after_restart)
    assert state.quotes[(GROUP, "EURUSD")].bid == D("1.10000")

"""Page tokens, and the quote book's notion of a live price."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal

import grpc
import pytest

from services.oms.api.paging import decode_id_token
from services.oms.api.paging import decode_token
from services.oms.api.paging import encode_id_token
from services.oms.api.paging import encode_token
from services.oms.api.paging import page_size
from services.oms.entry.execution import LiveQuote
from services.oms.feeds.quotes import QuoteBook
from services.platform.errors import DomainError
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.pricing.v1 import pricing_events_pb2
from tradingmesh.pricing.v1 import pricing_pb2

T = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)
ID = "0c9d3c2e-0b0b-4a5e-9d55-0f3b2f3f4a12"


def test_a_token_gives_back_the_time_and_id_of_the_last_item() -> None:
    assert decode_token(encode_token(T, ID)) == (T, ID)
    assert decode_token("") is None
    assert decode_id_token(encode_id_token(ID)) == ID
    assert decode_id_token("") is None


@pytest.mark.parametrize("token", ["not-a-token", "MTIz", encode_token(T, "x"), "%%%"])
def test_a_token_this_service_did_not_issue_is_validation_failed(token: str) -> None:
    with pytest.raises(DomainError) as refused:
        decode_token(token)
    assert refused.value.reason == ErrorReason.ERROR_REASON_VALIDATION_FAILED
    assert refused.value.status == grpc.StatusCode.INVALID_ARGUMENT


def test_page_size_defaults_to_100() -> None:
    assert page_size(0) == 100
    assert page_size(7) == 7


def quote(
    at: datetime, bid: str = "1.1", ask: str = "1.2", stale: bool = False, group_id: str = "g1"
) -> LiveQuote:
    return LiveQuote(group_id, "EURUSD", Decimal(bid), Decimal(ask), at, 1, stale=stale)


def test_the_book_keeps_the_newest_quote_per_group_and_symbol() -> None:
    book = QuoteBook(timedelta(seconds=2))
    book.put(quote(T, "1.1"))
    book.put(quote(T - timedelta(seconds=1), "1.0"))  # late: ignored
    book.put(quote(T, "2.0", "2.1", group_id="g2"))
    assert book.latest("g1", "EURUSD") == quote(T, "1.1")
    assert book.latest("g2", "EURUSD") == quote(T, "2.0", "2.1", group_id="g2")
    assert book.latest("g3", "EURUSD") is None


def test_only_a_fresh_unstale_quote_is_live() -> None:
    book = QuoteBook(timedelta(seconds=2))
    book.put(quote(T))
    assert book.live("g1", "EURUSD", T + timedelta(seconds=1)) is not None
    assert book.live("g1", "EURUSD", T + timedelta(seconds=3)) is None
    book.put(quote(T + timedelta(seconds=3), stale=True))
    assert book.live("g1", "EURUSD", T + timedelta(seconds=3)) is None


def test_a_published_quote_becomes_a_live_quote_with_its_provenance() -> None:
    event = pricing_events_pb2.QuotePublished(group_id="g1")
    event.quote.CopyFrom(pricing_pb2.Quote(symbol="EURUSD", bid="1.10000", ask="1.10020"))
    event.quote.quote_time.FromDatetime(T)
    event.quote.provenance.bid_source.liquidity_provider_id = "lp-alpha"
    event.quote.provenance.bid_source.raw_price = "1.10005"
    live = LiveQuote.read(event.SerializeToString())
    assert isinstance(live, LiveQuote)
    assert (live.group_id, live.bid, live.ask, live.time) == (
        "g1",
        Decimal("1.1"),
        Decimal("1.1002"),
        T,
    )
    assert (live.bid_lp, live.raw_bid, live.raw_ask) == ("lp-alpha", Decimal("1.10005"), None)

"""What a published price is to the services that follow pricing (services/platform/prices.py)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from decimal import Decimal

import pytest

from services.platform.prices import PublishedPrice
from tradingmesh.pricing.v1 import pricing_events_pb2

T = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def _published(bid: str = "1.10000", ask: str = "1.10020", **changes: object) -> bytes:
    event = pricing_events_pb2.QuotePublished(group_id="g1")
    event.metadata.aggregate_version = 7
    event.quote.symbol = "EURUSD"
    event.quote.bid, event.quote.ask = bid, ask
    event.quote.quote_time.FromDatetime(T)
    event.quote.provenance.bid_source.liquidity_provider_id = "lp-alpha"
    event.quote.provenance.bid_source.raw_price = "1.10005"
    event.quote.provenance.ask_source.liquidity_provider_id = "lp-beta"
    event.quote.provenance.ask_source.raw_price = "1.10015"
    for name, value in changes.items():
        if name == "group_id":
            event.group_id = str(value)
        elif name == "no_time":
            event.quote.ClearField("quote_time")
        else:
            setattr(event.quote, name, value)
    return event.SerializeToString()


def test_a_published_price_carries_the_group_price_its_time_version_and_provenance() -> None:
    assert PublishedPrice.read(_published()) == PublishedPrice(
        group_id="g1",
        symbol="EURUSD",
        bid=Decimal("1.10000"),
        ask=Decimal("1.10020"),
        time=T,
        version=7,
        bid_lp="lp-alpha",
        ask_lp="lp-beta",
        raw_bid=Decimal("1.10005"),
        raw_ask=Decimal("1.10015"),
    )


@pytest.mark.parametrize(
    "data",
    [
        _published(bid=""),
        _published(ask="0"),
        _published(bid="-1.1"),
        _published(ask="NaN"),
        _published(bid="1,1"),
        _published(group_id=""),
        _published(symbol=""),
        _published(no_time=True),
        b"\xff not a message",
    ],
    ids=[
        "no bid",
        "zero ask",
        "negative bid",
        "NaN ask",
        "not a number",
        "no group",
        "no symbol",
        "no time",
        "not a message",
    ],
)
def test_a_message_without_a_usable_price_is_none(data: bytes) -> None:
    assert PublishedPrice.read(data) is None


def test_unusable_raw_prices_are_none_and_the_price_stands() -> None:
    event = pricing_events_pb2.QuotePublished.FromString(_published())
    event.quote.provenance.bid_source.raw_price = "0"
    event.quote.provenance.ask_source.ClearField("raw_price")
    price = PublishedPrice.read(event.SerializeToString())

    assert price is not None
    assert (price.bid, price.raw_bid, price.raw_ask) == (Decimal("1.10000"), None, None)

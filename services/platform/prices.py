"""The prices pricing publishes, as the services that follow them read them (the OMS's quote
book, risk's quote feed): `QuotePublished` on `pricing.quote.published.<group_id>.<symbol
token>`, a core publish that the PRICING_QUOTES stream also keeps, last per subject
(services/pricing/feed.py).

One rule for a usable price: a message that is no `QuotePublished`, or whose group, symbol or
quote time is missing, or whose bid or ask is not a positive number, is no price (None), so no
service values positions or fills orders at a price another would refuse. The raw LP prices
behind it (its provenance) are None where not given or not usable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from decimal import InvalidOperation
from typing import Final
from typing import Self

from google.protobuf.message import DecodeError

from tradingmesh.pricing.v1 import pricing_events_pb2

__all__ = ["SUBJECTS", "PublishedPrice"]

SUBJECTS: Final = "pricing.quote.published.*.>"
"""Every group's prices of every instrument."""


@dataclass(frozen=True, slots=True)
class PublishedPrice:
    """A group's price of an instrument (markup included) as pricing published it, read back
    (pricing's own `model.PublishedPrice` is the making of it). `version`: the price's aggregate
    version, which a restarted pricing counts from 1 again. A service that adds its own rules
    extends it (the OMS's `LiveQuote`), and `read` makes that class."""

    group_id: str
    symbol: str
    bid: Decimal
    ask: Decimal
    time: datetime
    version: int
    stale: bool = False
    bid_lp: str = ""
    ask_lp: str = ""
    raw_bid: Decimal | None = None
    raw_ask: Decimal | None = None

    @classmethod
    def read(cls, data: bytes) -> Self | None:
        """The price a QuotePublished message carries, as `cls`; None when it carries no usable
        one (the module's rule)."""
        try:
            event = pricing_events_pb2.QuotePublished.FromString(data)
        except DecodeError:
            return None
        quote = event.quote
        bid, ask = _price(quote.bid), _price(quote.ask)
        if bid is None or ask is None or not (event.group_id and quote.symbol):
            return None
        if not quote.HasField("quote_time"):
            return None
        provenance = quote.provenance
        return cls(
            group_id=event.group_id,
            symbol=quote.symbol,
            bid=bid,
            ask=ask,
            time=quote.quote_time.ToDatetime(tzinfo=UTC),
            version=event.metadata.aggregate_version,
            stale=quote.stale,
            bid_lp=provenance.bid_source.liquidity_provider_id,
            ask_lp=provenance.ask_source.liquidity_provider_id,
            raw_bid=_price(provenance.bid_source.raw_price),
            raw_ask=_price(provenance.ask_source.raw_price),
        )


def _price(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value > 0 else None

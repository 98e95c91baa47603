"""The values that flow through the pricing service (ADR 0006). Exact decimals, UTC times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum


@dataclass(frozen=True, slots=True)
class LpQuote:
    """One LP's top of book for one instrument, as its FIX session last reported it."""

    lp: str  # the LP's id, e.g. "lp-alpha"
    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    quote_id: str  # unique per LP: "<lp>:<session>:<seq>" — what provenance refers to
    lp_time: datetime | None  # when the LP says it priced it (SendingTime), if it says
    received_at: datetime  # when the gateway parsed it
    sequence: int = 0  # MsgSeqNum of the FIX message that carried it
    lp_entry_id: str = ""  # the LP's own id of the entry (MDEntryID), if it sends one


class MarkupKind(Enum):
    POINTS = "POINTS"
    PERCENT = "PERCENT"


@dataclass(frozen=True, slots=True)
class Markup:
    kind: MarkupKind
    value: Decimal  # POINTS: whole points; PERCENT: percent of the raw mid

    @classmethod
    def none(cls) -> Markup:
        return cls(MarkupKind.POINTS, Decimal(0))


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Which LP quote made one side of a published price."""

    lp: str
    quote_id: str
    raw_price: Decimal
    lp_time: datetime | None
    received_at: datetime
    sequence: int = 0
    lp_entry_id: str = ""


@dataclass(frozen=True, slots=True)
class PublishedPrice:
    """A price published to one client group, with its provenance."""

    group_id: str
    symbol: str
    bid: Decimal
    ask: Decimal
    time: datetime
    version: int  # counts the prices of this group and symbol (QuotePublished's aggregate_version)
    bid_source: SourceRef
    ask_source: SourceRef
    markup: Markup
    bid_markup: Decimal  # what the markup took off the bid
    ask_markup: Decimal  # what the markup added to the ask


@dataclass(frozen=True, slots=True)
class Bar:
    """One candle's values: OHLC of the bid, the number of ticks, and when its first and last
    tick happened (which decide the open and the close when bars merge)."""

    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    tick_volume: int
    first_tick_time: datetime
    last_tick_time: datetime

    @classmethod
    def of_tick(cls, open_time: datetime, time: datetime, bid: Decimal) -> Bar:
        return cls(open_time, bid, bid, bid, bid, 1, time, time)

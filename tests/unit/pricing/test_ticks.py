"""The tick writer without a database: rows, exactness, the bounded buffer."""

from __future__ import annotations

import uuid
from datetime import UTC
from datetime import datetime
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import create_async_engine

from services.platform.db import Database
from services.pricing.model import LpQuote
from services.pricing.model import Markup
from services.pricing.model import MarkupKind
from services.pricing.model import PublishedPrice
from services.pricing.model import SourceRef
from services.pricing.ticks import LP_TICK_COLUMNS
from services.pricing.ticks import PUBLISHED_PRICE_COLUMNS
from services.pricing.ticks import InexactValueError
from services.pricing.ticks import TickWriter
from services.pricing.ticks import lp_tick_row
from services.pricing.ticks import published_price_row

NOW = datetime(2026, 3, 10, 10, 0, 0, 123456, tzinfo=UTC)


def quote(n: int = 1, bid: str = "1.08512", size: str = "1000000") -> LpQuote:
    return LpQuote(
        lp="lp-alpha",
        symbol="EURUSD",
        bid=Decimal(bid),
        ask=Decimal("1.08524"),
        bid_size=Decimal(size),
        ask_size=Decimal("500000.5"),
        quote_id=f"lp-alpha:1:{n}",
        lp_time=None,
        received_at=NOW,
    )


def price(bid: str = "1.08502") -> PublishedPrice:
    bid_source = SourceRef("lp-alpha", "lp-alpha:1:7", Decimal("1.08512"), None, NOW)
    ask_source = SourceRef("lp-beta", "lp-beta:3:9", Decimal("1.08520"), NOW, NOW)
    return PublishedPrice(
        group_id="7d0c1d5e-8d5a-4c55-9d7e-2f3f1f1f1f1f",
        symbol="EURUSD",
        bid=Decimal(bid),
        ask=Decimal("1.08530"),
        time=NOW,
        version=42,
        bid_source=bid_source,
        ask_source=ask_source,
        markup=Markup(MarkupKind.PERCENT, Decimal("0.0125")),
        bid_markup=Decimal("0.00010"),
        ask_markup=Decimal("0.00010"),
    )


def test_an_lp_quote_becomes_a_row_in_column_order() -> None:
    row = dict(zip(LP_TICK_COLUMNS, lp_tick_row(quote(3)), strict=True))

    assert row == {
        "time": NOW,
        "lp": "lp-alpha",
        "symbol": "EURUSD",
        "bid": Decimal("1.08512"),
        "ask": Decimal("1.08524"),
        "bid_size": Decimal("1000000"),
        "ask_size": Decimal("500000.5"),
        "quote_id": "lp-alpha:1:3",
        "lp_time": None,
    }


def test_a_published_price_row_records_its_lp_quotes_and_markup() -> None:
    row = dict(zip(PUBLISHED_PRICE_COLUMNS, published_price_row(price()), strict=True))

    assert row == {
        "time": NOW,
        "group_id": uuid.UUID("7d0c1d5e-8d5a-4c55-9d7e-2f3f1f1f1f1f"),
        "symbol": "EURUSD",
        "bid": Decimal("1.08502"),
        "ask": Decimal("1.08530"),
        "version": 42,
        "bid_lp": "lp-alpha",
        "ask_lp": "lp-beta",
        "bid_quote_id": "lp-alpha:1:7",
        "ask_quote_id": "lp-beta:3:9",
        "markup_type": "PERCENT",
        "markup": Decimal("0.0125"),
    }


@pytest.mark.parametrize(
    "bid",
    ["1.0851200000001", "1234567890123456789", "NaN", "Infinity", "1E+20"],
)
def test_a_value_numeric_30_12_would_round_is_refused(bid: str) -> None:
    with pytest.raises(InexactValueError):
        lp_tick_row(quote(bid=bid))
    with pytest.raises(InexactValueError):
        published_price_row(price(bid=bid))


@pytest.mark.parametrize("bid", ["1.08512000000000000", "123456789012345678.123456789012", "0"])
def test_values_that_fit_exactly_are_kept_as_they_are(bid: str) -> None:
    assert lp_tick_row(quote(bid=bid))[3] == Decimal(bid)


def _dropped(table: str) -> float:
    value = REGISTRY.get_sample_value(
        "pricing_tick_rows_dropped_total", {"table": table, "reason": "buffer_full"}
    )
    return value or 0.0


def _writer(max_buffered: int) -> TickWriter:
    # Never started, never flushed: the engine is not used.
    engine = create_async_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    return TickWriter(Database(engine, engine), batch_rows=2, max_buffered=max_buffered)


def test_the_buffer_is_bounded_and_drops_the_oldest_rows_counting_them() -> None:
    writer = _writer(max_buffered=3)
    before = _dropped("lp_ticks")

    writer.add_lp_ticks(quote(n) for n in range(1, 6))
    writer.add_published([price()])

    assert writer.buffered == (3, 1)
    assert _dropped("lp_ticks") - before == 2
    assert [q.quote_id for q in writer._lp_ticks.rows] == [
        "lp-alpha:1:3",
        "lp-alpha:1:4",
        "lp-alpha:1:5",
    ]


def test_the_writer_refuses_a_batch_larger_than_its_buffer() -> None:
    with pytest.raises(ValueError, match="batch_rows"):
        _writer(max_buffered=1)

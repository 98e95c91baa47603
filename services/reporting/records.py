"""Rows of the other services' tables as reporting's wire records (reporting.proto).

The store hands decimals over as text: without trailing zeros (PostgreSQL's `trim_scale`, as the
CSV exports write them and as `plain_decimal` does), so a record and its CSV row are equal text
for text; ledger amounts with the currency's decimals. Statement totals are money, rounded to
the account currency by the statement's arithmetic.

Each record is filled from the columns named as its fields (`services.platform.messages.
from_row`: enums by their stored names, NULL as the field's default); only the times, kept as
microseconds (`*_us`), and what is named otherwise are given here.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.engine import Row

from services.platform.messages import from_row
from tradingmesh.reporting.v1 import reporting_pb2

__all__ = ["from_us", "ledger_line", "order_record", "trade_record"]


def from_us(us: int) -> Timestamp:
    """A Timestamp from microseconds since the epoch (the store's `*_us` columns)."""
    return Timestamp(seconds=us // 1_000_000, nanos=us % 1_000_000 * 1000)


def trade_record(
    row: Row[Any], swaps: Mapping[str, Decimal] | None = None
) -> reporting_pb2.TradeRecord:
    """A fill; `swaps` (position id -> swap booked before the fill's end of period) puts the
    position's swap on the fill that closed it (CLOSE or REVERSE)."""
    swap = Decimal(0)
    if swaps is not None and row.position_effect in ("CLOSE", "REVERSE"):
        swap = swaps.get(row.position_id, Decimal(0))
    return from_row(reporting_pb2.TradeRecord, row, fill_time=from_us(row.fill_us), swap=swap)


def order_record(row: Row[Any]) -> reporting_pb2.OrderRecord:
    return from_row(
        reporting_pb2.OrderRecord,
        row,
        create_time=from_us(row.create_us),
        update_time=from_us(row.update_us),
    )


def ledger_line(row: Row[Any]) -> reporting_pb2.StatementLedgerLine:
    return from_row(
        reporting_pb2.StatementLedgerLine,
        row,
        ledger_entry_id=row.id,
        create_time=from_us(row.created_us),
    )

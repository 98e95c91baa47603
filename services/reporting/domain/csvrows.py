"""The CSV files of the exports (RFC 4180) and the text of their values (ADR 0012, "Exports").

The records themselves are written by PostgreSQL on the replica, a chunk of them per statement
or fetched row (services/reporting/store.py), so an export of a million fills never passes
through Python values; this module holds what both sides must agree on: the columns, the header
row, the quoting and line end of RFC 4180, and how a decimal and a time are spelled, which
ListTradeHistory uses too (the integration test compares the two row for row).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from typing import Final

__all__ = [
    "BROKER_TRADE_COLUMNS",
    "CONTENT_TYPE",
    "CRLF",
    "TRADE_COLUMNS",
    "csv_line",
    "header",
    "rfc3339_ms",
]

CONTENT_TYPE: Final = "text/csv; charset=utf-8"
CRLF: Final = "\r\n"

# reporting_service.proto, ExportTrades: the columns, in order.
TRADE_COLUMNS: Final = (
    "trade_id",
    "order_id",
    "client_order_id",
    "position_id",
    "fill_time",
    "symbol",
    "side",
    "position_effect",
    "quantity",
    "price",
    "commission",
    "realized_pnl",
    "currency",
    "origin",
)
# reporting_admin_service.proto, ExportBrokerTrades: the account's columns first.
BROKER_TRADE_COLUMNS: Final = ("account_id", "account_number", "group_id", *TRADE_COLUMNS)

_NEEDS_QUOTES: Final = frozenset(',"\r\n')


def _field(value: str) -> str:
    """RFC 4180: a field with a comma, a double quote or a line break is enclosed in double
    quotes, and a double quote inside it is doubled."""
    if any(c in _NEEDS_QUOTES for c in value):
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_line(values: Sequence[str]) -> str:
    """One record: fields joined by commas, ended by CRLF."""
    return ",".join(_field(v) for v in values) + CRLF


def header(columns: Sequence[str]) -> bytes:
    return csv_line(columns).encode()


def rfc3339_ms(at: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, truncated: "2026-11-20T14:03:07.125Z"."""
    utc = at.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"

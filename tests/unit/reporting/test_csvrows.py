"""The CSV exports' rules (RFC 4180) and the text of their values (ADR 0012, "Exports")."""

from __future__ import annotations

import csv
import io
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from services.reporting.domain.csvrows import BROKER_TRADE_COLUMNS
from services.reporting.domain.csvrows import TRADE_COLUMNS
from services.reporting.domain.csvrows import csv_line
from services.reporting.domain.csvrows import header
from services.reporting.domain.csvrows import rfc3339_ms


def test_a_plain_field_is_written_as_is_and_the_record_ends_with_crlf() -> None:
    assert csv_line(["a", "1.5", ""]) == "a,1.5,\r\n"


def test_fields_with_commas_quotes_or_line_breaks_are_quoted() -> None:
    line = csv_line(['say "hi"', "a,b", "x\ny"])

    assert line == '"say ""hi""","a,b","x\ny"\r\n'
    assert next(csv.reader(io.StringIO(line, newline=""))) == ['say "hi"', "a,b", "x\ny"]


def test_the_header_rows_name_the_contract_columns() -> None:
    assert header(TRADE_COLUMNS) == (
        b"trade_id,order_id,client_order_id,position_id,fill_time,symbol,side,position_effect,"
        b"quantity,price,commission,realized_pnl,currency,origin\r\n"
    )
    assert BROKER_TRADE_COLUMNS[:3] == ("account_id", "account_number", "group_id")


def test_times_are_utc_with_milliseconds_truncated() -> None:
    at = datetime(2026, 11, 20, 16, 3, 7, 125999, tzinfo=timezone(timedelta(hours=2)))

    assert rfc3339_ms(at) == "2026-11-20T14:03:07.125Z"
    assert rfc3339_ms(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"

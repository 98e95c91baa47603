"""`insert_rows`: many rows, one statement, in the order given."""

from __future__ import annotations

import pytest

from services.platform.sql import insert_rows


def test_rows_become_one_statement_with_a_parameter_per_row_and_column() -> None:
    statement, params = insert_rows(
        "oms.outbox",
        ("event_id", "payload"),
        [{"event_id": "a", "payload": b"1", "ignored": 0}, {"event_id": "b", "payload": b"2"}],
        "ON CONFLICT DO NOTHING",
    )

    assert str(statement) == (
        "INSERT INTO oms.outbox (event_id, payload) VALUES (:event_id_0, :payload_0),"
        " (:event_id_1, :payload_1) ON CONFLICT DO NOTHING"
    )
    assert params == {"event_id_0": "a", "payload_0": b"1", "event_id_1": "b", "payload_1": b"2"}


def test_a_row_without_a_column_is_an_error_and_so_is_no_row() -> None:
    with pytest.raises(KeyError):
        insert_rows("t", ("a", "b"), [{"a": 1}])
    with pytest.raises(ValueError, match="at least one row"):
        insert_rows("t", ("a",), [])

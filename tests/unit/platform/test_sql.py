"""`insert_rows`: many rows, one statement, in the order given."""

from __future__ import annotations

import pytest

from services.platform.sql import Write
from services.platform.sql import insert_rows
from services.platform.sql import one_statement
from services.platform.sql import where


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


def test_writes_become_one_statement_that_counts_what_the_counted_ones_touched() -> None:
    statement, params = one_statement(
        [
            Write("UPDATE t SET a = :a WHERE id = :id AND v = :v", {"a": 1, "id": 2, "v": 3}, True),
            Write("INSERT INTO u (b, c) VALUES (:b, CAST(:c AS jsonb))", {"b": 4, "c": "{}"}),
            Write("UPDATE t SET a = :a WHERE id = :id", {"a": 5, "id": 6}, counted=True),
        ]
    )

    assert str(statement) == (
        "WITH w0 AS (UPDATE t SET a = :a__w0 WHERE id = :id__w0 AND v = :v__w0 RETURNING 1),"
        " w1 AS (INSERT INTO u (b, c) VALUES (:b__w1, CAST(:c__w1 AS jsonb))),"
        " w2 AS (UPDATE t SET a = :a__w2 WHERE id = :id__w2 RETURNING 1)"
        " SELECT (SELECT count(*) FROM w0), (SELECT count(*) FROM w2)"
    )
    assert params == {
        "a__w0": 1,
        "id__w0": 2,
        "v__w0": 3,
        "b__w1": 4,
        "c__w1": "{}",
        "a__w2": 5,
        "id__w2": 6,
    }
    assert set(statement.compile().params) == set(params)


def test_without_counted_writes_the_statement_answers_an_empty_row() -> None:
    statement, _ = one_statement([Write("DELETE FROM t WHERE id = :id", {"id": 1})])

    assert str(statement) == "WITH w0 AS (DELETE FROM t WHERE id = :id__w0) SELECT"


def test_where_keeps_the_given_filters_in_order_and_lists_their_values() -> None:
    clause, params = where(
        ("account_id = :account_id", "account_id", "a-1"),
        ("symbol = :symbol", "symbol", None),
        ("status = ANY(:statuses)", "statuses", ("OPEN", "CLOSED")),
        ("quantity > :zero", "zero", 0),  # a falsy value is still given; only None is not
    )
    assert (
        clause == " WHERE account_id = :account_id AND status = ANY(:statuses) AND quantity > :zero"
    )
    assert params == {"account_id": "a-1", "statuses": ["OPEN", "CLOSED"], "zero": 0}


def test_where_without_a_given_filter_is_no_clause() -> None:
    assert where(("symbol = :symbol", "symbol", None)) == ("", {})
    assert where() == ("", {})

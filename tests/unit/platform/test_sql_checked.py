"""One statement that checks what it wrote (`sql.one_statement(..., check=...)`), and the
positional form the hot path sends (`sql.positional`)."""

from __future__ import annotations

import pytest

from services.platform.sql import UNEXPECTED_WRITE
from services.platform.sql import Write
from services.platform.sql import one_statement_sql
from services.platform.sql import positional
from services.platform.sql import unexpected_write


def test_checked_writes_are_passed_to_the_check_with_their_names_and_counts() -> None:
    statement, params = one_statement_sql(
        [
            Write("INSERT INTO t (a) VALUES (:a)", {"a": 1}, expect=1, name="order"),
            Write("INSERT INTO u (b) VALUES (:b)", {"b": 2}),
            Write("UPDATE v SET c = :c WHERE d = :d", {"c": 3, "d": 4}, expect=1, name="account"),
        ],
        check="oms.expect_written",
    )
    assert statement.startswith("WITH w0 AS (INSERT INTO t (a) VALUES (:a__w0) RETURNING 1),")
    assert "w1 AS (INSERT INTO u (b) VALUES (:b__w1))" in statement  # unchecked: no RETURNING
    assert statement.endswith(
        "SELECT oms.expect_written(ARRAY[(SELECT count(*) FROM w0), (SELECT count(*) FROM w2)]"
        "::bigint[], ARRAY[CAST(:expect__0 AS bigint), CAST(:expect__1 AS bigint)]::bigint[],"
        " ARRAY[CAST(:name__0 AS text), CAST(:name__1 AS text)]::text[])"
    )
    assert params == {
        "a__w0": 1,
        "b__w1": 2,
        "c__w2": 3,
        "d__w2": 4,
        "expect__0": 1,
        "name__0": "order",
        "expect__1": 1,
        "name__1": "account",
    }


def test_without_a_check_counted_writes_are_reported() -> None:
    statement, _ = one_statement_sql([Write("DELETE FROM t WHERE a = :a", {"a": 1}, counted=True)])
    assert statement == (
        "WITH w0 AS (DELETE FROM t WHERE a = :a__w0 RETURNING 1) SELECT (SELECT count(*) FROM w0)"
    )


def test_the_positional_form_numbers_each_name_once_and_keeps_casts() -> None:
    statement, values = positional(
        "SELECT :a, CAST(:b AS text), CAST(:a AS int), '10:30'::time WHERE x = :c",
        {"a": 1, "b": "two", "c": None},
    )
    assert statement == "SELECT $1, CAST($2 AS text), CAST($1 AS int), '10:30'::time WHERE x = $3"
    assert values == [1, "two", None]


def test_a_failed_check_names_the_write() -> None:
    class Diag:
        message_primary = "account"

    class FailureError(Exception):
        sqlstate = UNEXPECTED_WRITE
        diag = Diag()

    class WrappedError(Exception):  # as SQLAlchemy wraps a driver error
        orig = FailureError()

    assert unexpected_write(FailureError()) == "account"
    assert unexpected_write(WrappedError()) == "account"
    assert unexpected_write(ValueError("other")) is None


@pytest.mark.parametrize("missing", ["a", "b"])
def test_a_missing_parameter_is_an_error(missing: str) -> None:
    params = {"a": 1, "b": 2}
    del params[missing]
    with pytest.raises(KeyError):
        positional("SELECT :a, :b", params)

"""Statements built for many rows, and many writes, at once.

psycopg sends an `executemany` as one statement per row (pipelined, but each is parsed,
planned and counted by PostgreSQL, and adapted by the client on its own), and each statement
through SQLAlchemy costs the client a fixed overhead; the cost of a transaction here is mostly
its number of statements (notes/order-floor.md). So:

- `insert_rows` writes any number of rows with ONE statement;
- `where` builds the WHERE clause of a filtered list from the filters a request gives;
- `one_statement` runs several writes (INSERT, UPDATE, DELETE) as ONE statement: each becomes a
  data-modifying WITH query, which PostgreSQL runs exactly once and to completion whether or
  not the main query reads it; the main query reports how many rows the counted ones touched.
  The writes see the same snapshot, so none may depend on another's effect. Given `check` (a
  schema's `expect_written` function, migration 0016), writes with an `expect`ed row count are
  checked by the statement itself: a mismatch aborts the whole statement (nothing is written)
  with SQLSTATE T0409 naming the write (`unexpected_write`), which makes one autocommit
  statement a complete optimistic change.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Final
from typing import cast

import psycopg
from psycopg import AsyncRawCursor
from sqlalchemy import TextClause
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = [
    "UNEXPECTED_WRITE",
    "Connection",
    "Write",
    "execute_raw",
    "fetch_raw",
    "insert_rows",
    "one_statement",
    "one_statement_sql",
    "positional",
    "unexpected_write",
    "values_insert",
    "where",
]

UNEXPECTED_WRITE: Final = "T0409"

# A named parameter as SQLAlchemy's text() finds them (":name"; not a cast, "::type").
_PARAMETER = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


def where(*filters: tuple[str, str, object]) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (" WHERE a AND b", or "" for none) of the filters that are given, and
    their parameters. A filter is (condition, its parameter's name, value); None is not given.
    A list value goes as a list (for `= ANY(:name)`); `where(("status = ANY(:statuses)",
    "statuses", ["OPEN"]), ("symbol = :symbol", "symbol", None))` is
    (" WHERE status = ANY(:statuses)", {"statuses": ["OPEN"]})."""
    given = [(condition, name, value) for condition, name, value in filters if value is not None]
    params = {
        name: list(value) if isinstance(value, set | frozenset | tuple) else value
        for _, name, value in given
    }
    clause = " AND ".join(condition for condition, _, _ in given)
    return (f" WHERE {clause}" if clause else ""), params


def values_insert(
    table: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]], suffix: str = ""
) -> tuple[str, dict[str, Any]]:
    """`INSERT INTO table (columns) VALUES (...), (...) [suffix]` for `rows` (each a mapping
    with every column) as SQL text, and its parameters. Rows are inserted in the order given,
    so serial columns number them in that order."""
    if not rows:
        raise ValueError("an insert needs at least one row")
    params: dict[str, Any] = {}
    groups = []
    for index, row in enumerate(rows):
        names = []
        for column in columns:
            name = f"{column}_{index}"
            params[name] = row[column]
            names.append(f":{name}")
        groups.append(f"({', '.join(names)})")
    statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join(groups)}"
    return f"{statement} {suffix}".rstrip(), params


def insert_rows(
    table: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]], suffix: str = ""
) -> tuple[TextClause, dict[str, Any]]:
    """`values_insert` as a statement to execute."""
    statement, params = values_insert(table, columns, rows, suffix)
    return text(statement), params


@dataclass(frozen=True)
class Write:
    """One INSERT, UPDATE or DELETE (without RETURNING) with :named parameters."""

    sql: str
    params: Mapping[str, Any] = field(default_factory=dict)
    counted: bool = False  # report how many rows it touched
    expect: int | None = None  # with `check`: the rows it must touch, else nothing is written
    name: str = ""  # what `unexpected_write` reports when `expect` is not met


def one_statement(
    writes: Sequence[Write], *, check: str | None = None
) -> tuple[TextClause, dict[str, Any]]:
    """`one_statement_sql` as a statement to execute through SQLAlchemy."""
    statement, params = one_statement_sql(writes, check=check)
    return text(statement), params


def one_statement_sql(
    writes: Sequence[Write], *, check: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The writes as one statement whose single row holds, for each counted write in order,
    the number of rows it touched (an empty row when none is counted). With `check` (e.g.
    "oms.expect_written"), the writes that `expect` a count are checked instead: the row holds
    True, or the statement fails and writes nothing (see the module doc)."""
    if not writes:
        raise ValueError("one_statement needs at least one write")
    params: dict[str, Any] = {}
    queries = []
    counted = []
    checked: list[tuple[str, int, str]] = []
    for index, write in enumerate(writes):
        suffix = f"__w{index}"
        body = _PARAMETER.sub(rf":\1{suffix}", write.sql)
        params.update({f"{name}{suffix}": value for name, value in write.params.items()})
        expected = check is not None and write.expect is not None
        returning = " RETURNING 1" if write.counted or expected else ""
        queries.append(f"w{index} AS ({body}{returning})")
        count = f"(SELECT count(*) FROM w{index})"
        if expected:
            assert write.expect is not None
            checked.append((count, write.expect, write.name or f"write {index}"))
        elif write.counted:
            counted.append(count)
    if check is not None:
        for index, (_, expect, name) in enumerate(checked):
            params[f"expect__{index}"], params[f"name__{index}"] = expect, name
        counts = ", ".join(c for c, _, _ in checked)
        expects = ", ".join(f"CAST(:expect__{i} AS bigint)" for i in range(len(checked)))
        names = ", ".join(f"CAST(:name__{i} AS text)" for i in range(len(checked)))
        main = (
            f"SELECT {check}(ARRAY[{counts}]::bigint[], ARRAY[{expects}]::bigint[],"
            f" ARRAY[{names}]::text[])"
        )
    else:
        main = f"SELECT {', '.join(counted)}" if counted else "SELECT"
    return f"WITH {', '.join(queries)} {main}", params


def positional(statement: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """A statement with :named parameters as PostgreSQL's own `$n` form and its values in
    order, for `execute_raw` (no parsing by SQLAlchemy or psycopg at each call). The form of a
    statement is computed once per statement text (the hot path's reads are fixed texts)."""
    converted, names = _positional_form(statement)
    return converted, [params[name] for name in names]


@functools.lru_cache(maxsize=256)
def _positional_form(statement: str) -> tuple[str, tuple[str, ...]]:
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in numbers:
            numbers[name] = len(numbers) + 1
        return f"${numbers[name]}"

    return _PARAMETER.sub(number, statement), tuple(numbers)


Connection = AsyncSession | psycopg.AsyncConnection[Any]
"""Where a raw statement runs: a session's connection (in its transaction), or a plain psycopg
connection (`Database.raw`)."""


async def _driver(connection: Connection) -> psycopg.AsyncConnection[Any]:
    if isinstance(connection, psycopg.AsyncConnection):
        return connection
    raw = await (await connection.connection()).get_raw_connection()
    return cast(psycopg.AsyncConnection[Any], raw.driver_connection)


async def execute_raw(
    connection: Connection, statement: str, values: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """Runs a `$n` statement with psycopg's raw cursor (no query conversion on either side;
    psycopg still prepares a statement it sees repeatedly); its rows. For the hot path only:
    errors are psycopg's own, not SQLAlchemy's wrappers."""
    async with AsyncRawCursor(await _driver(connection)) as cursor:
        await cursor.execute(statement, values)
        return await cursor.fetchall() if cursor.description else []


async def fetch_raw(
    connection: Connection, statement: str, params: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """A :named SELECT run as `execute_raw`; its rows as mappings by column name."""
    converted, values = positional(statement, params)
    async with AsyncRawCursor(await _driver(connection)) as cursor:
        await cursor.execute(converted, values)
        names = [column.name for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]


def unexpected_write(error: BaseException) -> str | None:
    """The name of the checked write whose count was not met, if `error` is that failure
    (a driver error, or SQLAlchemy's wrapping of one); else None."""
    cause = getattr(error, "orig", error)
    if getattr(cause, "sqlstate", None) != UNEXPECTED_WRITE:
        return None
    diag = getattr(cause, "diag", None)
    return str(getattr(diag, "message_primary", "") or "")

"""Statements built for many rows, and many writes, at once.

psycopg sends an `executemany` as one statement per row (pipelined, but each is parsed,
planned and counted by PostgreSQL, and adapted by the client on its own), and each statement
through SQLAlchemy costs the client a fixed overhead; the cost of a transaction here is mostly
its number of statements (notes/order-floor.md). So:

- `insert_rows` writes any number of rows with ONE statement;
- `one_statement` runs several writes (INSERT, UPDATE, DELETE) as ONE statement: each becomes a
  data-modifying WITH query, which PostgreSQL runs exactly once and to completion whether or
  not the main query reads it; the main query reports how many rows the counted ones touched.
  The writes see the same snapshot, so none may depend on another's effect.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import TextClause, text

__all__ = ["Write", "insert_rows", "one_statement", "values_insert"]

# A named parameter as SQLAlchemy's text() finds them (":name"; not a cast, "::type").
_PARAMETER = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


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


def one_statement(writes: Sequence[Write]) -> tuple[TextClause, dict[str, Any]]:
    """The writes as one statement whose single row holds, for each counted write in order,
    the number of rows it touched (an empty row when none is counted)."""
    if not writes:
        raise ValueError("one_statement needs at least one write")
    params: dict[str, Any] = {}
    queries = []
    counted = []
    for index, write in enumerate(writes):
        suffix = f"__w{index}"
        body = _PARAMETER.sub(rf":\1{suffix}", write.sql)
        params.update({f"{name}{suffix}": value for name, value in write.params.items()})
        returning = " RETURNING 1" if write.counted else ""
        queries.append(f"w{index} AS ({body}{returning})")
        if write.counted:
            counted.append(f"(SELECT count(*) FROM w{index})")
    main = f"SELECT {', '.join(counted)}" if counted else "SELECT"
    return text(f"WITH {', '.join(queries)} {main}"), params

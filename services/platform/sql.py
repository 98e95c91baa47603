"""Statements built for many rows at once.

psycopg sends an `executemany` as one statement per row (pipelined, but each is parsed,
planned and counted by PostgreSQL, and adapted by the client on its own); the cost of a
transaction here is mostly its number of statements (notes/order-floor.md). `insert_rows`
writes any number of rows with ONE statement instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import TextClause, text

__all__ = ["insert_rows"]


def insert_rows(
    table: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]], suffix: str = ""
) -> tuple[TextClause, dict[str, Any]]:
    """`INSERT INTO table (columns) VALUES (...), (...) [suffix]` for `rows` (each a mapping
    with every column), and its parameters. Rows are inserted in the order given, so serial
    columns number them in that order."""
    if not rows:
        raise ValueError("insert_rows needs at least one row")
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
    return text(f"{statement} {suffix}".rstrip()), params

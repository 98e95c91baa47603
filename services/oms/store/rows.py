"""The one-row read every store function makes the same way: the first row of a query, by
column name, made into a value (or None), optionally locked `FOR UPDATE`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["first_row", "for_update"]

T = TypeVar("T")


def for_update(lock: bool) -> str:
    """The suffix that locks the rows read, when `lock`."""
    return " FOR UPDATE" if lock else ""


async def first_row(
    session: AsyncSession,
    sql: str | TextClause,
    params: Mapping[str, Any],
    build: Callable[[Mapping[Any, Any]], T],
) -> T | None:
    """The first row of `sql` as `build` makes it, or None when there is none."""
    statement = text(sql) if isinstance(sql, str) else sql
    row = (await session.execute(statement, params)).mappings().first()
    return None if row is None else build(row)

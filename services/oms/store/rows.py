"""The reads every store function makes the same way: the first row of a query, or all its
rows, by column name, each made into a value (the first: or None), optionally locked `FOR
UPDATE`; and the one NOT_FOUND of a row that is not there."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import TypeVar

from sqlalchemy import TextClause
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform import errors
from services.platform.errors import DomainError

__all__ = ["all_rows", "first_row", "for_update", "found", "not_found"]

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


async def all_rows(
    session: AsyncSession,
    sql: str | TextClause,
    build: Callable[[Mapping[Any, Any]], T],
    params: Mapping[str, Any] | None = None,
) -> list[T]:
    """Every row of `sql`, in its order, as `build` makes it."""
    statement = text(sql) if isinstance(sql, str) else sql
    return [build(row) for row in (await session.execute(statement, params)).mappings()]


def not_found(what: str, row_id: str) -> DomainError:
    """NOT_FOUND for the `what` ("order", "hedge order") `row_id`, which the error's metadata
    names as `<what>_id`."""
    return errors.not_found(what, f"{what.replace(' ', '_')}_id", row_id)


def found(row: T | None, what: str, row_id: str) -> T:
    """`row`, read by its id; NOT_FOUND when there is none (`not_found`)."""
    if row is None:
        raise not_found(what, row_id)
    return row

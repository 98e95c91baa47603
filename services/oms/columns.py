"""Rows as values, one way: a frozen dataclass from the columns named as its fields, and back.

Each field is made from its column by its declared type (`str`, `int`, `bool`, `Decimal`, an
enum stored by name, or any of them `| None`; anything else, such as a `datetime`, as read), so
a row class declares its fields once instead of naming each column in `from_row` and again in
`params`.
"""

from __future__ import annotations

import enum
import functools
import types
import typing
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import fields
from decimal import Decimal
from typing import Any
from typing import TypeVar
from typing import cast

__all__ = ["from_columns", "to_columns"]

T = TypeVar("T")


def _as_read(value: Any) -> Any:
    return value


def _converter(kind: Any) -> Callable[[Any], Any]:
    if isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind):
        (inner,) = (arg for arg in typing.get_args(kind) if arg is not type(None))
        convert = _converter(inner)
        return lambda value: None if value is None else convert(value)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind
    return {str: str, int: int, bool: bool, Decimal: Decimal}.get(kind, _as_read)


@functools.cache
def _converters(cls: type) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _converter(hints[f.name])) for f in fields(cls))


def from_columns(cls: type[T], row: Mapping[Any, Any], prefix: str = "", **made: Any) -> T:
    """`cls` from the columns of `row` named as its fields (after `prefix`), each made its
    field's type; `made` gives the fields made otherwise."""
    values = {
        name: convert(row[f"{prefix}{name}"])
        for name, convert in _converters(cast(type, cls))
        if name not in made
    }
    return cls(**values, **made)


def to_columns(value: Any, **computed: Any) -> dict[str, Any]:
    """The columns of a row value by name (enums as their stored names), with `computed` ones
    (columns that are no field)."""
    columns = {
        f.name: (v.value if isinstance(v := getattr(value, f.name), enum.Enum) else v)
        for f in fields(value)
    }
    return {**columns, **computed}

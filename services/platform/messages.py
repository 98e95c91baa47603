"""Stored rows as contract messages, one way: `from_row(pb.User, row, create_time=...)` fills a
message from the columns named as its fields, each turned into its field's wire form by the
field's own descriptor, so a converter names only the fields whose column differs.

A row is a mapping (a SQLAlchemy `RowMapping`, a dict), a SQLAlchemy `Row`, or a dataclass. Of
each message field, the column of the same name is taken if the row has one; the keyword
arguments give the fields whose column is named otherwise or whose value is made otherwise
(`create_time=row["created_at"]`, `amount=format_money(...)`), converted the same way. Columns
that are no field of the message are ignored.

The conversion, by the field's type:

- None: the field is left unset (its default: "" for a string, 0 for an enum, absent for a
  message or an `optional` field).
- a string field: `str` as is, a `uuid.UUID` as its text, a `Decimal` as plain decimal text
  (`tradingmesh.exact.plain_decimal`: no trailing zeros, no exponent, "0" for any zero).
- an enum field: a `str` is the stored name without the prefix ("FILLED" for
  ORDER_STATUS_FILLED, `services.platform.enums.enum_value`); an int is the value itself.
- a `google.protobuf.Timestamp` field: a `datetime` (timezone-aware) or a Timestamp.
- a repeated field: each item as above.
- anything else (ints, bools, messages) as is; the message's own type checks refuse a wrong one.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from typing import TypeVar
from typing import overload

from google.protobuf.descriptor import Descriptor
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.platform.enums import enum_value
from tradingmesh.exact import plain_decimal

__all__ = ["from_row", "timestamp"]

M = TypeVar("M", bound=Message)
_Convert = Callable[[Any], Any]
_TIMESTAMP = Timestamp.DESCRIPTOR.full_name


def from_row(message_type: type[M], row: Any, /, **fields: Any) -> M:
    """A `message_type` from the columns of `row` named as its fields, with `fields` given
    otherwise; every value in its field's wire form (the module's docstring says how). A name
    in `fields` that is no field of the message is refused (ValueError)."""
    converters = _converters(message_type.DESCRIPTOR)
    unknown = fields.keys() - converters.keys()
    if unknown:
        raise ValueError(f"{message_type.DESCRIPTOR.full_name} has no field {sorted(unknown)}")
    columns = _columns(row)
    values = {}
    for name, convert in converters.items():
        value = fields[name] if name in fields else columns.get(name)
        if value is not None:
            values[name] = convert(value)
    return message_type(**values)


def _columns(row: Any) -> Mapping[str, Any]:
    if isinstance(row, Mapping):
        return row
    mapping = getattr(row, "_mapping", None)  # a SQLAlchemy Row
    if isinstance(mapping, Mapping):
        return mapping
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
    raise TypeError(f"not a row: {type(row).__name__}")


@functools.cache
def _converters(descriptor: Descriptor) -> dict[str, _Convert]:
    return {field.name: _converter(field) for field in descriptor.fields}


def _converter(field: FieldDescriptor) -> _Convert:
    one = _scalar(field)
    if field.is_repeated:
        return lambda values: [one(value) for value in values]
    return one


def _scalar(field: FieldDescriptor) -> _Convert:
    if field.type == FieldDescriptor.TYPE_STRING:
        return _text
    if field.enum_type is not None:
        enum_type = EnumTypeWrapper(field.enum_type)
        return lambda value: enum_value(enum_type, value) if isinstance(value, str) else value
    if field.message_type is not None and field.message_type.full_name == _TIMESTAMP:
        return _timestamp
    return _as_is


def _text(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


@overload
def timestamp(moment: datetime) -> Timestamp: ...
@overload
def timestamp(moment: None) -> None: ...
@overload
def timestamp(moment: datetime | None) -> Timestamp | None: ...
def timestamp(moment: datetime | None) -> Timestamp | None:
    """The protobuf Timestamp of a timezone-aware `moment`; None stays None (a message field
    given None is left unset)."""
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _timestamp(value: Any) -> Any:
    return timestamp(value) if isinstance(value, datetime) else value


def _as_is(value: Any) -> Any:
    return value

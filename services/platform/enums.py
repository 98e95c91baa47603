"""Contract enums as the services keep them: by their value's name without the prefix ("BUY"
for SIDE_BUY), as PostgreSQL stores them and code compares them, turned into and out of the
contract's values by one mapping (`ProtoEnum`); and the common/v1 enums several services share.
"""

from __future__ import annotations

import enum
import functools
import re
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar
from typing import Self
from typing import TypeVar
from typing import cast

from tradingmesh.common.v1 import types_pb2

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

__all__ = ["PositionMode", "ProtoEnum", "Side", "enum_name", "enum_value"]


_V = TypeVar("_V", bound=int)


@functools.cache
def _prefix(enum_type: Any) -> str:
    """The prefix of every value of a contract enum: its name in upper snake case ("DayOfWeek":
    "DAY_OF_WEEK_"), as `buf lint` (ENUM_VALUE_PREFIX) makes every enum spell its values."""
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum_type.DESCRIPTOR.name).upper() + "_"
    descriptor = enum_type.DESCRIPTOR
    if not all(value.name.startswith(prefix) for value in descriptor.values):
        raise ValueError(f"the values of {descriptor.full_name} lack the {prefix} prefix")
    return prefix


def enum_name(enum_type: Any, value: int) -> str:
    """A contract enum value's name without its prefix: `enum_name(pricing_pb2.DayOfWeek,
    DAY_OF_WEEK_MONDAY)` is "MONDAY" (as PostgreSQL stores it). ValueError for an unknown value."""
    return str(enum_type.Name(value)).removeprefix(_prefix(enum_type))


def enum_value(enum_type: _EnumTypeWrapper[_V], name: str) -> _V:
    """The contract value of a name without its prefix (the inverse of `enum_name`)."""
    return enum_type.Value(_prefix(enum_type) + name)


class ProtoEnum(enum.StrEnum):
    """A contract enum kept by name: `class OrderType(ProtoEnum, proto=trading_pb2.OrderType,
    prefix="ORDER_TYPE_")` with members MARKET = "MARKET", ... The contract's UNSPECIFIED is
    never a member."""

    _proto: ClassVar[Any]
    _prefix: ClassVar[str]

    def __init_subclass__(cls, *, proto: Any, prefix: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._proto = proto
        cls._prefix = prefix

    def to_proto(self) -> int:
        value: int = self._proto.Value(f"{self._prefix}{self.value}")
        return value

    @classmethod
    def from_proto(cls, value: int) -> Self:
        """The member of a contract value; ValueError for UNSPECIFIED or a value it lacks."""
        name = cls._proto.Name(value).removeprefix(cls._prefix)
        if name == "UNSPECIFIED":
            raise ValueError(f"{cls._prefix}UNSPECIFIED is not a {cls.__name__}")
        return cls(name)


class Side(ProtoEnum, proto=types_pb2.Side, prefix="SIDE_"):
    """The side of an order, fill or position: BUY (long) or SELL (short)."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY

    def to_proto(self) -> types_pb2.Side.ValueType:
        return cast(types_pb2.Side.ValueType, super().to_proto())


class PositionMode(ProtoEnum, proto=types_pb2.PositionMode, prefix="POSITION_MODE_"):
    """How an account keeps positions: one per symbol (NETTING) or one per fill (HEDGING)."""

    NETTING = "NETTING"
    HEDGING = "HEDGING"

    def to_proto(self) -> types_pb2.PositionMode.ValueType:
        return cast(types_pb2.PositionMode.ValueType, super().to_proto())

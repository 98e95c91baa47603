"""Contract enums as the services keep them: by their value's name without the prefix ("BUY"
for SIDE_BUY), as PostgreSQL stores them and code compares them, turned into and out of the
contract's values by one mapping (`ProtoEnum`); and the common/v1 enums several services share.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar, Self, cast

from tradingmesh.common.v1 import types_pb2

__all__ = ["PositionMode", "ProtoEnum", "Side"]


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

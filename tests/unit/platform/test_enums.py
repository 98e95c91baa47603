"""services/platform/enums.py: contract enums kept by name, one mapping to and from the wire."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from services.platform.enums import PositionMode
from services.platform.enums import ProtoEnum
from services.platform.enums import Side
from services.platform.enums import enum_name
from services.platform.enums import enum_value
from tradingmesh.common.v1 import errors_pb2
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.pricing.v1 import pricing_pb2


class _OrderType(ProtoEnum, proto=trading_pb2.OrderType, prefix="ORDER_TYPE_"):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


def test_every_contract_value_but_unspecified_maps_to_a_member_and_back() -> None:
    for kind, proto in ((Side, types_pb2.Side), (PositionMode, types_pb2.PositionMode)):
        for value in proto.values():
            if value == 0:
                continue
            member = kind.from_proto(value)
            assert member.to_proto() == value
            assert isinstance(member, kind)


def test_unspecified_and_values_without_a_member_are_refused() -> None:
    with pytest.raises(ValueError, match="SIDE_UNSPECIFIED is not a Side"):
        Side.from_proto(types_pb2.SIDE_UNSPECIFIED)
    with pytest.raises(ValueError, match="STOP"):
        _OrderType.from_proto(trading_pb2.ORDER_TYPE_STOP)


def test_members_are_their_names_as_stored() -> None:
    assert Side("BUY") is Side.BUY
    assert Side.BUY.opposite is Side.SELL
    assert _OrderType.LIMIT.to_proto() == trading_pb2.ORDER_TYPE_LIMIT
    assert f"{PositionMode.HEDGING}" == "HEDGING"


def _contract_enums() -> list[Any]:
    """Every top-level and nested enum of every generated module of the SDK."""
    import tradingmesh

    found: list[Any] = []
    for info in pkgutil.walk_packages(tradingmesh.__path__, "tradingmesh."):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(info.name)
        descriptors = list(module.DESCRIPTOR.enum_types_by_name.values())
        pending = list(module.DESCRIPTOR.message_types_by_name.values())
        while pending:
            message = pending.pop()
            descriptors.extend(message.enum_types)
            pending.extend(message.nested_types)
        found.extend(EnumTypeWrapper(descriptor) for descriptor in descriptors)
    return found


def test_every_contract_enums_names_go_to_values_and_back_without_their_prefix() -> None:
    enums = _contract_enums()
    assert len(enums) > 20  # the walk found the contracts
    for enum_type in enums:
        for value in enum_type.values():
            name = enum_name(enum_type, value)
            assert not name.startswith(enum_type.DESCRIPTOR.name.upper())
            assert enum_value(enum_type, name) == value
    assert enum_name(pricing_pb2.DayOfWeek, pricing_pb2.DAY_OF_WEEK_MONDAY) == "MONDAY"
    assert enum_value(errors_pb2.ErrorReason, "NOT_FOUND") == errors_pb2.ERROR_REASON_NOT_FOUND
    with pytest.raises(ValueError, match="SOMEDAY"):
        enum_value(pricing_pb2.DayOfWeek, "SOMEDAY")

"""services/platform/enums.py: contract enums kept by name, one mapping to and from the wire."""

from __future__ import annotations

import pytest

from services.platform.enums import PositionMode, ProtoEnum, Side
from tradingmesh.common.v1 import trading_pb2, types_pb2


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

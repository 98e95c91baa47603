"""The request fingerprint that decides whether a PlaceOrder retry is "the same request"."""

from __future__ import annotations

import pytest

from services.oms.entry.fingerprint import fingerprint
from services.oms.entry.fingerprint import normalized_decimal
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.oms.v1 import oms_internal_service_pb2
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.oms.v1 import position_service_pb2

ACCOUNT = "5f0c6f1e-8a47-4c2b-9a51-3f0f0b7d1a10"


def market(**fields: object) -> order_service_pb2.PlaceOrderRequest:
    values: dict[str, object] = {
        "account_id": ACCOUNT,
        "client_order_id": "c-1",
        "symbol": "EURUSD",
        "side": types_pb2.SIDE_BUY,
        "type": trading_pb2.ORDER_TYPE_MARKET,
        "quantity": "0.10",
    }
    values.update(fields)
    return order_service_pb2.PlaceOrderRequest(**values)  # type: ignore[arg-type]


def test_the_same_request_has_the_same_fingerprint() -> None:
    assert fingerprint(market()) == fingerprint(market())
    assert len(fingerprint(market())) == 64
    assert all(c in "0123456789abcdef" for c in fingerprint(market()))


def test_an_unset_time_in_force_is_the_types_default() -> None:
    ioc = market(time_in_force=trading_pb2.TIME_IN_FORCE_IOC)
    assert fingerprint(market()) == fingerprint(ioc)
    assert fingerprint(market()) != fingerprint(market(time_in_force=trading_pb2.TIME_IN_FORCE_FOK))
    limit = market(type=trading_pb2.ORDER_TYPE_LIMIT, price="1.1")
    gtc = market(
        type=trading_pb2.ORDER_TYPE_LIMIT, price="1.1", time_in_force=trading_pb2.TIME_IN_FORCE_GTC
    )
    assert fingerprint(limit) == fingerprint(gtc)


def test_decimals_are_compared_by_value_not_spelling() -> None:
    assert fingerprint(market(quantity="0.1")) == fingerprint(market(quantity="0.100"))
    assert fingerprint(market(requested_price="1.10000")) == fingerprint(
        market(requested_price="1.1")
    )


@pytest.mark.parametrize(
    "change",
    [
        {"quantity": "0.2"},
        {"side": types_pb2.SIDE_SELL},
        {"symbol": "GBPUSD"},
        {"requested_price": "1.1"},
        {"stop_loss": "1.0"},
        {"client_order_id": "c-2"},
    ],
)
def test_any_other_value_gives_another_fingerprint(change: dict[str, object]) -> None:
    assert fingerprint(market(**change)) != fingerprint(market())


def test_an_unset_optional_price_differs_from_a_set_one() -> None:
    assert fingerprint(market()) != fingerprint(market(requested_price="1.2"))


def test_the_request_kind_is_part_of_the_fingerprint() -> None:
    close = position_service_pb2.ClosePositionRequest(
        account_id=ACCOUNT, position_id=ACCOUNT, client_order_id="c-1"
    )
    force = oms_internal_service_pb2.ForceClosePositionRequest(
        account_id=ACCOUNT, position_id=ACCOUNT, client_order_id="c-1"
    )
    assert fingerprint(close) != fingerprint(force)
    assert fingerprint(close) != fingerprint(market())


def test_decimals_of_a_close_are_normalized_too() -> None:
    def close(quantity: str) -> position_service_pb2.ClosePositionRequest:
        return position_service_pb2.ClosePositionRequest(
            account_id=ACCOUNT, position_id=ACCOUNT, client_order_id="c-1", quantity=quantity
        )

    assert fingerprint(close("1.0")) == fingerprint(close("1"))
    assert fingerprint(close("1.5")) != fingerprint(close("1"))


def test_the_request_given_is_not_changed() -> None:
    request = market(quantity="0.100")
    fingerprint(request)
    assert request.quantity == "0.100"
    assert request.time_in_force == trading_pb2.TIME_IN_FORCE_UNSPECIFIED


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.10", "0.1"), ("100", "100"), ("100.000", "100"), ("0.000", "0"), ("1e3", "1000")],
)
def test_normalized_decimal(text: str, expected: str) -> None:
    assert normalized_decimal(text) == expected


def test_text_that_is_not_a_decimal_is_left_alone() -> None:
    assert normalized_decimal("abc") == "abc"
    assert normalized_decimal("NaN") == "NaN"

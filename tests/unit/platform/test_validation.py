"""Which reason a contract violation gets (ADR 0002), and the violations a request lists."""

from __future__ import annotations

import uuid

import pytest

from services.platform.errors import DomainError
from services.platform.validation import check_request, reason_for_rule, reason_for_violations
from tradingmesh.common.v1 import trading_pb2, types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2

R = ErrorReason
ACCOUNT_ID = str(uuid.uuid4())


@pytest.mark.parametrize(
    ("rule_id", "reason"),
    [
        ("place_order.market_time_in_force", R.ERROR_REASON_UNSUPPORTED_TIME_IN_FORCE),
        ("place_order.stop_time_in_force", R.ERROR_REASON_UNSUPPORTED_TIME_IN_FORCE),
        ("amend_order.limit_time_in_force", R.ERROR_REASON_UNSUPPORTED_TIME_IN_FORCE),
        ("place_order.market_fields", R.ERROR_REASON_INVALID_ORDER_FIELDS),
        ("place_order.requested_price_market_only", R.ERROR_REASON_INVALID_ORDER_FIELDS),
        ("place_order.no_stops_when_closing", R.ERROR_REASON_INVALID_ORDER_FIELDS),
        ("amend_order.has_change", R.ERROR_REASON_INVALID_ORDER_FIELDS),
        ("string.positive_decimal", R.ERROR_REASON_VALIDATION_FAILED),
        ("string.uuid", R.ERROR_REASON_VALIDATION_FAILED),
        ("required", R.ERROR_REASON_VALIDATION_FAILED),
        ("client_order_id.not_reserved", R.ERROR_REASON_VALIDATION_FAILED),
        ("modify_position.has_change", R.ERROR_REASON_VALIDATION_FAILED),
        ("list_orders.open_only_or_statuses", R.ERROR_REASON_VALIDATION_FAILED),
    ],
)
def test_rule_id_decides_the_reason(rule_id: str, reason: ErrorReason.ValueType) -> None:
    assert reason_for_rule(rule_id) == reason


def test_a_field_rule_outranks_order_rules() -> None:
    rule_ids = ["place_order.market_fields", "string.positive_decimal"]

    assert reason_for_violations(rule_ids) == R.ERROR_REASON_VALIDATION_FAILED


def test_time_in_force_outranks_other_order_rules() -> None:
    rule_ids = ["place_order.market_fields", "place_order.market_time_in_force"]

    assert reason_for_violations(rule_ids) == R.ERROR_REASON_UNSUPPORTED_TIME_IN_FORCE


def _market_order(**changes: object) -> order_service_pb2.PlaceOrderRequest:
    fields: dict[str, object] = {
        "account_id": ACCOUNT_ID,
        "client_order_id": "web-0001",
        "symbol": "EURUSD",
        "side": types_pb2.SIDE_BUY,
        "type": trading_pb2.ORDER_TYPE_MARKET,
        "quantity": "0.10",
    }
    fields.update(changes)
    return order_service_pb2.PlaceOrderRequest(**fields)  # type: ignore[arg-type]


def _refusal(request: object) -> DomainError:
    with pytest.raises(DomainError) as raised:
        check_request(request)  # type: ignore[arg-type]
    return raised.value


def test_valid_request_passes() -> None:
    check_request(_market_order())


def test_market_order_with_a_price_is_invalid_order_fields() -> None:
    error = _refusal(_market_order(price="1.08500"))

    assert error.reason == R.ERROR_REASON_INVALID_ORDER_FIELDS
    assert [(v.field, v.reason) for v in error.field_violations] == [
        ("", "place_order.market_fields")
    ]


def test_market_order_good_till_cancelled_is_unsupported_time_in_force() -> None:
    error = _refusal(_market_order(time_in_force=trading_pb2.TIME_IN_FORCE_GTC))

    assert error.reason == R.ERROR_REASON_UNSUPPORTED_TIME_IN_FORCE
    assert [v.reason for v in error.field_violations] == ["place_order.market_time_in_force"]


def test_every_violation_is_listed_with_its_rule_id() -> None:
    error = _refusal(_market_order(quantity="-1", symbol="eurusd", price="1.1"))

    assert error.reason == R.ERROR_REASON_VALIDATION_FAILED
    assert {(v.field, v.reason) for v in error.field_violations} == {
        ("", "place_order.market_fields"),
        ("quantity", "string.positive_decimal"),
        ("symbol", "string.symbol"),
    }


def test_message_names_the_request_and_each_problem() -> None:
    request = pricing_service_pb2.GetQuoteRequest(symbol="EURUSD", account_id="x")

    error = _refusal(request)

    assert error.message == "invalid GetQuoteRequest: account_id: must be a valid UUID"


def test_checking_changes_nothing_in_the_request() -> None:
    request = _market_order(price="1.1", quantity="0")
    before = request.SerializeToString(deterministic=True)

    _refusal(request)

    assert request.SerializeToString(deterministic=True) == before

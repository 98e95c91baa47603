"""Which reason a contract violation gets (ADR 0002), and the violations a request lists."""

from __future__ import annotations

import re
import uuid

import pytest

from services.platform.errors import DomainError
from services.platform.errors import to_status
from services.platform.validation import MAX_VIOLATIONS
from services.platform.validation import check_request
from services.platform.validation import reason_for_rule
from services.platform.validation import reason_for_violations
from tradingmesh.account.v1 import auth_service_pb2
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.notification.v1 import notification_service_pb2
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2
from tradingmesh.reporting.v1 import reporting_service_pb2

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


def test_thousands_of_bad_items_list_a_bounded_number_of_violations() -> None:
    # Found by tests/integration/test_hostile_inputs.py: 3,000 bad symbols made an error whose
    # trailers the edge refused to pass on, and the client saw INTERNAL.
    request = pricing_service_pb2.ListQuotesRequest(account_id=ACCOUNT_ID, symbols=["x"] * 3_000)

    error = _refusal(request)
    _, message, details = to_status(error)

    assert len(error.field_violations) == MAX_VIOLATIONS
    assert re.match(
        r"invalid ListQuotesRequest \(3\d\d\d violations, the first 20 listed\)", message
    )
    assert len(message.encode()) + len(details) < 8_192


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (2**63 - 1, 0),  # far beyond year 9999
        (253_402_300_800, 0),  # 10000-01-01
        (-62_135_596_801, 0),  # before year 1
        (0, -1),
        (0, 1_000_000_000),
    ],
)
def test_a_timestamp_that_is_no_time_is_a_violation_at_any_depth(seconds: int, nanos: int) -> None:
    # Found by tests/integration/test_hostile_inputs.py: handlers' ToDatetime() raised on them
    # (INTERNAL) in StreamNotifications, GetPerformance and ListTradeHistory.
    top = notification_service_pb2.StreamNotificationsRequest()
    top.since_time.seconds, top.since_time.nanos = seconds, nanos
    nested = reporting_service_pb2.ListTradeHistoryRequest(account_id=ACCOUNT_ID)
    nested.time_range.end_time.seconds, nested.time_range.end_time.nanos = seconds, nanos

    assert [(v.field, v.reason) for v in _refusal(top).field_violations] == [
        ("since_time", "timestamp.valid")
    ]
    assert ("time_range.end_time", "timestamp.valid") in {
        (v.field, v.reason) for v in _refusal(nested).field_violations
    }


def test_the_first_and_last_instants_a_timestamp_holds_are_valid() -> None:
    request = reporting_service_pb2.ListTradeHistoryRequest(account_id=ACCOUNT_ID)
    request.time_range.start_time.seconds = -62_135_596_800
    request.time_range.end_time.seconds = 253_402_300_799
    request.time_range.end_time.nanos = 999_999_999

    check_request(request)


def test_a_string_with_nul_is_a_violation_wherever_it_is() -> None:
    # Protobuf strings may hold NUL, PostgreSQL text cannot: stored, it failed the handler's
    # statement (INTERNAL), e.g. a signed-in user's login name or a list's page token.
    login = auth_service_pb2.LoginRequest(username="demo\x00", password="secret")
    quotes = pricing_service_pb2.ListQuotesRequest(
        account_id=ACCOUNT_ID, symbols=["EURUSD", "A\x00"]
    )

    assert [(v.field, v.reason) for v in _refusal(login).field_violations] == [
        ("username", "string.no_nul")
    ]
    assert ("symbols[1]", "string.no_nul") in {
        (v.field, v.reason) for v in _refusal(quotes).field_violations
    }

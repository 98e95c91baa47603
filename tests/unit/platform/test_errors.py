"""The reason -> status table of ADR 0002, and the google.rpc.Status built from a DomainError."""

from __future__ import annotations

from datetime import timedelta

import grpc
import nats.errors
import psycopg
import psycopg_pool
import pytest
import redis.exceptions
from google.rpc import error_details_pb2
from google.rpc import status_pb2

from services.platform.errors import STATUS_BY_REASON
from services.platform.errors import DomainError
from services.platform.errors import dependency_outage
from services.platform.errors import field_error
from services.platform.errors import internal_error
from services.platform.errors import not_found
from services.platform.errors import status_of
from services.platform.errors import to_status
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import FieldViolation
from tradingmesh.errors import parse_status_details

R = ErrorReason
S = grpc.StatusCode


@pytest.mark.parametrize("reason", ErrorReason.values(), ids=ErrorReason.keys())
def test_every_reason_has_a_status(reason: ErrorReason.ValueType) -> None:
    assert reason in STATUS_BY_REASON
    assert status_of(reason) is not S.OK


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        # One row (at least) of each line of the table in ADR 0002.
        (R.ERROR_REASON_VALIDATION_FAILED, S.INVALID_ARGUMENT),
        (R.ERROR_REASON_TOO_MANY_DECIMALS, S.INVALID_ARGUMENT),
        (R.ERROR_REASON_QUANTITY_OUT_OF_RANGE, S.INVALID_ARGUMENT),
        (R.ERROR_REASON_INVALID_ORDER_FIELDS, S.INVALID_ARGUMENT),
        (R.ERROR_REASON_INVALID_STOPS, S.INVALID_ARGUMENT),
        (R.ERROR_REASON_CURRENCY_MISMATCH, S.INVALID_ARGUMENT),
        (R.ERROR_REASON_UNSUPPORTED_TIME_IN_FORCE, S.INVALID_ARGUMENT),
        (R.ERROR_REASON_UNAUTHENTICATED, S.UNAUTHENTICATED),
        (R.ERROR_REASON_INVALID_CREDENTIALS, S.UNAUTHENTICATED),
        (R.ERROR_REASON_REFRESH_TOKEN_REUSED, S.UNAUTHENTICATED),
        (R.ERROR_REASON_UNTRUSTED_CALLER, S.UNAUTHENTICATED),
        (R.ERROR_REASON_WEBHOOK_SIGNATURE_INVALID, S.UNAUTHENTICATED),
        (R.ERROR_REASON_PERMISSION_DENIED, S.PERMISSION_DENIED),
        (R.ERROR_REASON_ACCOUNT_DISABLED, S.PERMISSION_DENIED),
        (R.ERROR_REASON_MAKER_CHECKER_VIOLATION, S.PERMISSION_DENIED),
        (R.ERROR_REASON_WEBHOOK_SOURCE_NOT_ALLOWED, S.PERMISSION_DENIED),
        (R.ERROR_REASON_NOT_FOUND, S.NOT_FOUND),
        (R.ERROR_REASON_UNKNOWN_INSTRUMENT, S.NOT_FOUND),
        (R.ERROR_REASON_DUPLICATE_CLIENT_ORDER_ID, S.ALREADY_EXISTS),
        (R.ERROR_REASON_INVALID_ORDER_STATE, S.FAILED_PRECONDITION),
        (R.ERROR_REASON_INSTRUMENT_HALTED, S.FAILED_PRECONDITION),
        (R.ERROR_REASON_MARKET_CLOSED, S.FAILED_PRECONDITION),
        (R.ERROR_REASON_INSUFFICIENT_FUNDS, S.FAILED_PRECONDITION),
        (R.ERROR_REASON_INSUFFICIENT_MARGIN, S.FAILED_PRECONDITION),
        (R.ERROR_REASON_CONCURRENT_MODIFICATION, S.ABORTED),
        (R.ERROR_REASON_RATE_LIMITED, S.RESOURCE_EXHAUSTED),
        (R.ERROR_REASON_PRICE_UNAVAILABLE, S.UNAVAILABLE),
        (R.ERROR_REASON_LP_UNAVAILABLE, S.UNAVAILABLE),
        (R.ERROR_REASON_DEPENDENCY_UNAVAILABLE, S.UNAVAILABLE),
        (R.ERROR_REASON_UNSPECIFIED, S.INTERNAL),
    ],
)
def test_reason_gets_the_status_of_adr_0002(
    reason: ErrorReason.ValueType, status: grpc.StatusCode
) -> None:
    assert status_of(reason) == status
    assert DomainError(reason, "x").status == status


def test_unknown_instrument_in_order_entry_may_be_invalid_argument() -> None:
    error = DomainError(
        R.ERROR_REASON_UNKNOWN_INSTRUMENT, "no such symbol", status=S.INVALID_ARGUMENT
    )

    assert error.status == S.INVALID_ARGUMENT


def test_a_status_the_table_does_not_allow_for_the_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="INSUFFICIENT_MARGIN is never NOT_FOUND"):
        DomainError(R.ERROR_REASON_INSUFFICIENT_MARGIN, "x", status=S.NOT_FOUND)


def test_status_round_trips_through_the_sdk_decoder() -> None:
    error = DomainError(
        R.ERROR_REASON_TOO_MANY_DECIMALS,
        "quantity has more decimals than the lot step",
        metadata={"symbol": "EURUSD", "lot_step": "0.01"},
        field_violations=[
            ("quantity", "must be a multiple of 0.01"),
            FieldViolation("price", "at most 5 decimals", "instrument.digits"),
        ],
    )

    code, message, details = to_status(error)
    decoded = parse_status_details(code, "", details)

    assert code == S.INVALID_ARGUMENT
    assert message == "quantity has more decimals than the lot step"
    assert decoded.code == S.INVALID_ARGUMENT
    assert decoded.message == message
    assert decoded.reason == R.ERROR_REASON_TOO_MANY_DECIMALS
    assert decoded.metadata == {"symbol": "EURUSD", "lot_step": "0.01"}
    assert decoded.field_violations == (
        FieldViolation("quantity", "must be a multiple of 0.01", ""),
        FieldViolation("price", "at most 5 decimals", "instrument.digits"),
    )


def test_status_has_the_numeric_code_domain_and_reason_string() -> None:
    _, _, details = to_status(DomainError(R.ERROR_REASON_CONCURRENT_MODIFICATION, "retry"))

    status = status_pb2.Status.FromString(details)
    info = error_details_pb2.ErrorInfo()
    assert status.code == S.ABORTED.value[0]
    assert [d.Unpack(info) for d in status.details] == [True]
    assert (info.domain, info.reason) == ("tradingmesh", "CONCURRENT_MODIFICATION")


def test_retry_after_becomes_retry_info() -> None:
    error = DomainError(
        R.ERROR_REASON_RATE_LIMITED, "slow down", retry_after=timedelta(milliseconds=1500)
    )

    status = status_pb2.Status.FromString(to_status(error)[2])

    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in status.details)
    assert retry.retry_delay.ToTimedelta() == timedelta(milliseconds=1500)


def test_no_bad_request_or_retry_info_when_not_given() -> None:
    status = status_pb2.Status.FromString(to_status(DomainError(R.ERROR_REASON_NOT_FOUND, "x"))[2])

    assert len(status.details) == 1


def test_internal_error_says_only_the_request_id() -> None:
    error = internal_error("req-9")

    assert (error.status, error.message) == (S.INTERNAL, "internal error (request id req-9)")
    assert error.metadata == {"request_id": "req-9"}


def test_quotes_of_a_huge_request_value_are_clipped_so_the_error_fits_the_edge() -> None:
    # Found by tests/integration/test_hostile_inputs.py: a KYC webhook naming a 60 KB user id
    # was quoted in the message and the metadata; the edge refused trailers that large and the
    # provider got a 502 telling it to retry.
    huge = "x" * 60_000
    error = DomainError(
        ErrorReason.ERROR_REASON_NOT_FOUND,
        f"user {huge} not found",
        metadata={"user_id": huge},
        field_violations=[(huge, huge)],
    )

    _, message, details = to_status(error)
    decoded = parse_status_details(grpc.StatusCode.NOT_FOUND, message, details)

    assert len(message.encode()) + len(details) < 8_192
    assert message.startswith("user xxx")
    assert decoded.metadata["user_id"].startswith("xxx")


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly"), "PostgreSQL"),
        (psycopg_pool.PoolTimeout("couldn't get a connection after 5.00 sec"), "PostgreSQL"),
        (psycopg.errors.AdminShutdown("terminating connection"), "PostgreSQL"),
        (psycopg.errors.SerializationFailure("could not serialize"), None),  # a race, not away
        (psycopg.errors.UniqueViolation("duplicate key"), None),
        (redis.exceptions.ConnectionError("Connection refused"), "Redis"),
        (nats.errors.ConnectionClosedError(), "NATS"),
        (ValueError("a bug"), None),
    ],
)
def test_dependency_outage_names_the_component_that_is_away(
    error: BaseException, outage: str | None
) -> None:
    assert dependency_outage(error) == outage


def test_dependency_outage_looks_through_the_exceptions_raised_from() -> None:
    outer = RuntimeError("the price cache")
    outer.__cause__ = redis.exceptions.TimeoutError("Timeout reading from socket")
    assert dependency_outage(outer) == "Redis"


def test_not_found_names_the_thing_and_carries_its_key() -> None:
    error = not_found("position", "position_id", "p-1")
    assert error.reason == ErrorReason.ERROR_REASON_NOT_FOUND
    assert error.message == "position p-1 not found"
    assert error.metadata == {"position_id": "p-1"}
    assert to_status(error)[0] == grpc.StatusCode.NOT_FOUND


def test_a_field_error_names_the_field_in_its_violation_and_metadata() -> None:
    plain = field_error(R.ERROR_REASON_VALIDATION_FAILED, "amount", "must not be zero")
    detailed = field_error(
        R.ERROR_REASON_TOO_MANY_DECIMALS,
        "price",
        "has more than 5 decimals",
        "price 1.123456 has more than 5 decimals",
        {"symbol": "EURUSD"},
    )

    assert plain.message == "amount must not be zero"
    assert plain.metadata == {"field": "amount"}
    assert plain.field_violations == (FieldViolation("amount", "must not be zero"),)
    assert detailed.message == "price 1.123456 has more than 5 decimals"
    assert detailed.metadata == {"field": "price", "symbol": "EURUSD"}
    assert detailed.field_violations == (FieldViolation("price", "has more than 5 decimals"),)

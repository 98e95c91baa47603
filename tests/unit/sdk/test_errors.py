"""The SDK's error decoding: ErrorInfo reasons and BadRequest violations from a status."""

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2
from google.rpc import status_pb2

from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import ERROR_DOMAIN
from tradingmesh.errors import parse_status_details
from tradingmesh.errors import reason_from_string
from tradingmesh.errors import reason_string


@pytest.mark.parametrize("reason", ErrorReason.values())
def test_every_reason_maps_to_its_wire_string_and_back(reason: ErrorReason.ValueType) -> None:
    text = reason_string(reason)

    assert not text.startswith("ERROR_REASON_")
    assert reason_from_string(text) == reason


def test_wire_reason_drops_the_enum_prefix() -> None:
    assert reason_string(ErrorReason.ERROR_REASON_INSUFFICIENT_MARGIN) == "INSUFFICIENT_MARGIN"


def test_unknown_reason_from_a_newer_server_is_unspecified() -> None:
    assert reason_from_string("SOMETHING_NEW") == ErrorReason.ERROR_REASON_UNSPECIFIED


def _packed(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def test_status_details_give_reason_metadata_and_field_violations() -> None:
    info = error_details_pb2.ErrorInfo(
        domain=ERROR_DOMAIN, reason="VALIDATION_FAILED", metadata={"request_id": "r-1"}
    )
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field="quantity",
                description="must be greater than zero",
                reason="string.positive_decimal",
            )
        ]
    )
    status = status_pb2.Status(
        code=3, message="invalid order", details=[_packed(info), _packed(bad)]
    )

    details = parse_status_details(
        grpc.StatusCode.INVALID_ARGUMENT, "ignored", status.SerializeToString()
    )

    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.message == "invalid order"
    assert details.reason == ErrorReason.ERROR_REASON_VALIDATION_FAILED
    assert details.metadata == {"request_id": "r-1"}
    assert [(v.field, v.reason) for v in details.field_violations] == [
        ("quantity", "string.positive_decimal")
    ]


def test_error_info_of_another_domain_is_not_taken_as_ours() -> None:
    foreign = error_details_pb2.ErrorInfo(domain="googleapis.com", reason="INSUFFICIENT_MARGIN")
    status = status_pb2.Status(code=9, message="x", details=[_packed(foreign)])

    details = parse_status_details(
        grpc.StatusCode.FAILED_PRECONDITION, "x", status.SerializeToString()
    )

    assert details.reason == ErrorReason.ERROR_REASON_UNSPECIFIED


def test_a_status_without_details_keeps_code_and_message() -> None:
    details = parse_status_details(grpc.StatusCode.UNAVAILABLE, "try later", None)

    assert (details.code, details.message, details.field_violations) == (
        grpc.StatusCode.UNAVAILABLE,
        "try later",
        (),
    )

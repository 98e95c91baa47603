"""What a failed tradingmesh call says: its stable reason and the fields at fault.

Every error the platform returns is a gRPC status whose details (the `grpc-status-details-bin`
trailer) hold a `google.rpc.Status` with a `google.rpc.ErrorInfo` (`domain = "tradingmesh"`,
`reason` = an `ErrorReason` name without its prefix) and, for bad input, a `google.rpc.BadRequest`
with one violation per field. See docs/adr/0002-error-model.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import cast

import grpc
from google.rpc import error_details_pb2
from google.rpc import status_pb2

from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = [
    "ERROR_DOMAIN",
    "STATUS_DETAILS_KEY",
    "ErrorDetails",
    "FieldViolation",
    "details_of",
    "parse_status_details",
    "reason_from_string",
    "reason_string",
]

ERROR_DOMAIN = "tradingmesh"
"""The `ErrorInfo.domain` of every tradingmesh error."""
STATUS_DETAILS_KEY = "grpc-status-details-bin"
"""The trailer that carries the serialized `google.rpc.Status`."""

_PREFIX = "ERROR_REASON_"


def reason_string(reason: ErrorReason.ValueType) -> str:
    """The `ErrorInfo.reason` of an `ErrorReason`, e.g. "INSUFFICIENT_MARGIN"."""
    return ErrorReason.Name(reason).removeprefix(_PREFIX)


def reason_from_string(text: str) -> ErrorReason.ValueType:
    """The `ErrorReason` of an `ErrorInfo.reason`; unknown ones (newer servers) are UNSPECIFIED."""
    try:
        return ErrorReason.Value(_PREFIX + text)
    except ValueError:
        return ErrorReason.ERROR_REASON_UNSPECIFIED


@dataclass(frozen=True)
class FieldViolation:
    """One field that broke the contract, e.g. field="quantity", description="must be ..."."""

    field: str
    description: str
    reason: str = ""


@dataclass(frozen=True)
class ErrorDetails:
    """A failed call, decoded: status, message, stable reason and field violations."""

    code: grpc.StatusCode
    message: str
    reason: ErrorReason.ValueType = ErrorReason.ERROR_REASON_UNSPECIFIED
    metadata: Mapping[str, str] = field(default_factory=dict)
    field_violations: tuple[FieldViolation, ...] = ()


def parse_status_details(
    code: grpc.StatusCode, message: str, details: bytes | None
) -> ErrorDetails:
    """Decodes a serialized `google.rpc.Status` (the `grpc-status-details-bin` trailer)."""
    if not details:
        return ErrorDetails(code=code, message=message)
    status = status_pb2.Status.FromString(details)
    reason: ErrorReason.ValueType = ErrorReason.ERROR_REASON_UNSPECIFIED
    metadata: dict[str, str] = {}
    violations: list[FieldViolation] = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(info) and info.domain == ERROR_DOMAIN:
            reason = reason_from_string(info.reason)
            metadata.update(info.metadata)
        elif detail.Unpack(bad_request):
            violations.extend(
                FieldViolation(v.field, v.description, v.reason)
                for v in bad_request.field_violations
            )
    return ErrorDetails(
        code=code,
        message=status.message or message,
        reason=reason,
        metadata=metadata,
        field_violations=tuple(violations),
    )


def details_of(error: grpc.RpcError) -> ErrorDetails:
    """Decodes the error raised by a stub call (sync `grpc.RpcError` or asyncio `AioRpcError`)."""
    # Sync errors hold (key, value) namedtuples, asyncio errors a Metadata of pairs.
    trailers = cast("Iterable[tuple[str, str | bytes]]", error.trailing_metadata() or ())
    details = next(
        (v for k, v in trailers if k == STATUS_DETAILS_KEY and isinstance(v, bytes)), None
    )
    return parse_status_details(error.code(), error.details() or "", details)

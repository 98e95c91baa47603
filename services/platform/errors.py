"""Domain errors and the one table that turns them into gRPC statuses (ADR 0002).

A handler raises `DomainError(reason, message, ...)`; the error-mapping interceptor answers with
the status of the reason and a `google.rpc.Status` in the `grpc-status-details-bin` trailer:
always an ErrorInfo, a BadRequest when fields are at fault, a RetryInfo when retrying helps.
No handler builds a status by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any
from typing import Final
from typing import NoReturn

import grpc
import grpc.aio
import nats.errors
import psycopg
import redis.exceptions
import sqlalchemy.exc
from google.protobuf import any_pb2
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from google.rpc import status_pb2

from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import ERROR_DOMAIN
from tradingmesh.errors import STATUS_DETAILS_KEY
from tradingmesh.errors import FieldViolation
from tradingmesh.errors import reason_string

__all__ = [
    "STATUS_BY_REASON",
    "DomainError",
    "abort",
    "dependency_outage",
    "field_error",
    "internal_error",
    "not_found",
    "status_of",
    "to_status",
]

_R = ErrorReason
_S = grpc.StatusCode

STATUS_BY_REASON: Final[Mapping[ErrorReason.ValueType, tuple[grpc.StatusCode, ...]]] = (
    MappingProxyType(
        {
            # The status of each reason: the first is the default; a second is the one other
            # status ADR 0002 allows for that reason, which a handler must ask for explicitly.
            _R.ERROR_REASON_UNSPECIFIED: (_S.INTERNAL,),
            # Request and identity.
            _R.ERROR_REASON_VALIDATION_FAILED: (_S.INVALID_ARGUMENT,),
            _R.ERROR_REASON_UNAUTHENTICATED: (_S.UNAUTHENTICATED,),
            _R.ERROR_REASON_INVALID_CREDENTIALS: (_S.UNAUTHENTICATED,),
            _R.ERROR_REASON_REFRESH_TOKEN_REUSED: (_S.UNAUTHENTICATED,),
            _R.ERROR_REASON_PERMISSION_DENIED: (_S.PERMISSION_DENIED,),
            _R.ERROR_REASON_UNTRUSTED_CALLER: (_S.UNAUTHENTICATED,),
            _R.ERROR_REASON_RATE_LIMITED: (_S.RESOURCE_EXHAUSTED,),
            _R.ERROR_REASON_NOT_FOUND: (_S.NOT_FOUND,),
            _R.ERROR_REASON_ACCOUNT_DISABLED: (_S.PERMISSION_DENIED,),
            _R.ERROR_REASON_ALREADY_EXISTS: (_S.ALREADY_EXISTS,),
            _R.ERROR_REASON_IDEMPOTENCY_KEY_REUSED: (_S.ALREADY_EXISTS,),
            _R.ERROR_REASON_INVALID_STATE: (_S.FAILED_PRECONDITION,),
            # Refused by the edge (Envoy): a body, or a path and headers, over its limits.
            _R.ERROR_REASON_REQUEST_TOO_LARGE: (_S.RESOURCE_EXHAUSTED,),
            # Instruments and prices. An unknown symbol is NOT_FOUND on lookups and
            # INVALID_ARGUMENT in order entry, where it is one more bad field of the order.
            _R.ERROR_REASON_UNKNOWN_INSTRUMENT: (_S.NOT_FOUND, _S.INVALID_ARGUMENT),
            _R.ERROR_REASON_INSTRUMENT_HALTED: (_S.FAILED_PRECONDITION,),
            _R.ERROR_REASON_MARKET_CLOSED: (_S.FAILED_PRECONDITION,),
            _R.ERROR_REASON_PRICE_UNAVAILABLE: (_S.UNAVAILABLE,),
            # Order entry.
            _R.ERROR_REASON_DUPLICATE_CLIENT_ORDER_ID: (_S.ALREADY_EXISTS,),
            _R.ERROR_REASON_TOO_MANY_DECIMALS: (_S.INVALID_ARGUMENT,),
            _R.ERROR_REASON_QUANTITY_OUT_OF_RANGE: (_S.INVALID_ARGUMENT,),
            _R.ERROR_REASON_INVALID_ORDER_FIELDS: (_S.INVALID_ARGUMENT,),
            _R.ERROR_REASON_INVALID_STOPS: (_S.INVALID_ARGUMENT,),
            _R.ERROR_REASON_INVALID_ORDER_STATE: (_S.FAILED_PRECONDITION,),
            _R.ERROR_REASON_UNSUPPORTED_TIME_IN_FORCE: (_S.INVALID_ARGUMENT,),
            # Risk. These are usually rejections (an order in state REJECTED, not an RPC
            # error); as errors, e.g. on amend, the account's state or limits refuse the action.
            _R.ERROR_REASON_INSUFFICIENT_MARGIN: (_S.FAILED_PRECONDITION,),
            _R.ERROR_REASON_MAX_ORDER_SIZE_EXCEEDED: (_S.FAILED_PRECONDITION,),
            _R.ERROR_REASON_POSITION_LIMIT_EXCEEDED: (_S.FAILED_PRECONDITION,),
            _R.ERROR_REASON_ACCOUNT_LIMIT_EXCEEDED: (_S.FAILED_PRECONDITION,),
            _R.ERROR_REASON_ACCOUNT_IN_STOP_OUT: (_S.FAILED_PRECONDITION,),
            # Execution. Also usually rejections. A requote lost a race with the market: re-read
            # the price (in the metadata) and retry, as ABORTED means. No liquidity, like no LP
            # session, may pass with time. An LP's refusal or an expiry will not.
            _R.ERROR_REASON_REQUOTE: (_S.ABORTED,),
            _R.ERROR_REASON_NO_LIQUIDITY: (_S.UNAVAILABLE,),
            _R.ERROR_REASON_LP_REJECTED: (_S.FAILED_PRECONDITION,),
            _R.ERROR_REASON_LP_UNAVAILABLE: (_S.UNAVAILABLE,),
            _R.ERROR_REASON_EXPIRED: (_S.FAILED_PRECONDITION,),
            # Money and ledger.
            _R.ERROR_REASON_INSUFFICIENT_FUNDS: (_S.FAILED_PRECONDITION,),
            _R.ERROR_REASON_MAKER_CHECKER_VIOLATION: (_S.PERMISSION_DENIED,),
            _R.ERROR_REASON_CURRENCY_MISMATCH: (_S.INVALID_ARGUMENT,),
            _R.ERROR_REASON_KYC_NOT_APPROVED: (_S.FAILED_PRECONDITION,),
            # Webhooks.
            _R.ERROR_REASON_WEBHOOK_SIGNATURE_INVALID: (_S.UNAUTHENTICATED,),
            _R.ERROR_REASON_WEBHOOK_SOURCE_NOT_ALLOWED: (_S.PERMISSION_DENIED,),
            _R.ERROR_REASON_WEBHOOK_STALE: (_S.INVALID_ARGUMENT,),
            # Platform.
            _R.ERROR_REASON_CONCURRENT_MODIFICATION: (_S.ABORTED,),
            _R.ERROR_REASON_DEPENDENCY_UNAVAILABLE: (_S.UNAVAILABLE,),
            # The edge's deadline passed before the service answered (HTTP 504).
            _R.ERROR_REASON_DEADLINE_EXCEEDED: (_S.DEADLINE_EXCEEDED,),
        }
    )
)


def status_of(reason: ErrorReason.ValueType) -> grpc.StatusCode:
    """The default gRPC status of a reason (ADR 0002)."""
    return STATUS_BY_REASON[reason][0]


class DomainError(Exception):
    """A request the service refuses, with a stable reason; handlers raise it.

    `metadata` is what a client needs to act (decimal strings, ids; never secrets or another
    user's data). `field_violations` name the request fields at fault, as `FieldViolation`s or
    (field, description) pairs. `retry_after` says when a retry may succeed. `status` is only
    for the reasons that ADR 0002 gives two statuses (UNKNOWN_INSTRUMENT in order entry).
    """

    def __init__(
        self,
        reason: ErrorReason.ValueType,
        message: str,
        *,
        metadata: Mapping[str, str] | None = None,
        field_violations: Iterable[FieldViolation | tuple[str, str]] = (),
        retry_after: timedelta | None = None,
        status: grpc.StatusCode | None = None,
    ) -> None:
        super().__init__(message)
        allowed = STATUS_BY_REASON[reason]
        if status is not None and status not in allowed:
            raise ValueError(f"{reason_string(reason)} is never {status.name} (ADR 0002)")
        self.reason = reason
        self.message = message
        self.metadata: Mapping[str, str] = dict(metadata or {})
        self.field_violations = tuple(
            v if isinstance(v, FieldViolation) else FieldViolation(*v) for v in field_violations
        )
        self.retry_after = retry_after
        self.status = status or allowed[0]

    def __repr__(self) -> str:
        return f"DomainError({reason_string(self.reason)}, {self.message!r})"


def not_found(what: str, key: str, value: str) -> DomainError:
    """NOT_FOUND for one thing, in the one form every service uses: "<what> <value> not found"
    with the value under `key` in the metadata (`not_found("position", "position_id", id)`).
    Also the answer for another user's thing (the caller may not learn that it exists)."""
    message = f"{what} {value} not found"
    return DomainError(_R.ERROR_REASON_NOT_FOUND, message, metadata={key: value})


def field_error(
    reason: ErrorReason.ValueType,
    field: str,
    problem: str,
    message: str = "",
    metadata: Mapping[str, str] | None = None,
) -> DomainError:
    """An error in one request field, in the one form every service uses: `problem` as the
    field's violation, `field` in the metadata beside `metadata`, and `message` ("<field>
    <problem>" by default)."""
    return DomainError(
        reason,
        message or f"{field} {problem}",
        metadata={"field": field, **(metadata or {})},
        field_violations=[(field, problem)],
    )


def to_status(error: DomainError) -> tuple[grpc.StatusCode, str, bytes]:
    """The status code, message and serialized `google.rpc.Status` of a domain error."""
    details = [
        _packed(
            error_details_pb2.ErrorInfo(
                domain=ERROR_DOMAIN,
                reason=reason_string(error.reason),
                metadata={
                    key: _clipped(value, _METADATA_CHARS) for key, value in error.metadata.items()
                },
            )
        )
    ]
    if error.field_violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=_clipped(v.field, _METADATA_CHARS),
                    description=_clipped(v.description, _METADATA_CHARS),
                    reason=v.reason,
                )
                for v in error.field_violations
            ]
        )
        details.append(_packed(bad_request))
    if error.retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromTimedelta(error.retry_after)
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    code = error.status
    message = _clipped(error.message, _MESSAGE_CHARS)
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    return code, message, status.SerializeToString()


# Messages and metadata often quote the request (an unknown id, account number or symbol). A
# client's 60 KB "id" quoted twice made trailers larger than the edge passes on: the client got
# a 502 and was told to retry. Quotes are clipped so an error always fits in a few KiB.
_MESSAGE_CHARS: Final = 1024
_METADATA_CHARS: Final = 256


def _clipped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def internal_error(request_id: str | None) -> DomainError:
    """What a client is told about a bug: nothing but the request id to quote to support."""
    suffix = f" (request id {request_id})" if request_id else ""
    return DomainError(
        ErrorReason.ERROR_REASON_UNSPECIFIED,
        f"internal error{suffix}",
        metadata={"request_id": request_id} if request_id else None,
    )


# PostgreSQL's SQLSTATEs of a server going away: connection exceptions (class 08), and the
# server shutting down, crashed or starting (57P01-57P03).
_CONNECTION_STATES: Final = frozenset({"57P01", "57P02", "57P03"})
_REDIS_DOWN: Final = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_NATS_DOWN: Final = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
)


def _outage_of(error: BaseException) -> str | None:
    if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
        return "PostgreSQL"
    if isinstance(error, sqlalchemy.exc.TimeoutError):
        return "PostgreSQL"  # no pooled connection came in time
    if isinstance(error, psycopg.OperationalError):
        state = error.sqlstate  # None: the client's side (connection lost or refused, pool)
        if state is None or state.startswith("08") or state in _CONNECTION_STATES:
            return "PostgreSQL"
    if isinstance(error, _REDIS_DOWN):
        return "Redis"
    if isinstance(error, _NATS_DOWN):
        return "NATS"
    return None


def dependency_outage(error: BaseException) -> str | None:
    """The component whose outage `error` is (PostgreSQL, Redis or NATS gone, refusing, or a
    pool with no connection to give), looking through the exceptions it was raised from; None
    for anything else. A call that fails so is not a bug but the platform's state: the client
    is told UNAVAILABLE / DEPENDENCY_UNAVAILABLE (retry with back-off; an order's retry with its
    client_order_id finds it if it was stored), not INTERNAL (issue #18: PostgreSQL killed under
    load answered a PlaceOrder INTERNAL)."""
    seen: set[int] = set()
    found: BaseException | None = error
    while found is not None and id(found) not in seen:
        seen.add(id(found))
        outage = _outage_of(found)
        if outage is not None:
            return outage
        found = found.__cause__ or found.__context__
    return None


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: DomainError) -> NoReturn:
    """Ends the call with the error's status and details (raises `grpc.aio.AbortError`)."""
    code, message, details = to_status(error)
    await context.abort(code, message, trailing_metadata=((STATUS_DETAILS_KEY, details),))


def _packed(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    # google.rpc ships no type information; its messages are protobuf messages all the same.
    packed.Pack(message)  # type: ignore[arg-type]
    return packed

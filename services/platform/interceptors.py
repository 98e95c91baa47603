"""The server interceptor chain of every service, in the order of ADR 0004.

    request id -> access log -> metrics -> certificate identity -> edge check + identity
        -> validation -> error mapping

The first is the outermost: it sees the call first and its outcome last. Each interceptor wraps
the handler of every call shape (unary and streaming responses alike) with an async context
manager, `around(call)`, that runs before the handler and sees how it ended.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from typing import Final
from typing import TypeAlias
from typing import cast

import grpc
import grpc.aio
from google.protobuf.message import Message
from prometheus_client import CollectorRegistry

from services.platform.errors import DomainError
from services.platform.errors import abort
from services.platform.errors import dependency_outage
from services.platform.errors import internal_error
from services.platform.identity import Caller
from services.platform.identity import current_caller
from services.platform.identity import edge_token_matches
from services.platform.identity import set_caller
from services.platform.metrics import REGISTRY
from services.platform.metrics import rpc_metrics
from services.platform.request_id import REQUEST_ID_HEADER
from services.platform.request_id import accept_request_id
from services.platform.request_id import current_request_id
from services.platform.request_id import set_request_id
from services.platform.secrets import Secret
from services.platform.tls import peer_identity
from services.platform.validation import check_request
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import reason_string

__all__ = [
    "EDGE_EXEMPT_PREFIXES",
    "AccessLogInterceptor",
    "Call",
    "CallInterceptor",
    "CertificateIdentityInterceptor",
    "EdgeIdentityInterceptor",
    "ErrorMappingInterceptor",
    "MetricsInterceptor",
    "RequestIdInterceptor",
    "ValidationInterceptor",
    "server_interceptors",
]

EDGE_EXEMPT_PREFIXES: Final = ("/grpc.health.v1.Health/", "/grpc.reflection.")
"""Methods that need no edge token: probes and tools (grpcurl) call them directly."""
HEALTH_PREFIX: Final = "/grpc.health.v1.Health/"
"""Health answers any certificate of the platform's CA (ADR 0018): it tells nothing but
SERVING, and every client that balances over a service (Envoy, the internal channels) and the
stack's probes watch it."""

# Strings: at run time these grpc classes are not generic; only their type stubs are.
ServicerContext: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
# What grpc.aio calls for a method: `async def`, async generator, or plain `def` (the stubs of
# RpcMethodHandler only describe the synchronous server's behaviours).
_Behaviour: TypeAlias = Callable[[Any, ServicerContext], Any]

_access_log = logging.getLogger("tradingmesh.access")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    """One call as an interceptor sees it."""

    method: str
    """The full method, e.g. "/tradingmesh.pricing.v1.PricingService/GetQuote"."""
    kind: str
    """unary, server_stream, client_stream or bidi_stream."""
    request: Message | None
    """The request; None when the client streams requests."""
    context: ServicerContext

    @property
    def service(self) -> str:
        return self.method.strip("/").partition("/")[0]

    @property
    def name(self) -> str:
        return self.method.rpartition("/")[2]

    def metadata(self, key: str) -> list[str | bytes]:
        """Every value the client sent for `key` (lower case), in order."""
        return [value for k, value in self.context.invocation_metadata() or () if k == key]


class CallInterceptor(grpc.aio.ServerInterceptor, abc.ABC):
    """Runs `around(call)` around the handler of every call it `applies_to`."""

    def applies_to(self, method: str) -> bool:
        return True

    @abc.abstractmethod
    def around(self, call: Call) -> AbstractAsyncContextManager[None]:
        """Entered before the handler; exited when the call ends, with its exception if any."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self.applies_to(method):
            return handler
        return _wrap(handler, method, self.around)


_SHAPES: Final = (
    # (the handler's attribute, Call.kind, one request?, streamed responses?, handler factory)
    ("unary_unary", "unary", True, False, grpc.unary_unary_rpc_method_handler),
    ("unary_stream", "server_stream", True, True, grpc.unary_stream_rpc_method_handler),
    ("stream_unary", "client_stream", False, False, grpc.stream_unary_rpc_method_handler),
    ("stream_stream", "bidi_stream", False, True, grpc.stream_stream_rpc_method_handler),
)


_Around: TypeAlias = Callable[[Call], AbstractAsyncContextManager[None]]


def _wrap(handler: _Handler, method: str, around: _Around) -> _Handler:
    """The handler with `around` around its behaviour; serializers and shape unchanged."""
    shape = next((shape for shape in _SHAPES if getattr(handler, shape[0]) is not None), None)
    if shape is None:
        return handler
    attribute, kind, unary_request, streamed, handler_of = shape
    inner = cast(_Behaviour, getattr(handler, attribute))

    def entered(request: Any, context: ServicerContext) -> AbstractAsyncContextManager[None]:
        return around(Call(method, kind, request if unary_request else None, context))

    make = cast(Callable[..., _Handler], handler_of)
    return make(
        (_streaming if streamed else _answered)(inner, entered),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


_Entered: TypeAlias = Callable[[Any, ServicerContext], AbstractAsyncContextManager[None]]
"""`around` entered for one call of the behaviour (its request, its context)."""


def _answered(inner: _Behaviour, entered: _Entered) -> _Behaviour:
    """A behaviour that answers once (unary or client-streaming) inside `entered`."""

    async def answer(request: Any, context: ServicerContext) -> Any:
        async with entered(request, context):
            return await _resolved(inner(request, context))

    return answer


def _streaming(inner: _Behaviour, entered: _Entered) -> _Behaviour:
    """A streaming behaviour in the style of `inner`: an async generator if it is one, else a
    coroutine that writes with `context.write` (grpc.aio does not mix the two in one call)."""
    if inspect.isasyncgenfunction(inner) or inspect.isgeneratorfunction(inner):

        async def generator(request: Any, context: ServicerContext) -> AsyncIterator[Any]:
            async with entered(request, context):
                async for response in _responses(inner(request, context)):
                    yield response

        return generator

    async def writer(request: Any, context: ServicerContext) -> None:
        async with entered(request, context):
            # Handlers of this style may still return an iterator (e.g. a plain `def`).
            result = await _resolved(inner(request, context))
            if result is not None:
                async for response in _responses(result):
                    await context.write(response)

    return writer


async def _resolved(result: Any) -> Any:
    """Handlers may be `async def` or plain `def`; both are served."""
    return await result if inspect.isawaitable(result) else result


async def _responses(result: Any) -> AsyncIterator[Any]:
    if hasattr(result, "__aiter__"):
        async for response in result:
            yield response
    else:
        for response in result:
            yield response


def _outcome(context: ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    """The status a call ended with, for logs and metrics."""
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    # No status was set: a normal return is OK; an exception that escaped every interceptor is
    # what grpc reports for one, UNKNOWN.
    return grpc.StatusCode.OK if error is None else grpc.StatusCode.UNKNOWN


class RequestIdInterceptor(CallInterceptor):
    """Gives the call a request id (the caller's `x-request-id`, or a new one) and echoes it.

    The id goes back in the initial metadata, so that the client has it whatever the outcome.
    (Handlers therefore do not send initial metadata of their own.)
    """

    @asynccontextmanager
    async def around(self, call: Call) -> AsyncIterator[None]:
        given = call.metadata(REQUEST_ID_HEADER)
        only = given[0] if len(given) == 1 and isinstance(given[0], str) else None
        request_id = accept_request_id(only)
        set_request_id(request_id)
        await call.context.send_initial_metadata(((REQUEST_ID_HEADER, request_id),))
        yield


class _OutcomeInterceptor(CallInterceptor):
    """Acts when a call has ended, on its status code and duration: `ended(call, code, seconds,
    begun)`, where `begun` is what `begin(call)` read as the call started."""

    def begin(self, call: Call) -> Any:
        return None

    @abc.abstractmethod
    def ended(self, call: Call, code: grpc.StatusCode, seconds: float, begun: Any) -> None: ...

    @asynccontextmanager
    async def around(self, call: Call) -> AsyncIterator[None]:
        begun = self.begin(call)
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            yield
        except BaseException as raised:
            error = raised
            raise
        finally:
            code = _outcome(call.context, error)
            self.ended(call, code, time.perf_counter() - started, begun)


class AccessLogInterceptor(_OutcomeInterceptor):
    """Logs one JSON line per call: method, status code, duration and request id."""

    def begin(self, call: Call) -> tuple[str, str | None]:
        # Read now: grpc.aio's context.peer() crashes the process (SIGSEGV in cygrpc) once a
        # call is over, e.g. after a client cancelled its stream.
        return call.context.peer(), peer_identity(call.context)

    def ended(
        self, call: Call, code: grpc.StatusCode, seconds: float, begun: tuple[str, str | None]
    ) -> None:
        peer, certificate = begun
        fields: dict[str, object] = {
            "method": call.method,
            "code": code.name,
            "duration_ms": round(seconds * 1000, 3),
            "peer": peer,
        }
        if certificate is not None:
            fields["peer_certificate"] = certificate
        caller = _caller_or_none()
        if caller is not None and caller.subject:
            fields["subject"] = caller.subject
        _access_log.info("rpc %s %s", call.method, code.name, extra=fields)


class MetricsInterceptor(_OutcomeInterceptor):
    """Counts calls by method and status code, and records how long they took."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self._metrics = rpc_metrics(registry)

    def ended(self, call: Call, code: grpc.StatusCode, seconds: float, begun: Any) -> None:
        labels = (call.service, call.name, call.kind)
        self._metrics.handling_seconds.labels(*labels).observe(seconds)
        self._metrics.handled.labels(*labels, code.name).inc()


class CertificateIdentityInterceptor(CallInterceptor):
    """Refuses a caller whose certificate names an identity the service does not accept
    (`callers.ACCEPTED_CALLERS`): PERMISSION_DENIED, which names both. The TLS handshake has
    already refused a caller without a certificate of the platform's CA. Health is exempt
    (`HEALTH_PREFIX`)."""

    def __init__(self, service: str, accepted: frozenset[str]) -> None:
        self._service = service
        self._accepted = accepted

    def applies_to(self, method: str) -> bool:
        return not method.startswith(HEALTH_PREFIX)

    @asynccontextmanager
    async def around(self, call: Call) -> AsyncIterator[None]:
        identity = peer_identity(call.context)
        if identity not in self._accepted:
            named = (
                "no certificate name" if identity is None else f"the certificate of {identity!r}"
            )
            await abort(
                call.context,
                DomainError(
                    ErrorReason.ERROR_REASON_PERMISSION_DENIED,
                    f"{self._service} does not accept calls from {named}",
                    metadata={"caller": identity or "", "service": self._service},
                ),
            )
        yield


class EdgeIdentityInterceptor(CallInterceptor):
    """Refuses calls that did not come through the edge; exposes the caller to handlers.

    A call must carry the edge token (UNAUTHENTICATED, UNTRUSTED_CALLER otherwise); its identity
    headers then become `current_caller()`. Health and reflection are exempt.
    """

    def __init__(
        self, edge_token: Secret, exempt_prefixes: Sequence[str] = EDGE_EXEMPT_PREFIXES
    ) -> None:
        self._edge_token = edge_token
        self._exempt = tuple(exempt_prefixes)

    def applies_to(self, method: str) -> bool:
        return not method.startswith(self._exempt)

    @asynccontextmanager
    async def around(self, call: Call) -> AsyncIterator[None]:
        metadata: Iterable[tuple[str, str | bytes]] = call.context.invocation_metadata() or ()
        caller: Caller | None = None
        if edge_token_matches(metadata, self._edge_token):
            try:
                caller = Caller.from_metadata(metadata, current_request_id() or "")
            except ValueError:
                caller = None
        if caller is None:
            await abort(
                call.context,
                DomainError(
                    ErrorReason.ERROR_REASON_UNTRUSTED_CALLER,
                    "the call did not come through the platform's edge",
                ),
            )
        set_caller(caller)
        yield


class ValidationInterceptor(CallInterceptor):
    """Checks the request against its contract's rules before the handler sees it."""

    def __init__(self, exempt_prefixes: Sequence[str] = EDGE_EXEMPT_PREFIXES) -> None:
        # Health and reflection are not tradingmesh contracts: they have no rules to check.
        self._exempt = tuple(exempt_prefixes)

    def applies_to(self, method: str) -> bool:
        return not method.startswith(self._exempt)

    @asynccontextmanager
    async def around(self, call: Call) -> AsyncIterator[None]:
        if call.request is None:
            # tradingmesh contracts have no client-streaming RPCs (ADR 0001); rather than serve
            # unchecked requests, such a method is refused.
            await call.context.abort(
                grpc.StatusCode.UNIMPLEMENTED, "client-streaming RPCs are not served"
            )
        try:
            check_request(call.request)
        except DomainError as invalid:
            await abort(call.context, invalid)
        except Exception:
            _log.exception("request validation failed to run", extra={"method": call.method})
            await abort(call.context, internal_error(current_request_id()))
        yield


class ErrorMappingInterceptor(CallInterceptor):
    """Turns what a handler raises into a status with details (ADR 0002).

    A `DomainError` becomes its reason's status with ErrorInfo (and BadRequest, RetryInfo).
    `NotImplementedError` (the generated servicer's default) becomes UNIMPLEMENTED. A failure that
    is the outage of PostgreSQL, Redis or NATS (`errors.dependency_outage`) is the platform's
    state, not a bug: UNAVAILABLE / DEPENDENCY_UNAVAILABLE with RetryInfo, logged as a warning.
    Anything else is a bug: INTERNAL with a generic message and the request id, and the exception
    is logged.
    Refusals are counted by reason (`tradingmesh_rpc_refusals_total`).
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self._refusals = rpc_metrics(registry).refusals

    @asynccontextmanager
    async def around(self, call: Call) -> AsyncIterator[None]:
        try:
            yield
        except DomainError as error:
            self._refusals.labels(call.service, call.name, reason_string(error.reason)).inc()
            await abort(call.context, error)
        except grpc.aio.AbortError:
            raise  # the handler ended the call itself, with a status of its choice
        except NotImplementedError:
            await call.context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{call.name} is not served")
        except Exception as error:
            outage = dependency_outage(error)
            if outage is None:
                _log.exception("unhandled exception in a handler", extra={"method": call.method})
                await abort(call.context, internal_error(current_request_id()))
            _log.warning(
                "a call failed: a dependency is unavailable",
                extra={"method": call.method, "dependency": outage, "error": str(error)[:300]},
            )
            refusal = DomainError(
                ErrorReason.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
                f"{outage} is unavailable: retry with back-off",
                metadata={"dependency": outage},
                retry_after=timedelta(seconds=1),
            )
            self._refusals.labels(call.service, call.name, reason_string(refusal.reason)).inc()
            await abort(call.context, refusal)


def server_interceptors(
    edge_token: Secret,
    *,
    registry: CollectorRegistry = REGISTRY,
    callers: tuple[str, frozenset[str]] | None = None,
) -> list[grpc.aio.ServerInterceptor]:
    """The chain of ADR 0004, outermost first, as `grpc.aio.server(interceptors=...)` takes it.

    `callers`: (the service, the identities it accepts) for a server with mutual TLS; None for a
    plaintext one (unit tests), whose calls carry no certificate to check."""
    identity: list[grpc.aio.ServerInterceptor] = (
        [] if callers is None else [CertificateIdentityInterceptor(*callers)]
    )
    return [
        RequestIdInterceptor(),
        AccessLogInterceptor(),
        MetricsInterceptor(registry),
        *identity,
        EdgeIdentityInterceptor(edge_token),
        ValidationInterceptor(),
        ErrorMappingInterceptor(registry),
    ]


def _caller_or_none() -> Caller | None:
    try:
        return current_caller()
    except LookupError:
        return None

"""Calls from one service to another (e.g. oms -> risk), over mutual TLS, carrying the edge
token too.

The callee accepts a call only from a certificate it lists (`callers.py`, ADR 0018) and with
the edge token (ADR 0004); `internal_channel` presents the process's own certificate, checks that
the callee's names the callee, and adds the token to every call, with the `x-request-id` of the
call being served so that one request can be followed across services. The caller's identity is
not forwarded: the calling service acts on its own behalf and passes what the callee needs (e.g.
the account id) in the request.

A certificate is presented when a connection is made: after a renewal, `RenewingChannel` makes
new calls on a new channel with the new certificate, while calls and streams already started
finish on the old one, which is closed when its last call ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any
from typing import Self

import grpc
import grpc.aio

from services.platform.callers import accepted_callers
from services.platform.certificates import CertificateSource
from services.platform.certificates import Issued
from services.platform.certificates import own_certificate
from services.platform.identity import EDGE_TOKEN_HEADER
from services.platform.request_id import REQUEST_ID_HEADER
from services.platform.request_id import current_request_id
from services.platform.secrets import Secret
from services.platform.settings import Address
from services.platform.tls import channel_credentials
from services.platform.tls import target_name_options

__all__ = ["RenewingChannel", "check_target", "instances_of", "internal_channel"]

_log = logging.getLogger(__name__)

# A target listing several instances of a service (`ipv4:127.0.0.1:a,127.0.0.1:b`, ADR 0017):
# calls go round robin over the instances whose standard Health/Watch says SERVING, so one that
# stops or dies gets no call. A channel to one of several instances (`health_checked`,
# `affinity.AccountAffineChannels`) uses it too: its state is READY only while that instance
# serves.
_BALANCED_CONFIG = json.dumps(
    {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}
)


class _InternalCallMetadata:
    def __init__(self, edge_token: Secret) -> None:
        self._edge_token = edge_token

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata[EDGE_TOKEN_HEADER] = self._edge_token.reveal()
        request_id = current_request_id()
        if request_id is not None and metadata.get(REQUEST_ID_HEADER) is None:
            metadata[REQUEST_ID_HEADER] = request_id
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


# One object per call shape: grpc.aio files an interceptor under the FIRST shape it implements
# only (an `elif` chain), so one class implementing both left server-streaming calls without the
# edge token.
class _UnaryUnaryMetadata(_InternalCallMetadata, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStreamMetadata(_InternalCallMetadata, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


def _metadata_interceptors(edge_token: Secret) -> list[grpc.aio.ClientInterceptor]:
    return [_UnaryUnaryMetadata(edge_token), _UnaryStreamMetadata(edge_token)]


# gRPC's default reconnect back-off (1 s, x1.6 up to 120 s) kept the OMS refusing orders for
# ~9 s after risk was serving again (issue #18). Between services on one host a connection
# attempt costs next to nothing: try again within 200 ms (+-20 % jitter), so that a call made
# with `wait_for_ready` and a deadline of 300 ms (the pre-trade check) sees the callee as soon as
# it serves.
RECONNECT_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 200),
)


# INT_MAX, which gRPC takes as "no idle timeout": the channel never goes idle, so its state
# follows its instance without calls (by default a channel goes idle after 30 minutes without
# calls, and reports IDLE until the next call connects it).
_NEVER_IDLE_MS = 2**31 - 1


def instances_of(target: str) -> list[str]:
    """The `host:port` of each instance a target lists: `host:port`, or `ipv4:host:port,...`."""
    return target.removeprefix("ipv4:").split(",") if "," in target else [target]


def check_target(text: str) -> str:
    """`text` if it is a target `internal_channel` takes: host:port, or `ipv4:host:port,...`;
    ValueError otherwise."""
    for address in instances_of(text):
        Address.parse(address)
    return text


def internal_channel(
    target: str,
    edge_token: Secret,
    *,
    callee: str,
    certificate: CertificateSource | None = None,
    plaintext: bool = False,
    health_checked: bool = False,
    stay_connected: bool = False,
) -> grpc.aio.Channel:
    """A channel to the service `callee` at `target` (host:port, or every instance of it:
    `ipv4:host:port,host:port`, balanced) whose calls carry the edge token.

    Mutual TLS with `certificate` (default: the process's own, `own_certificate()`), renewals
    included (`RenewingChannel`); the server's certificate must name `callee`. `plaintext`: no
    TLS, for unit tests against a plaintext server only. Reconnects within 200 ms of losing its
    peer (`RECONNECT_OPTIONS`). `health_checked`: a single host:port is health-checked as a
    balanced target is (READY only while it serves); `stay_connected`: the channel never goes
    idle. Close it on shutdown.
    """
    accepted_callers(callee)  # a service of the platform (KeyError otherwise)
    options: list[tuple[str, Any]] = list(RECONNECT_OPTIONS)
    if "," in target or health_checked:
        options.append(("grpc.service_config", _BALANCED_CONFIG))
    if stay_connected:
        options.append(("grpc.client_idle_timeout_ms", _NEVER_IDLE_MS))
    interceptors = _metadata_interceptors(edge_token)
    if plaintext:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    options.extend(target_name_options(callee))

    def make(issued: Issued) -> grpc.aio.Channel:
        channel = grpc.aio.secure_channel(
            target, channel_credentials(issued), options=options, interceptors=interceptors
        )
        if stay_connected:
            channel.get_state(try_to_connect=True)
        return channel

    return RenewingChannel(make, certificate or own_certificate(), name=f"{callee} {target}")


class _Generation:
    """One channel of a `RenewingChannel`, and the calls started on it that have not ended."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.active = 0
        self.retired = False
        self._closing: asyncio.Task[None] | None = None
        self._callables: dict[tuple[str, str, int, int], Any] = {}

    def callable(self, kind: str, method: str, serializer: Any, deserializer: Any) -> Any:
        key = (kind, method, id(serializer), id(deserializer))
        found = self._callables.get(key)
        if found is None:
            make = getattr(self.channel, kind)
            found = make(method, request_serializer=serializer, response_deserializer=deserializer)
            self._callables[key] = found
        return found

    def started(self, call: Any) -> Any:
        self.active += 1
        call.add_done_callback(self._ended)
        return call

    def _ended(self, _call: Any) -> None:
        self.active -= 1
        self.close_if_idle()

    def retire(self) -> None:
        self.retired = True
        self.close_if_idle()

    def close_if_idle(self) -> None:
        if self.retired and self.active <= 0 and self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self.channel.close())


class _Delegating:
    """A multi-callable of a `RenewingChannel`: each call goes to the channel current when it
    starts, and ends on that channel."""

    def __init__(
        self,
        owner: RenewingChannel,
        kind: str,
        method: str,
        serializer: Any,
        deserializer: Any,
    ) -> None:
        self._owner = owner
        self._args = (kind, method, serializer, deserializer)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        generation = self._owner.current_generation
        return generation.started(generation.callable(*self._args)(*args, **kwargs))


class RenewingChannel(grpc.aio.Channel):
    """A channel that presents the current certificate of `certificate`: after each renewal it
    makes a new channel with `make(new)`, connects it, and sends new calls to it once it is
    connected (or after `switch_after` seconds, e.g. when the callee is down). Calls and streams
    started before finish on the old channel, which is closed when its last call has ended.
    Stubs made once on it stay valid.

    Renewals arrive on the event loop's thread (`CertificateSource.renew`)."""

    def __init__(
        self,
        make: Callable[[Issued], grpc.aio.Channel],
        certificate: CertificateSource,
        *,
        name: str = "",
        switch_after: float = 5.0,
    ) -> None:
        self._make = make
        self._name = name
        self._switch_after = switch_after
        self._current = _Generation(make(certificate.current))
        self._pending: _Generation | None = None
        self._switching: asyncio.Task[None] | None = None
        self._closed = False
        self.switches = 0
        """How many times new calls moved to a renewed certificate's channel."""
        certificate.subscribe(self._renewed)

    @property
    def current_generation(self) -> _Generation:
        return self._current

    def _renewed(self, issued: Issued) -> None:
        if self._closed:
            return
        if self._pending is not None:  # renewed again before the last one was connected
            self._pending.retire()
        if self._switching is not None:
            self._switching.cancel()
        self._pending = _Generation(self._make(issued))
        self._switching = asyncio.get_running_loop().create_task(self._switch(self._pending))

    async def _switch(self, new: _Generation) -> None:
        try:
            await asyncio.wait_for(new.channel.channel_ready(), self._switch_after)
        except TimeoutError:
            _log.info("renewed channel not connected yet; switching", extra={"to": self._name})
        if self._closed or self._pending is not new:
            return
        old, self._current, self._pending = self._current, new, None
        self.switches += 1
        old.retire()
        _log.info(
            "internal channel presents the renewed certificate",
            extra={"to": self._name, "calls_ending_on_the_old_one": old.active},
        )

    async def close(self, grace: float | None = None) -> None:
        self._closed = True
        if self._switching is not None:
            self._switching.cancel()
        channels = [self._current.channel]
        if self._pending is not None:
            channels.append(self._pending.channel)
        for channel in channels:
            await channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._current.channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._current.channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._current.channel.channel_ready()

    def unary_unary(  # serializers of any message type
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        **_ignored: Any,  # generated stubs pass `_registered_method`
    ) -> Any:
        return _Delegating(self, "unary_unary", method, request_serializer, response_deserializer)

    def unary_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        **_ignored: Any,
    ) -> Any:
        return _Delegating(self, "unary_stream", method, request_serializer, response_deserializer)

    def stream_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        **_ignored: Any,
    ) -> Any:
        return _Delegating(self, "stream_unary", method, request_serializer, response_deserializer)

    def stream_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        **_ignored: Any,
    ) -> Any:
        return _Delegating(self, "stream_stream", method, request_serializer, response_deserializer)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.close()

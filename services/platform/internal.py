"""Calls from one service to another (e.g. oms -> risk), which must carry the edge token too.

The callee's edge check accepts a call only with the edge token (ADR 0004); `internal_channel`
adds it to every call, with the `x-request-id` of the call being served so that one request can
be followed across services. The caller's identity is not forwarded: the calling service acts on
its own behalf and passes what the callee needs (e.g. the account id) in the request.
"""

from __future__ import annotations

import json
from typing import Any

import grpc.aio

from services.platform.identity import EDGE_TOKEN_HEADER
from services.platform.request_id import REQUEST_ID_HEADER, current_request_id
from services.platform.secrets import Secret
from services.platform.settings import Address

__all__ = ["check_target", "instances_of", "internal_channel"]

# A target listing several instances of a service (`ipv4:127.0.0.1:a,127.0.0.1:b`, ADR 0017):
# calls go round robin over the instances whose standard Health/Watch says SERVING, so one that
# stops or dies gets no call. A channel to one of several instances (`health_checked`,
# `affinity.AccountAffineChannels`) uses it too: its state is READY only while that instance
# serves.
_BALANCED_CONFIG = json.dumps(
    {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}
)


class _InternalCallMetadata(
    grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor
):
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

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


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
    health_checked: bool = False,
    stay_connected: bool = False,
) -> grpc.aio.Channel:
    """A channel to another service at `target` (host:port, or every instance of it:
    `ipv4:host:port,host:port`, balanced) whose calls carry the edge token.

    Plain-text, as between services and Envoy on one host (ADR 0004); reconnects within 200 ms
    of losing its peer (`RECONNECT_OPTIONS`). `health_checked`: a single host:port is
    health-checked as a balanced target is (READY only while it serves); `stay_connected`: the
    channel never goes idle. Close it on shutdown.
    """
    options: list[tuple[str, Any]] = list(RECONNECT_OPTIONS)
    if "," in target or health_checked:
        options.append(("grpc.service_config", _BALANCED_CONFIG))
    if stay_connected:
        options.append(("grpc.client_idle_timeout_ms", _NEVER_IDLE_MS))
    return grpc.aio.insecure_channel(
        target, options=options, interceptors=[_InternalCallMetadata(edge_token)]
    )

"""Prometheus metrics: the registry, the per-RPC metrics, and the `/metrics` endpoint.

A service's own metrics go in the default registry (`prometheus_client.Counter(...)` as usual);
the server exposes it on `TM_METRICS_ADDR` (ADR 0004).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Histogram

from services.platform.settings import Address

__all__ = ["REGISTRY", "MetricsServer", "RpcMetrics", "rpc_metrics", "start_metrics_server"]

REGISTRY: CollectorRegistry = prometheus_client.REGISTRY
"""The process's registry: the one `/metrics` serves unless told otherwise."""


@dataclass(frozen=True)
class RpcMetrics:
    """What the metrics interceptor records for every call, named as other gRPC stacks do."""

    handled: Counter
    """grpc_server_handled_total{grpc_service, grpc_method, grpc_type, grpc_code}."""
    handling_seconds: Histogram
    """grpc_server_handling_seconds{grpc_service, grpc_method, grpc_type}: a unary call's
    latency, or a stream's lifetime."""
    refusals: Counter
    """tradingmesh_rpc_refusals_total{grpc_service, grpc_method, reason}: calls answered with
    a domain error, by its stable reason (ADR 0002), e.g. INSUFFICIENT_MARGIN."""


@functools.cache
def rpc_metrics(registry: CollectorRegistry) -> RpcMetrics:
    """The RPC metrics in `registry`, created once per registry (Prometheus refuses twins)."""
    labels = ("grpc_service", "grpc_method", "grpc_type")
    return RpcMetrics(
        handled=Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code.",
            (*labels, "grpc_code"),
            registry=registry,
        ),
        handling_seconds=Histogram(
            "grpc_server_handling_seconds",
            "Time from the start of an RPC to its status, in seconds.",
            labels,
            registry=registry,
        ),
        refusals=Counter(
            "tradingmesh_rpc_refusals",
            "Calls answered with a domain error, by its stable reason.",
            ("grpc_service", "grpc_method", "reason"),
            registry=registry,
        ),
    )


class MetricsServer:
    """The `/metrics` HTTP endpoint, served from a daemon thread."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        return self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(addr: Address, registry: CollectorRegistry = REGISTRY) -> MetricsServer:
    """Serves `registry` in the Prometheus text format on http://addr/metrics."""
    server, thread = prometheus_client.start_http_server(
        addr.port, addr=addr.bare_host, registry=registry
    )
    return MetricsServer(server, thread)

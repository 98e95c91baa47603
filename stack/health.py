"""Health probes (each bounded by a short timeout) and the wait for a set of components."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path

import grpc

# grpcio-health-checking ships .pyi files but no py.typed marker.
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]

from stack.operator_tls import operator_channel
from stack.process import START_MARKER

PROBE_TIMEOUT = 1.0


class ComponentFailedError(RuntimeError):
    """A component exited or never became healthy."""


def http_ok(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """True for a 2xx answer."""
    # Only loopback URLs built by the stack reach here; no proxy may intercept them.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def grpc_serving(address: str, service: str, tls_dir: Path, timeout: float = PROBE_TIMEOUT) -> bool:
    """The standard gRPC health service of `service` at `address` reports the server ("") as
    SERVING, asked over mutual TLS with the operator's certificate from `tls_dir` (ADR 0018)."""
    try:
        channel = operator_channel(tls_dir, address, service)
    except OSError:  # the operator's files are not written yet
        return False
    with channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        try:
            response = check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines the latest start of a component wrote (logs are appended across starts)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    latest = text.rsplit(START_MARKER, 1)[-1]
    return "\n".join(latest.splitlines()[1:][-lines:]) or "(nothing logged yet)"


def wait_healthy(
    probes: Mapping[str, Callable[[], bool]],
    alive: Mapping[str, Callable[[], bool]],
    logs: Mapping[str, Path],
    deadline: float,
    on_healthy: Callable[[str], None] = lambda _name: None,
) -> None:
    """Poll until every probe passes; fail fast when a process exits, or at `deadline`."""
    pending = dict(probes)
    interval = 0.05
    while pending:
        for name, probe in list(pending.items()):
            if not alive[name]():
                raise ComponentFailedError(
                    f"{name} exited during start; last lines of {logs[name]}:\n"
                    f"{log_tail(logs[name])}"
                )
            if probe():
                del pending[name]
                on_healthy(name)
        if not pending:
            return
        if time.monotonic() >= deadline:
            names = ", ".join(sorted(pending))
            details = "\n".join(f"--- {n}: {logs[n]}\n{log_tail(logs[n], 8)}" for n in pending)
            raise ComponentFailedError(f"not healthy in time: {names}\n{details}")
        # Quick at first (most servers are up in well under a second), then gentler: probing six
        # starting Python services too eagerly takes CPU from them on a 2-core machine.
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)

"""The one place that starts a service's gRPC server and stops it gracefully (ADR 0004).

A service describes itself with a `ServiceSpec` and its `__main__` calls `run(build, settings)`:
read the platform's settings and the service's own, configure logging, log in to Vault, read the
edge token, build the spec, serve until SIGTERM/SIGINT. Its `main.py` builds the spec with a
`runtime.Runtime` (the parts it starts and stops) and `Registration.of` its servicers.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Generic
from typing import NoReturn
from typing import TypeVar
from typing import overload

import grpc
import grpc.aio
from google.protobuf import descriptor_pool
from grpc_health.v1 import _async as health_async  # type: ignore[import-untyped]  # no type information shipped
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc
from prometheus_client import CollectorRegistry

from services.platform.callers import accepted_callers
from services.platform.certificates import CertificateSource
from services.platform.certificates import set_own_certificate
from services.platform.interceptors import server_interceptors
from services.platform.logging import configure_logging
from services.platform.metrics import REGISTRY
from services.platform.metrics import start_metrics_server
from services.platform.reflection import add_reflection
from services.platform.secrets import EDGE_PATH
from services.platform.secrets import Secret
from services.platform.secrets import Vault
from services.platform.secrets import VaultError
from services.platform.settings import Settings
from services.platform.settings import SettingsError
from services.platform.tls import server_credentials

__all__ = [
    "Hook",
    "Registration",
    "RunningServer",
    "ServiceSpec",
    "connect_vault",
    "run",
    "serve",
    "start_server",
]

_S = TypeVar("_S")
_C = TypeVar("_C")
Hook = Callable[[], Awaitable[None]]
"""An async function run when the service starts or stops."""

_log = logging.getLogger(__name__)

_SERVER_OPTIONS: Sequence[tuple[str, Any]] = (
    # Without this, Linux lets a second process bind the same port and share the traffic
    # silently; a port clash must fail the start instead.
    ("grpc.so_reuseport", 0),
    # Envoy keeps idle upstream connections alive with pings; do not treat them as abuse.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
)


@dataclass(frozen=True)
class Registration(Generic[_S]):
    """One gRPC service of the process: the generated `add_*_to_server`, the servicer, and the
    service's full name, e.g. "tradingmesh.oms.v1.OrderService" (for health and reflection)."""

    add_to_server: Callable[[_S, grpc.aio.Server], None]
    servicer: _S
    service_name: str

    @classmethod
    def of(cls, servicer: _S) -> Registration[_S]:
        """The registration of `servicer`, read from the generated `<Name>Servicer` class it
        implements: its module's `add_<Name>Servicer_to_server`, and `<Name>`'s full name from
        the descriptor of the `_pb2` module beside it."""
        for base in type(servicer).__mro__:
            generated = sys.modules[base.__module__]
            add_to_server = getattr(generated, f"add_{base.__name__}_to_server", None)
            if base.__module__.endswith("_pb2_grpc") and add_to_server is not None:
                messages = importlib.import_module(base.__module__.removesuffix("_grpc"))
                service = messages.DESCRIPTOR.services_by_name[base.__name__[: -len("Servicer")]]
                return cls(add_to_server, servicer, service.full_name)
        raise TypeError(f"{type(servicer).__name__} implements no generated gRPC servicer")


@dataclass(frozen=True)
class ServiceSpec:
    """What a service process serves, and what it opens before and closes after serving."""

    name: str
    registrations: Sequence[Registration[Any]]
    on_start: Sequence[Hook] = field(default=())
    """Run in order before the server accepts calls (connect, ensure streams, warm caches)."""
    on_stop: Sequence[Hook] = field(default=())
    """Run in order after the server stopped (close pools and connections); each runs even if
    another failed."""
    on_serving: Sequence[Callable[[RunningServer], Awaitable[None]]] = field(default=())
    """Run once the server accepts calls, with it (e.g. to report extra health entries)."""

    @property
    def service_names(self) -> list[str]:
        return [registration.service_name for registration in self.registrations]


@dataclass
class RunningServer:
    """A started gRPC server with its health service."""

    server: grpc.aio.Server
    health: Any  # grpc_health.v1._async.HealthServicer (untyped)
    port: int

    async def stop(self, grace: float) -> None:
        """Health NOT_SERVING first, so that probes and Envoy stop sending; then in-flight
        calls get `grace` seconds before they are cancelled."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_server(
    spec: ServiceSpec,
    address: str,
    edge_token: Secret,
    *,
    certificate: CertificateSource | None,
    registry: CollectorRegistry = REGISTRY,
) -> RunningServer:
    """Builds the server (interceptors, servicers, health, reflection), binds and starts it.

    `address` is host:port; port 0 picks a free port (see `RunningServer.port`).
    `certificate`: the process's own; the port then requires a client certificate from the
    platform CA whose name the certificate's service accepts (`callers.py`, ADR 0018) and serves the
    certificate's renewals from the next handshake on. None serves plaintext, for unit tests
    only: `run` always serves TLS.
    """
    pool = descriptor_pool.Default()
    for name in spec.service_names:
        try:
            pool.FindServiceByName(name)
        except KeyError:
            raise ValueError(f"{name} is not a known gRPC service (check the name)") from None
    callers = None
    if certificate is not None:  # a stream worker's identity is its service's: `pricing`
        callers = (certificate.identity, accepted_callers(certificate.identity))
    server = grpc.aio.server(
        interceptors=server_interceptors(edge_token, registry=registry, callers=callers),
        options=_SERVER_OPTIONS,
    )
    for registration in spec.registrations:
        registration.add_to_server(registration.servicer, server)
    health_servicer = health_async.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    add_reflection(server, spec.service_names, edge_token)
    if certificate is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, server_credentials(certificate))
    await server.start()
    for name in ["", *spec.service_names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, health_servicer, port)


async def serve(
    spec: ServiceSpec,
    settings: Settings,
    edge_token: Secret,
    *,
    certificate: CertificateSource | None,
    grace: float = 10.0,
    registry: CollectorRegistry = REGISTRY,
) -> None:
    """Serves `spec` on `settings.grpc_addr` (and /metrics) until SIGTERM or SIGINT, with mutual
    TLS from `certificate` (None: plaintext, unit tests only; see `start_server`).

    Then: health NOT_SERVING, no new calls, `grace` seconds for in-flight ones, the `on_stop`
    hooks, and return.
    """
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stopping.set)
    metrics = start_metrics_server(settings.metrics_addr, registry)
    try:
        for hook in spec.on_start:
            await hook()
        running = await start_server(
            spec, str(settings.grpc_addr), edge_token, certificate=certificate, registry=registry
        )
        for serving_hook in spec.on_serving:
            await serving_hook(running)
        _log.info(
            "serving",
            extra={
                "grpc_addr": str(settings.grpc_addr),
                "metrics_addr": str(settings.metrics_addr),
                "services": spec.service_names,
            },
        )
        try:
            await stopping.wait()
        finally:
            _log.info("stopping", extra={"grace_seconds": grace})
            await running.stop(grace)
    finally:
        for hook in spec.on_stop:
            try:
                await hook()
            except Exception:
                _log.exception("a stop hook failed", extra={"hook": getattr(hook, "__name__", "")})
        await asyncio.to_thread(metrics.close)
        for signum in signals:
            loop.remove_signal_handler(signum)
        _log.info("stopped")


def connect_vault(settings: Settings) -> Vault:
    """Logs in to Vault with the token, or with AppRole, that the settings give."""
    if settings.vault_token is not None:
        return Vault.with_token(settings.vault_addr, settings.vault_token)
    if settings.vault_role_id is None or settings.vault_secret_id is None:
        # Settings.from_env guarantees one login method; a hand-built Settings may not.
        raise VaultError("vault: no TM_VAULT_TOKEN and no AppRole credentials")
    return Vault.with_approle(settings.vault_addr, settings.vault_role_id, settings.vault_secret_id)


@overload
def run(build: Callable[[Settings, Vault], ServiceSpec]) -> NoReturn: ...


@overload
def run(
    build: Callable[[Settings, Vault, _C], ServiceSpec],
    service_settings: Callable[[Mapping[str, str]], _C],
) -> NoReturn: ...


def run(
    build: Callable[..., ServiceSpec],
    service_settings: Callable[[Mapping[str, str]], object] | None = None,
) -> NoReturn:
    """The `main()` of a service: `python -m services.<name>` calls it and exits with its code.

    `service_settings` reads the service's own variables (raising `SettingsError`, e.g. through
    an `EnvReader`) together with the platform's, before anything connects; `build` gets them
    after the settings and the Vault client. Exits 2 with one line on stderr naming every bad
    variable, the platform's and the service's; 1 when Vault fails or serving fails. `build`
    runs inside the event loop, so it may create asyncio objects.
    """
    try:
        settings, own = _read_settings(service_settings)
    except SettingsError as error:
        _fail(str(error), 2)
    configure_logging(settings.service, settings.log_level, instance=settings.instance_name)
    try:
        vault = connect_vault(settings)
        (edge_token,) = vault.read_keys(EDGE_PATH, "token")
        certificate = CertificateSource(vault, settings.service, settings.tls_cert_ttl)
    except VaultError as error:
        _fail(str(error), 1)
    set_own_certificate(certificate)

    async def main() -> None:
        spec = build(settings, vault) if service_settings is None else build(settings, vault, own)
        renewals = [
            asyncio.create_task(vault.renew_forever(), name="vault-token-renewal"),
            asyncio.create_task(certificate.renew_forever(), name="certificate-renewal"),
        ]
        try:
            await serve(spec, settings, edge_token, certificate=certificate)
        finally:
            for renewal in renewals:
                renewal.cancel()

    try:
        asyncio.run(main())
    except Exception:
        _log.exception("the service failed")
        sys.exit(1)
    sys.exit(0)


def _read_settings(
    service_settings: Callable[[Mapping[str, str]], object] | None,
) -> tuple[Settings, object]:
    """The platform's settings and the service's own; one `SettingsError` for both."""
    problems: list[str] = []
    settings: Settings | None = None
    own: object = None
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        problems += error.problems
    try:
        own = service_settings(os.environ) if service_settings is not None else None
    except SettingsError as error:
        problems += error.problems
    if problems or settings is None:
        raise SettingsError(problems)
    return settings, own


def _fail(message: str, code: int) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)

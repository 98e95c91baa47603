"""The platform's own services: `python -m services.<name>` with ADR 0004's environment; and
the pricing service's stream workers (`python -m services.pricing.streams`, ADR 0008)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from services.platform.secrets import Secret
from stack.components.base import Component
from stack.components.base import Context
from stack.health import grpc_serving
from stack.ports import HOST
from stack.ports import LP_SIMULATORS
from stack.ports import SERVICES
from stack.ports import STREAM_WORKERS
from stack.ports import instance_name
from stack.ports import port_is_listening
from stack.process import Launch

# Variables a service must never inherit from the shell that ran `tradingmesh up`: its settings
# come from us only, and no admin credential (BAO_TOKEN...) may leak into it.
_NOT_INHERITED = ("TM_", "BAO_", "VAULT_")
# The stream workers' own settings (services/pricing/streams.py), passed on from `up`'s
# environment.
STREAM_SETTINGS = ("TM_PRICING_STREAM_COALESCE_MS", "TM_PRICING_STREAM_REFRESH_S")
# The OMS's rollover settings (ADR 0010), passed on from `up`'s environment (the test stacks
# start rollovers only when asked, tests/conftest.py), and how long an STP order waits for a
# live price (ADR 0007; a test shortens it).
OMS_SETTINGS = (
    "TM_OMS_ROLLOVER_TIME",
    "TM_OMS_ROLLOVER_TIME_ZONE",
    "TM_OMS_ROLLOVER_AUTO",
    "TM_OMS_ROLLOVER_BATCH",
    "TM_OMS_STP_PRICE_WAIT_S",
)
# The notification service's own settings (services/notification/main.py), passed on likewise.
NOTIFICATION_SETTINGS = (
    "TM_NOTIFICATION_MARGIN_CALL_INTERVAL_S",
    "TM_NOTIFICATION_EMAIL_MAX_ATTEMPTS",
    "TM_NOTIFICATION_EMAIL_RETRY_BASE_MS",
    "TM_NOTIFICATION_EMAIL_RETRY_CAP_S",
    "TM_NOTIFICATION_EMAIL_WORKERS",
    "TM_NOTIFICATION_DAILY_STATEMENT_DELAY_S",
)


def is_available(service: str) -> bool:
    """True once `services/<service>/__main__.py` exists (the lead writes the packages)."""
    import services

    return any((Path(root) / service / "__main__.py").is_file() for root in services.__path__)


class Service(Component):
    # In-flight calls get a 10 s grace period on SIGTERM (ADR 0004), plus time to close pools.
    stop_timeout = 15.0

    module: str  # what `python -m` runs

    def __init__(self, ctx: Context, service: str, instance: int = 1, replicas: int = 1) -> None:
        super().__init__(ctx)
        self.name = instance_name(service, instance)  # `oms`, `oms-2` (ADR 0017)
        self.service = service  # the settings' TM_SERVICE: its Vault policy and database role
        self.instance = instance
        self.replicas = replicas  # how many instances of each service the stack runs
        self.module = f"services.{service}"

    @property
    def grpc_port(self) -> int:
        return self.ctx.ports.service_grpc(self.service, self.instance)

    @property
    def metrics_port(self) -> int:
        return self.ctx.ports.service_metrics(self.service, self.instance)

    @property
    def role(self) -> str:
        """What the process is, for the settings it gets: the service (any instance)."""
        return self.service

    def target(self, service: str) -> str:
        """How a service reaches `service`'s instances: `host:port` for one, else a gRPC target
        listing every instance (`ipv4:h:a,h:b`, balanced by `internal_channel`, ADR 0017)."""
        ports = self.ctx.ports
        addresses = [
            f"{HOST}:{ports.service_grpc(service, k)}" for k in range(1, self.replicas + 1)
        ]
        return addresses[0] if len(addresses) == 1 else "ipv4:" + ",".join(addresses)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    @property
    def metrics_address(self) -> str:
        return f"{HOST}:{self.metrics_port}"

    def ports(self) -> tuple[int, ...]:
        return (self.grpc_port, self.metrics_port)

    def available(self) -> bool:
        return is_available(self.service)

    def probe(self) -> bool:
        # A TCP connect first: far cheaper than a gRPC channel while the service still boots.
        return port_is_listening(self.grpc_port) and grpc_serving(
            self.address, self.service, self.ctx.paths.tls_dir
        )

    def environment(self, vault_address: str, vault_token: Secret) -> dict[str, str]:
        ports = self.ctx.ports
        env = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                # A crash in native code (grpc, QuickFIX) leaves its stack in the log.
                "PYTHONFAULTHANDLER": "1",
                "TM_SERVICE": self.service,
                "TM_INSTANCE": self.name,
                "TM_REPLICAS": str(self.replicas),
                "TM_GRPC_ADDR": self.address,
                "TM_METRICS_ADDR": self.metrics_address,
                "TM_LOG_LEVEL": self.ctx.log_level,
                "TM_VAULT_ADDR": vault_address,
                "TM_VAULT_TOKEN": vault_token.reveal(),
                "TM_DATABASE_HOST": HOST,
                "TM_DATABASE_PORT": str(ports.postgres),
                "TM_DATABASE_NAME": "tradingmesh",
                "TM_REDIS_HOST": HOST,
                "TM_REDIS_PORT": str(ports.redis),
                "TM_NATS_URL": f"nats://{HOST}:{ports.nats}",
                # PostgreSQL's, Redis's and NATS's certificates are checked against the stack's
                # CA (ADR 0018).
                "TM_TLS_CA_FILE": str(self.ctx.paths.ca_file),
                # Shared by the service's instances: the OMS's FIX order sessions keep their
                # sequence numbers for whichever instance leads next (ADR 0017).
                "TM_DATA_DIR": str(self.ctx.paths.service_dir(self.service)),
                # FIX session logs (services/platform/fix_log.py): the stack's log folder;
                # market data refreshes too if `up` was run with TM_FIX_LOG_MARKET_DATA=Y.
                "TM_FIX_LOG_DIR": str(self.ctx.paths.fix_logs),
                "TM_FIX_LOG_MARKET_DATA": os.environ.get("TM_FIX_LOG_MARKET_DATA", "N"),
                # Outgoing events checked against their contracts (ADR 0009): on when `up` (or
                # the test suite, tests/conftest.py) runs with TM_CHECK_EVENTS=1.
                "TM_CHECK_EVENTS": os.environ.get("TM_CHECK_EVENTS", "0"),
            }
        )
        if os.environ.get("TM_TLS_CERT_TTL"):
            # The lifetime of the certificate each process issues itself (ADR 0018, default
            # 24h), renewed at two thirds of it: `up`'s, e.g. short in the rotation tests.
            env["TM_TLS_CERT_TTL"] = os.environ["TM_TLS_CERT_TTL"]
        lps = ",".join(f"{lp}={HOST}:{ports.lp_fix(lp)}" for lp in LP_SIMULATORS)
        if self.role in ("pricing", "oms"):  # FIX over TLS: each LP's CA, here the stack's
            env["TM_FIX_LP_CA"] = ",".join(f"{lp}={self.ctx.paths.ca_file}" for lp in LP_SIMULATORS)
        if self.role == "pricing":  # its LP gateway connects to the stack's LP simulators
            env["TM_PRICING_LPS"] = lps
        if self.role in ("oms", "account"):  # the pre-trade check; margin and withdrawals
            env["TM_RISK_ADDR"] = self.target("risk")
        if self.role == "oms":  # STP orders go to the LPs (ADR 0007)
            env["TM_OMS_LPS"] = lps
            env.update({name: os.environ[name] for name in OMS_SETTINGS if os.environ.get(name)})
        if self.role == "reporting":
            # Reporting reads the read replica (ADR 0012). The other services keep the
            # primary as their "replica": their read_session reads are ones that must see
            # their own writes at once (the risk watcher's, the OMS's internal reads), which a
            # standby a few milliseconds behind would not.
            env["TM_DATABASE_REPLICA_HOST"] = HOST
            env["TM_DATABASE_REPLICA_PORT"] = str(ports.postgres_replica)
        if self.role == "risk":  # the margin watcher's stop-out closes through the OMS
            env["TM_OMS_ADDR"] = self.target("oms")
        if self.role == "notification":
            env.update({k: os.environ[k] for k in NOTIFICATION_SETTINGS if os.environ.get(k)})
            # The daily statements (ADR 0011) come from reporting's internal API.
            env["TM_REPORTING_ADDR"] = self.target("reporting")
        return env

    def launch(self, vault_address: str, vault_token: Secret) -> Launch:
        self.ctx.paths.service_dir(self.service).mkdir(mode=0o700, parents=True, exist_ok=True)
        return Launch(
            argv=[sys.executable, "-m", self.module],
            env=self.environment(vault_address, vault_token),
            cwd=self.ctx.repo,
        )


def service_instances(ctx: Context, count: int, replicas: int) -> dict[str, Service]:
    """Instances 1..count of every service, instance 1 of each first (the start order), in a
    stack that runs `replicas` of each."""
    return {
        s.name: s
        for k in range(1, count + 1)
        for s in (Service(ctx, service, k, replicas) for service in SERVICES)
    }


class StreamWorker(Service):
    """One of the pricing service's stream workers: StreamQuotes only, as pricing (its settings
    name, Vault policy and database role), on its own ports (ADR 0008)."""

    def __init__(self, ctx: Context, worker: str) -> None:
        super().__init__(ctx, "pricing")
        self.name = worker
        self.module = "services.pricing.streams"

    @property
    def role(self) -> str:
        return "pricing-streams"

    @property
    def grpc_port(self) -> int:
        return self.ctx.ports.stream_worker_grpc(self.name)

    @property
    def metrics_port(self) -> int:
        return self.ctx.ports.stream_worker_metrics(self.name)

    def environment(self, vault_address: str, vault_token: Secret) -> dict[str, str]:
        env = super().environment(vault_address, vault_token)
        for name in STREAM_SETTINGS:  # set for `tradingmesh up`, they reach the workers
            if os.environ.get(name):
                env[name] = os.environ[name]
        return env


def stream_workers(ctx: Context) -> dict[str, StreamWorker]:
    """Every stream worker a stack may run (`up` starts the first TM_PRICING_STREAM_WORKERS)."""
    return {name: StreamWorker(ctx, name) for name in STREAM_WORKERS}

"""The port plan of a stack: every port is the base port plus a fixed offset (ADR 0004)."""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Mapping
from dataclasses import dataclass

HOST = "127.0.0.1"

# The services of the platform, in the order of their port offsets (+20 + i, +40 + i).
SERVICES: tuple[str, ...] = ("account", "pricing", "oms", "risk", "reporting", "notification")
# The FIX LP simulators of the dev stack, in the order of their port offsets (+60 + i).
LP_SIMULATORS: tuple[str, ...] = ("lp-alpha", "lp-beta")
# The pricing service's stream workers (ADR 0008), by index: ports +30 + i and +50 + i. `up`
# starts the first TM_PRICING_STREAM_WORKERS of them (default 2; 0: pricing serves the streams).
MAX_STREAM_WORKERS = 10
DEFAULT_STREAM_WORKERS = 2
STREAM_WORKERS: tuple[str, ...] = tuple(
    f"pricing-streams-{i + 1}" for i in range(MAX_STREAM_WORKERS)
)

POSTGRES = 0
REDIS = 1
NATS = 2
NATS_MONITOR = 3
OPENBAO = 4
OPENBAO_CLUSTER = 5  # bound by `bao server -dev` itself: listen port + 1
POSTGRES_REPLICA = 6  # the read replica: a streaming hot standby of the primary (ADR 0012)
ENVOY = 10
ENVOY_ADMIN = 11
PROMETHEUS = 12  # stack/components/monitoring.py: Prometheus and its two exporters
POSTGRES_EXPORTER = 13
REDIS_EXPORTER = 14
SMTP = 15  # the SMTP sink (stack/components/smtp.py)
SMTP_CONTROL = 16  # its control port (read what it stored, make it refuse)
SERVICE_GRPC = 20
STREAM_WORKER_GRPC = 30  # +30 + i: pricing's stream workers
SERVICE_METRICS = 40
STREAM_WORKER_METRICS = 50  # +50 + i: their /metrics
LP_FIX = 60  # the FIX acceptors of the LP simulators: +60 + i
LP_CONTROL = 70  # their control ports (pin a quote, change the rate): +70 + i
WEB_CLIENT = 80  # reserved for the web client's dev server; Envoy's CORS allows its origin
BLOCK = 100  # a stack owns base .. base + 99
# Instances 2.. of the services (`up --replicas N`, ADR 0017) take offsets free above, 12 per
# instance: the six services' gRPC ports, then their six metrics ports.
REPLICA_OFFSETS: tuple[int, ...] = (
    *range(81, 100),
    *range(62, 70),
    *range(72, 80),
    *range(26, 30),
    *range(46, 50),
)
MAX_REPLICAS = 1 + len(REPLICA_OFFSETS) // (2 * len(SERVICES))

DEFAULT_BASE = 17000


@dataclass(frozen=True)
class Ports:
    """Concrete ports for one base port."""

    base: int

    @property
    def postgres(self) -> int:
        return self.base + POSTGRES

    @property
    def postgres_replica(self) -> int:
        return self.base + POSTGRES_REPLICA

    @property
    def redis(self) -> int:
        return self.base + REDIS

    @property
    def nats(self) -> int:
        return self.base + NATS

    @property
    def nats_monitor(self) -> int:
        return self.base + NATS_MONITOR

    @property
    def openbao(self) -> int:
        return self.base + OPENBAO

    @property
    def openbao_cluster(self) -> int:
        return self.base + OPENBAO_CLUSTER

    @property
    def envoy(self) -> int:
        return self.base + ENVOY

    @property
    def envoy_admin(self) -> int:
        return self.base + ENVOY_ADMIN

    @property
    def prometheus(self) -> int:
        return self.base + PROMETHEUS

    @property
    def postgres_exporter(self) -> int:
        return self.base + POSTGRES_EXPORTER

    @property
    def redis_exporter(self) -> int:
        return self.base + REDIS_EXPORTER

    @property
    def smtp(self) -> int:
        return self.base + SMTP

    @property
    def smtp_control(self) -> int:
        return self.base + SMTP_CONTROL

    @property
    def web_client(self) -> int:
        return self.base + WEB_CLIENT

    def service_grpc(self, service: str, instance: int = 1) -> int:
        if instance == 1:
            return self.base + SERVICE_GRPC + SERVICES.index(service)
        return self.base + _replica_offset(instance, SERVICES.index(service))

    def service_metrics(self, service: str, instance: int = 1) -> int:
        if instance == 1:
            return self.base + SERVICE_METRICS + SERVICES.index(service)
        return self.base + _replica_offset(instance, len(SERVICES) + SERVICES.index(service))

    def stream_worker_grpc(self, worker: str) -> int:
        return self.base + STREAM_WORKER_GRPC + STREAM_WORKERS.index(worker)

    def stream_worker_metrics(self, worker: str) -> int:
        return self.base + STREAM_WORKER_METRICS + STREAM_WORKERS.index(worker)

    def lp_fix(self, lp: str) -> int:
        return self.base + LP_FIX + LP_SIMULATORS.index(lp)

    def lp_control(self, lp: str) -> int:
        return self.base + LP_CONTROL + LP_SIMULATORS.index(lp)

    def all_used(self) -> tuple[int, ...]:
        """Every port the stack listens on today (checked before `up`, and after `down`)."""
        fixed = (
            self.postgres,
            self.redis,
            self.nats,
            self.nats_monitor,
            self.openbao,
            self.openbao_cluster,
            self.postgres_replica,
            self.envoy,
            self.envoy_admin,
            self.prometheus,
            self.postgres_exporter,
            self.redis_exporter,
            self.smtp,
            self.smtp_control,
        )
        services = tuple(self.service_grpc(s) for s in SERVICES)
        metrics = tuple(self.service_metrics(s) for s in SERVICES)
        # Every instance `up --replicas` may start: a block is free only if all of them could.
        replicas = tuple(self.base + offset for offset in REPLICA_OFFSETS)
        lps = tuple(p for lp in LP_SIMULATORS for p in (self.lp_fix(lp), self.lp_control(lp)))
        workers = tuple(
            p
            for w in STREAM_WORKERS
            for p in (self.stream_worker_grpc(w), self.stream_worker_metrics(w))
        )
        return fixed + services + metrics + lps + workers + replicas


def _replica_offset(instance: int, slot: int) -> int:
    """The offset of `slot` (0-5 gRPC, 6-11 metrics) of instance 2.. (ADR 0017)."""
    if not 2 <= instance <= MAX_REPLICAS:
        raise ValueError(f"instance {instance}: must be between 1 and {MAX_REPLICAS}")
    return REPLICA_OFFSETS[(instance - 2) * 2 * len(SERVICES) + slot]


def instance_name(service: str, instance: int) -> str:
    """`oms` for instance 1 (as with one replica), `oms-2` for instance 2, ..."""
    return service if instance == 1 else f"{service}-{instance}"


def instance_names(replicas: int = MAX_REPLICAS) -> tuple[str, ...]:
    """The names of instances 1..replicas of every service: instance 1 of each first."""
    return tuple(instance_name(s, k) for k in range(1, replicas + 1) for s in SERVICES)


def service_of(name: str) -> str | None:
    """The service an instance's name (`oms`, `oms-2`) belongs to; None for other names."""
    if name in SERVICES:
        return name
    service, _, number = name.rpartition("-")
    if service in SERVICES and number.isdigit() and 2 <= int(number) <= MAX_REPLICAS:
        return service
    return None


def validate_replicas(replicas: int) -> None:
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ValueError(f"--replicas {replicas}: must be between 1 and {MAX_REPLICAS}")


def stream_worker_count(environ: Mapping[str, str] = os.environ) -> int:
    """How many stream workers `up` starts: TM_PRICING_STREAM_WORKERS, default 2, at most 10."""
    text = environ.get("TM_PRICING_STREAM_WORKERS", "").strip()
    if not text:
        return DEFAULT_STREAM_WORKERS
    if not text.isdigit() or int(text) > MAX_STREAM_WORKERS:
        raise ValueError(
            f"TM_PRICING_STREAM_WORKERS must be a number from 0 to {MAX_STREAM_WORKERS},"
            f" not {text!r}"
        )
    return int(text)


def stream_workers(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The stream workers `up` starts (see `stream_worker_count`)."""
    return STREAM_WORKERS[: stream_worker_count(environ)]


def validate_base(base: int) -> None:
    if not 1024 <= base <= 65535 - BLOCK:
        raise ValueError(f"base port {base}: must be between 1024 and {65535 - BLOCK}")


def port_is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port (a server could bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers themselves do: connections of a previous run lingering in TIME_WAIT
        # must not make a port look taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def port_is_listening(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_free_base(low: int = 20000, high: int = 32000, attempts: int = 50) -> int:
    """A base port whose whole block is free, for tests running next to a `dev` stack.

    The range stays below Linux's default ephemeral range (32768-60999) so that outgoing
    connections made while the stack runs cannot take one of its ports.
    """
    rng = random.SystemRandom()
    for _ in range(attempts):
        base = rng.randrange(low // BLOCK, high // BLOCK) * BLOCK
        if all(port_is_free(p) for p in Ports(base).all_used()):
            return base
    raise RuntimeError(f"no free block of {BLOCK} ports between {low} and {high}")

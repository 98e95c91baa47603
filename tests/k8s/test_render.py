"""Every overlay renders (`kubectl kustomize`), and every object is valid: the built-in kinds
against Kubernetes 1.33's schemas (kubernetes-validate, strict: an unknown field fails), the
operators' kinds against crd_schemas.py. The generated workloads match k8s/generate.py."""

from __future__ import annotations

import copy
import subprocess
import sys

import jsonschema  # type: ignore[import-untyped]  # no stubs pinned; used for validate only
import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from tests.k8s.crd_schemas import SCHEMAS
from tests.k8s.manifests import K8S
from tests.k8s.manifests import KUBERNETES_VERSION
from tests.k8s.manifests import NAMESPACE
from tests.k8s.manifests import OVERLAYS
from tests.k8s.manifests import Doc
from tests.k8s.manifests import named
from tests.k8s.manifests import where


def problems_of(doc: Doc) -> list[str]:
    """What is wrong with one object (empty: valid)."""
    custom = SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if custom is not None:
        validator = jsonschema.Draft202012Validator(custom)
        return [f"{where(doc)}: {e.json_path}: {e.message}" for e in validator.iter_errors(doc)]
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{where(doc)}: no schema for it: {error.message}"]
    except kubernetes_validate.ValidationError as error:
        return [f"{where(doc)}: {'.'.join(map(str, error.path))}: {error.message}"]
    return []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_of_the_overlay_is_valid(rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    assert docs, f"{overlay} renders nothing"
    problems = [p for doc in docs for p in problems_of(doc)]
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_namespaced_object_lands_in_the_platforms_namespace(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    cluster_scoped = {"Namespace"}
    misplaced = [
        where(doc)
        for doc in rendered[overlay]
        if doc["kind"] not in cluster_scoped and doc["metadata"].get("namespace") != NAMESPACE
    ]
    assert misplaced == []
    namespace = named(rendered[overlay], "Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_an_invalid_object_is_reported() -> None:
    """Negative controls: a misspelt field of a built-in kind and of an operator's kind, a
    wrong type, and a kind no schema knows."""
    deployment: Doc = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "x", "image": "r/x:1"}]},
            },
        },
    }
    assert problems_of(deployment) == []
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert problems_of(typo)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    assert problems_of(wrong_type)
    pooler: Doc = {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Pooler",
        "metadata": {"name": "p"},
        "spec": {"cluster": {"name": "c"}, "type": "rw", "pgbouncer": {"poolMode": "session"}},
    }
    assert problems_of(pooler) == []
    pooler["spec"]["pgbouncer"]["poolMode"] = "statement-ish"
    assert problems_of(pooler)
    unknown = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}}
    assert problems_of(unknown)


def test_the_generated_workloads_are_up_to_date() -> None:
    """k8s/base/workloads/*.yaml are what k8s/generate.py writes (edit the table, not them)."""
    result = subprocess.run(
        [sys.executable, str(K8S / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_secret_with_data_is_in_the_repository() -> None:
    """Not only rendered: no YAML file under k8s/ holds a Secret with data or stringData."""
    import yaml

    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            secret = isinstance(doc, dict) and doc.get("kind") == "Secret"
            if secret and (doc.get("data") or doc.get("stringData")):
                found.append(str(path.relative_to(K8S)))
    assert found == []

"""Each overlay is rendered once per session (`kubectl kustomize` takes about a second)."""

from __future__ import annotations

import pytest

from tests.k8s.manifests import K8S
from tests.k8s.manifests import OVERLAYS
from tests.k8s.manifests import Doc
from tests.k8s.manifests import render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Doc]]:
    """Every overlay's objects, by overlay name. Tests must not change them (copy first)."""
    return {overlay: render(K8S / "overlays" / overlay) for overlay in OVERLAYS}

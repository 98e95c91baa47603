"""Each overlay is rendered once per session (`kubectl kustomize` takes about a second)."""

from __future__ import annotations

import pytest

from tests.k8s.manifests import K8S, OVERLAYS, Doc, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Doc]]:
    """Every overlay's objects, by overlay name. Tests must not change them (copy first)."""
    return {overlay: render(K8S / "overlays" / overlay) for overlay in OVERLAYS}

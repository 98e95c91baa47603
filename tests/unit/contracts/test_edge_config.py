"""The edge config as `tradingmesh up` renders it (stack/components/envoy.py): Envoy 1.40 accepts
all of it (local replies, Lua scripts, routes, transcoder options), and the allowed CORS
origins come from TM_EDGE_CORS_ORIGINS."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from stack import pki
from stack.components.base import Context
from stack.components.envoy import HSTS
from stack.components.envoy import SDS_FILE
from stack.components.envoy import Envoy
from stack.components.envoy import parse_cors_origins
from stack.components.envoy import parse_plaintext_switch
from stack.paths import StackPaths
from stack.ports import Ports
from tests.local_ca import LocalCA

from .conftest import REPO
from .test_envoy_descriptor import _envoy

PORTS = Ports(17000)


def _edge(root: Path, plaintext: bool = False) -> Envoy:
    context = Context(StackPaths(name="unit", root=root), PORTS, REPO, "INFO")
    return Envoy(context, plaintext=plaintext)


def _validate(config: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_envoy(), "--mode", "validate", "-c", config, "--disable-hot-restart", "-l", "error"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TM_EDGE_TOKEN": "unit"},
    )


def _with_certificate(edge: Envoy) -> None:
    for folder in (edge.ctx.paths.envoy_dir, edge.ctx.paths.tls_dir):
        folder.mkdir(parents=True)
    pki.write_files(edge.ctx.paths.tls_dir, LocalCA().issue(pki.EDGE))


@pytest.mark.parametrize("built", [False, True], ids=["no web build", "a web build"])
@pytest.mark.parametrize("plaintext", [False, True], ids=["production", "plaintext switch"])
def test_the_rendered_edge_config_is_valid_for_envoy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, built: bool, plaintext: bool
) -> None:
    dist = tmp_path / "dist"
    if built:  # the web terminal's files as routes (web_static.py), one larger than Envoy's 4 KiB
        (dist / "assets").mkdir(parents=True)
        (dist / "index.html").write_text("<!doctype html>")
        (dist / "assets" / "app-1a2b.js").write_text("x();\n" * 10_000)
    monkeypatch.setenv("TM_WEB_DIST", str(dist))
    edge = _edge(tmp_path, plaintext)
    _with_certificate(edge)

    config = edge.render(timeout=120)
    result = _validate(config)

    assert result.returncode == 0, result.stdout + result.stderr
    text = Path(config).read_text()
    assert ("- name: plaintext" in text) is plaintext
    assert "TM_EDGE_TLS_KEY" not in text  # the key is a file now, read through SDS
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


def test_clients_get_tls_1_3_only_with_the_certificate_from_watched_files(tmp_path: Path) -> None:
    edge = _edge(tmp_path)
    _with_certificate(edge)
    config = yaml.safe_load(Path(edge.render(timeout=120)).read_text())

    (listener,) = config["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]  # production: no plaintext chain
    assert chain["filter_chain_match"] == {"transport_protocol": "tls"}
    context = chain["transport_socket"]["typed_config"]["common_tls_context"]
    assert context["tls_params"] == {
        "tls_minimum_protocol_version": "TLSv1_3",
        "tls_maximum_protocol_version": "TLSv1_3",
    }
    assert "tls_certificates" not in context
    (sds,) = context["tls_certificate_sds_secret_configs"]
    path = Path(sds["sds_config"]["path_config_source"]["path"])
    assert path == edge.ctx.paths.envoy_dir / SDS_FILE
    (secret,) = json.loads(path.read_text())["resources"]
    assert secret["name"] == sds["name"]
    tls = edge.ctx.paths.tls_dir
    assert secret["tls_certificate"] == {
        "certificate_chain": {"filename": str(tls / "edge.pem")},
        "private_key": {"filename": str(tls / "edge-key.pem")},
        "watched_directory": {"path": str(tls)},
    }
    # jwt_authn fetches the JWKS from this listener over TLS, against the CA file.
    jwks = next(c for c in config["static_resources"]["clusters"] if c["name"] == "edge_jwks")
    upstream = jwks["transport_socket"]["typed_config"]["common_tls_context"]
    assert upstream["validation_context"] == {
        "trusted_ca": {"filename": str(edge.ctx.paths.ca_file)}
    }
    hcm = chain["filters"][0]["typed_config"]
    (provider,) = next(
        f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.jwt_authn"
    )["typed_config"]["providers"].values()
    assert provider["remote_jwks"]["http_uri"]["uri"].startswith("https://127.0.0.1:")
    # HSTS is the first filter, so that it sees every answer (Envoy's own too).
    first = hcm["http_filters"][0]
    assert first["name"] == "tradingmesh.hsts"
    assert HSTS in first["typed_config"]["default_source_code"]["inline_string"]
    assert HSTS == "max-age=31536000; includeSubDomains"


def test_the_plaintext_switch_is_1_or_0() -> None:
    assert parse_plaintext_switch(None) is None
    assert parse_plaintext_switch(" ") is None
    assert parse_plaintext_switch("1") is True
    assert parse_plaintext_switch("0") is False
    with pytest.raises(ValueError, match="TM_EDGE_PLAINTEXT must be 1"):
        parse_plaintext_switch("yes")

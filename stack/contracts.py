"""What the edge serves, read from the buf-built descriptor set of `proto/`.

Envoy's transcoder needs the descriptor set anyway; reading the service list from the same file
means a new service or streaming RPC is routed without editing the stack.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import any_pb2
from google.protobuf import descriptor_pb2
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from google.rpc import status_pb2

from services.platform.reflection import is_internal
from stack.ports import SERVICES


@dataclass(frozen=True)
class EdgeService:
    """A public or admin gRPC service, routed at the edge to the process owning its domain."""

    full_name: str  # tradingmesh.oms.v1.OrderService
    owner: str  # the service process (cluster) that serves it: oms
    streaming_methods: tuple[str, ...]  # method names whose route must not time out


def build_descriptor_set(repo: Path, buf: Path, out: Path, timeout: float) -> None:
    """`buf build` the workspace into a FileDescriptorSet with every import (for the transcoder)."""
    result = subprocess.run(
        [str(buf), "build", "--as-file-descriptor-set", "-o", str(out)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"buf build failed ({result.returncode}):\n{result.stderr.strip()}")
    _add_error_types(out)


def _add_error_types(path: Path) -> None:
    """Adds google.rpc.Status and its detail messages, which no contract imports: without them
    the transcoder cannot turn a gRPC error into its JSON body (`convert_grpc_status`), and a
    REST client would get the HTTP status with an empty body."""
    files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    present = {file.name for file in files.file}
    for module in (any_pb2, duration_pb2, status_pb2, error_details_pb2):
        if module.DESCRIPTOR.name not in present:
            module.DESCRIPTOR.CopyToProto(files.file.add())
            present.add(module.DESCRIPTOR.name)
    path.write_bytes(files.SerializeToString())


def edge_services(descriptor_set: Path) -> list[EdgeService]:
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    found = []
    for file in files.file:
        parts = file.package.split(".")
        # tradingmesh.<domain>.v1: the domain names the owning service process.
        if len(parts) != 3 or parts[0] != "tradingmesh" or parts[1] not in SERVICES:
            continue
        for service in file.service:
            if is_internal(service.name):
                continue
            streaming = tuple(
                m.name for m in service.method if m.server_streaming or m.client_streaming
            )
            found.append(EdgeService(f"{file.package}.{service.name}", parts[1], streaming))
    return sorted(found, key=lambda s: s.full_name)

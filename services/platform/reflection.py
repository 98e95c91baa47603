"""Server reflection with two views: a process's own services, and the public contract at the edge.

Envoy sends every reflection stream to one process (`REFLECTION_OWNER` in
stack/components/envoy.py): it cannot split one stream between upstreams. So whichever process
gets a stream that came through the edge (it carries the edge token, which Envoy adds to every
call) answers for the whole edge: every service of the SDK that is not internal, with only the
files those services need, so `*InternalService` can be neither listed nor described there. A
direct call, from an operator on a service's own port, gets the process's own services,
internal ones included.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator
from collections.abc import Iterable
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import grpc.aio
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_health.v1 import health  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import reflection  # type: ignore[import-untyped]  # no type information
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc

import tradingmesh
from services.platform.identity import edge_token_matches
from services.platform.secrets import Secret

__all__ = ["Reflection", "add_reflection", "edge_pool", "is_internal", "public_services"]

_TOOL_SERVICES = (health.SERVICE_NAME, reflection.SERVICE_NAME)
"""Not tradingmesh contracts, but served (and routed at the edge) by every process."""


def is_internal(service_name: str) -> bool:
    """ADR 0001: `*InternalService` is for calls between services, never served at the edge."""
    return service_name.endswith("InternalService")


def _sdk_files() -> list[FileDescriptor]:
    """Every contract file of the SDK (tradingmesh/<domain>/v1/*_pb2.py), imported."""
    files = []
    for root in tradingmesh.__path__:
        # Only tradingmesh/<domain>/v1/ holds generated code (not tradingmesh/trading/, ...).
        for version in sorted(Path(root).glob("*/v1/__init__.py")):
            package = f"tradingmesh.{version.parent.parent.name}.v1"
            for module in pkgutil.iter_modules([str(version.parent)]):
                if module.name.endswith("_pb2"):
                    imported = importlib.import_module(f"{package}.{module.name}")
                    files.append(imported.DESCRIPTOR)
    return files


@cache
def public_services() -> tuple[str, ...]:
    """The full name of every service the edge serves, sorted."""
    return tuple(
        sorted(
            service.full_name
            for file in _sdk_files()
            for service in file.services_by_name.values()
            if not is_internal(service.name)
        )
    )


@cache
def edge_pool() -> descriptor_pool.DescriptorPool:
    """A pool with the files of the public services and of the tools, and what they import.

    A file is copied without its internal services, should one ever share a file with what the
    public contract imports.
    """
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: FileDescriptor) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        kept = [service for service in proto.service if not is_internal(service.name)]
        del proto.service[:]
        proto.service.extend(kept)
        pool.Add(proto)
        added.add(file.name)

    default = descriptor_pool.Default()
    for name in (*public_services(), *_TOOL_SERVICES):
        add(default.FindFileContainingSymbol(name))
    return pool


class Reflection:
    """grpc.reflection.v1alpha.ServerReflection: the edge's view for calls that carry the edge
    token, the process's own view for every other call."""

    def __init__(self, own_services: Sequence[str], edge_token: Secret) -> None:
        self._own = reflection.aio.ReflectionServicer([*own_services, *_TOOL_SERVICES])
        self._edge: Any = None  # built at the first call through the edge (it imports the SDK)
        self._edge_token = edge_token

    def _view(self, metadata: Iterable[tuple[str, str | bytes]]) -> Any:
        if not edge_token_matches(metadata, self._edge_token):
            return self._own
        if self._edge is None:
            self._edge = reflection.aio.ReflectionServicer(
                [*public_services(), *_TOOL_SERVICES], pool=edge_pool()
            )
        return self._edge

    async def ServerReflectionInfo(  # noqa: N802  # the protocol's name
        self, requests: AsyncIterator[reflection_pb2.ServerReflectionRequest], context: Any
    ) -> AsyncIterator[reflection_pb2.ServerReflectionResponse]:
        view = self._view(context.invocation_metadata() or ())
        async for response in view.ServerReflectionInfo(requests, context):
            yield response


def add_reflection(
    server: grpc.aio.Server, own_services: Sequence[str], edge_token: Secret
) -> None:
    """Serves reflection on `server` with both views."""
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        Reflection(own_services, edge_token), server
    )

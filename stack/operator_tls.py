"""The operator's mutual TLS to a service (ADR 0018): the stack's probes, the tests, the benches
and tools call a service directly with the operator's certificate that `tradingmesh up` writes
into the stack's `tls/` (`operator.pem`, `operator-key.pem`, and `ca.pem`, the platform CA).

Every service accepts `operator` (services/platform/callers.py). The files are read at each
call, so that a channel made after `tradingmesh certs rotate` presents the new certificate.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from stack.ports import HOST
from stack.ports import Ports
from stack.state import StackState

__all__ = [
    "operator_aio_channel",
    "operator_channel",
    "operator_credentials",
    "operator_options",
    "service_aio_channel",
    "service_channel",
    "tls_dir_of",
]


def operator_credentials(tls_dir: Path) -> grpc.ChannelCredentials:
    """TLS that presents the operator's certificate and trusts only the platform CA."""
    return grpc.ssl_channel_credentials(
        root_certificates=(tls_dir / "ca.pem").read_bytes(),
        private_key=(tls_dir / "operator-key.pem").read_bytes(),
        certificate_chain=(tls_dir / "operator.pem").read_bytes(),
    )


def operator_options(service: str, options: Sequence[tuple[str, Any]] = ()) -> list[Any]:
    """`options` and the check that the server's certificate names `service` (the stack's
    addresses are 127.0.0.1, which a service's certificate does not name)."""
    return [*options, ("grpc.ssl_target_name_override", service)]


def operator_channel(
    tls_dir: Path, address: str, service: str, options: Sequence[tuple[str, Any]] = ()
) -> grpc.Channel:
    """A (synchronous) channel to `service` at `address` as the operator."""
    return grpc.secure_channel(
        address, operator_credentials(tls_dir), options=operator_options(service, options)
    )


def operator_aio_channel(
    tls_dir: Path, address: str, service: str, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """An asyncio channel to `service` at `address` as the operator."""
    return grpc.aio.secure_channel(
        address, operator_credentials(tls_dir), options=operator_options(service, options)
    )


def service_channel(
    state: StackState, service: str, instance: int = 1, options: Sequence[tuple[str, Any]] = ()
) -> grpc.Channel:
    """A channel to instance `instance` of `service` of a running stack, as the operator: what
    tests, benches and tools use to call a service directly (not through the edge)."""
    address = f"{HOST}:{Ports(state.base_port).service_grpc(service, instance)}"
    return operator_channel(tls_dir_of(state), address, service, options)


def service_aio_channel(
    state: StackState, service: str, instance: int = 1, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """`service_channel` for asyncio."""
    address = f"{HOST}:{Ports(state.base_port).service_grpc(service, instance)}"
    return operator_aio_channel(tls_dir_of(state), address, service, options)


def tls_dir_of(state: StackState) -> Path:
    """The `tls/` of a running stack (`StackPaths.tls_dir` of its state directory)."""
    return Path(state.state_dir) / "tls"

"""Mutual TLS between the platform's processes (ADR 0018 "Inside").

- `server_credentials(source)`: a service's gRPC port requires a client certificate from the
  platform CA and serves the process's own certificate; a renewed certificate is used from the
  next TLS handshake on, without a restart (gRPC asks `source` at every handshake whether the
  certificate changed: `grpc.dynamic_ssl_server_credentials`).
- `channel_credentials(issued)`: a client presents `issued` and trusts only the platform CA.
- `peer_identity(context)`: the caller's name, the common name of its certificate.
"""

from __future__ import annotations

import threading
from typing import Any
from typing import Final

import grpc

from services.platform.certificates import CertificateSource
from services.platform.certificates import Issued

__all__ = [
    "PEER_NAME_KEY",
    "channel_credentials",
    "peer_identity",
    "server_credentials",
    "target_name_options",
]

PEER_NAME_KEY: Final = "x509_common_name"
"""The key of `context.auth_context()` that holds the peer certificate's common name."""


def server_credentials(source: CertificateSource) -> grpc.ServerCredentials:
    """TLS that requires a client certificate from the CA of `source`'s current certificate, and
    serves `source.current`, renewed ones included (from the next handshake)."""
    served = _ServedCertificate(source)
    return grpc.dynamic_ssl_server_credentials(
        served.configuration(source.current),
        served.fetch,  # type: ignore[arg-type]  # gRPC takes None as "unchanged" (its docs)
        require_client_authentication=True,
    )


class _ServedCertificate:
    """gRPC's certificate-configuration fetcher: called before each handshake (from gRPC's
    threads), answers None while the certificate is the one it gave last, else the new one."""

    def __init__(self, source: CertificateSource) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._given: Issued = source.current

    @staticmethod
    def configuration(issued: Issued) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(issued.key_pem.reveal().encode(), issued.certificate_pem)],
            root_certificates=issued.ca_pem,
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        current = self._source.current
        with self._lock:
            if current is self._given:
                return None
            self._given = current
        return self.configuration(current)


def channel_credentials(issued: Issued) -> grpc.ChannelCredentials:
    """A client's TLS: presents `issued`, trusts only its CA."""
    return grpc.ssl_channel_credentials(
        root_certificates=issued.ca_pem,
        private_key=issued.key_pem.reveal().encode(),
        certificate_chain=issued.certificate_pem,
    )


def target_name_options(callee: str) -> list[tuple[str, Any]]:
    """Channel options that make the client check that the server's certificate names `callee`
    (the stack's targets are addresses, not names)."""
    return [("grpc.ssl_target_name_override", callee)]


def peer_identity(context: Any) -> str | None:
    """The name in the caller's certificate (a `grpc.aio.ServicerContext`), or None when the
    call came without one (a plaintext server, in unit tests)."""
    names = (context.auth_context() or {}).get(PEER_NAME_KEY) or []
    if len(names) != 1:
        return None
    name = names[0]
    return name.decode() if isinstance(name, bytes) else str(name)

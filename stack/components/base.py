"""What every component of the stack has: a name, ports, an address, a probe, a stop signal."""

from __future__ import annotations

import os
import signal
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from stack.paths import StackPaths
from stack.ports import Ports


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

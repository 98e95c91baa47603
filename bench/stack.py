"""The stack a benchmark measures: a running one as it is (`--stack NAME`), or a dedicated one on
free ports with the edge's rate limits raised, stopped and deleted at the end also on an error or
Ctrl-C (its components' logs are kept under $TMPDIR/tradingmesh-bench-logs/)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stack.orchestrator import StackConfig
from stack.orchestrator import down
from stack.orchestrator import status
from stack.orchestrator import up
from stack.paths import StackPaths
from stack.ports import HOST
from stack.ports import Ports
from stack.ports import find_free_base
from stack.state import StackState

__all__ = ["Bench", "bench_stack"]


@dataclass(frozen=True)
class Bench:
    state: StackState
    ports: Ports
    started_here: bool
    edge_limits: dict[str, str]

    @property
    def envoy(self) -> str:
        return f"{HOST}:{self.ports.envoy}"


@contextmanager
def bench_stack(
    name: str | None,
    budget: float,
    *,
    prefix: str,
    edge_limits: Mapping[str, str],
    replicas: int = 1,
) -> Iterator[Bench]:
    """The stack to measure: `name` as it is, or a new one named `<prefix>-<pid>` with
    `replicas` instances of every service (ADR 0017) and whose edge limits are `edge_limits`
    (environment variables `up` reads when it renders Envoy's config; values already set in the
    environment win)."""
    if name is not None:
        state = status(name)
        if state is None:
            raise SystemExit(f"no stack named {name!r} (see `tradingmesh status`)")
        sick = [c.name for c in state.components if not c.healthy]
        if sick:
            raise SystemExit(f"stack {name!r} is not healthy: {', '.join(sick)}")
        limits = {"note": "those the running stack was started with"}
        yield Bench(state, Ports(state.base_port), False, limits)
        return
    base = find_free_base()
    config = StackConfig(
        name=f"{prefix}-{os.getpid()}", base_port=base, budget=budget, replicas=replicas
    )
    for key, value in edge_limits.items():
        os.environ.setdefault(key, value)
    limits = {key: os.environ[key] for key in edge_limits}
    print(f"starting stack {config.name} on base port {base} (edge limits {limits})")
    try:
        started = time.monotonic()
        state = up(config)
        print(f"stack healthy in {time.monotonic() - started:.1f} s")
        yield Bench(state, Ports(base), True, limits)
    finally:
        print(f"stopping stack {config.name}")
        down(config.name)
        # The components' logs outlive the stack, for a surprising run to be explained.
        paths = StackPaths.for_name(config.name)
        kept = Path(tempfile.gettempdir()) / "tradingmesh-bench-logs" / config.name
        if paths.logs.is_dir():
            shutil.copytree(paths.logs, kept, dirs_exist_ok=True)
            print(f"its logs: {kept}")
        down(config.name, purge=True)

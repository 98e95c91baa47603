"""The real local stack for integration tests: the same code as `tradingmesh up`, on free ports.

One stack per test session, under a unique name (`.tradingmesh/it-<pid>/`), torn down and
deleted at the end even when a test or the start itself fails.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from stack.orchestrator import StackConfig, down, up
from stack.ports import find_free_base
from stack.state import StackState


@dataclass(frozen=True)
class RunningStack:
    config: StackConfig
    state: StackState
    seconds_to_healthy: float


# Generous, so a crowded machine slows the suite instead of failing it; the 60 s target is
# measured by bench/stack_startup.py.
SETUP_BUDGET = 180.0


@pytest.fixture(scope="session")
def running_stack() -> Iterator[RunningStack]:
    config = StackConfig(name=f"it-{os.getpid()}", base_port=find_free_base(), budget=SETUP_BUDGET)
    try:
        started = time.monotonic()
        state = up(config)
        yield RunningStack(config, state, time.monotonic() - started)
    finally:
        down(config.name, purge=True)

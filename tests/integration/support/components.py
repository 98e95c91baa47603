"""Stopping and restarting the stack's components as a crash and a recovery would: SIGKILL to
a component's process group (`kill`), then `up` again (`restore`), which starts what is not
running; and a component that hangs: its process group stopped (SIGSTOP) for a while (`frozen`).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from collections.abc import Iterator

import grpc

from stack.orchestrator import StackConfig
from stack.orchestrator import is_running
from stack.orchestrator import up
from stack.paths import StackPaths
from stack.state import ComponentState
from stack.state import load
from tests.integration.conftest import SETUP_BUDGET
from tests.integration.conftest import RunningStack
from tests.integration.support.orders import Oms
from tests.integration.support.orders import Trader
from tests.integration.support.waiting import eventually
from tradingmesh.oms.v1 import order_service_pb2


def component(running: RunningStack, name: str) -> ComponentState:
    """The component as it runs now (an earlier test may have restarted it)."""
    state = load(StackPaths.for_name(running.config.name).state_file)
    assert state is not None
    entry = state.component(name)
    assert entry is not None
    assert entry.pid is not None
    return entry


def kill(running: RunningStack, name: str) -> None:
    """SIGKILL to the component's process group: a crash, nothing handed over; and gone."""
    entry = component(running, name)
    assert entry.pid is not None
    os.killpg(entry.pid, signal.SIGKILL)
    eventually(lambda: not is_running(entry), 30, f"{name} stopped")


@contextlib.contextmanager
def frozen(running: RunningStack, name: str) -> Iterator[Callable[[], None]]:
    """The component's process group stopped (SIGSTOP: it hangs, holding its connections) for
    the block, or until the `thaw` it yields is called (SIGCONT); at the end it is resumed if it
    still runs, also when the block fails (a test must not leave it stopped for the next)."""
    entry = component(running, name)
    pid = entry.pid
    assert pid is not None
    assert os.getpgid(pid) == pid  # a session of its own: the group is the component

    def thaw() -> None:
        os.killpg(pid, signal.SIGCONT)

    os.killpg(pid, signal.SIGSTOP)
    try:
        yield thaw
    finally:
        if is_running(entry):
            thaw()


def restore(running: RunningStack) -> None:
    """`up` again: starts what is not running, returns once the stack is healthy."""
    up(StackConfig(name=running.config.name, budget=SETUP_BUDGET))


def kill_oms(oms: Oms) -> None:
    kill(oms.running, "oms")


def start_oms(oms: Oms, trader: Trader) -> None:
    restore(oms.running)
    eventually(lambda: oms_answers(oms, trader), 60, "the OMS answers again")


def oms_answers(oms: Oms, trader: Trader) -> bool:
    try:
        oms.orders.ListOrders(
            order_service_pb2.ListOrdersRequest(account_id=trader.account_id),
            metadata=trader.md,
            timeout=5,
        )
    except grpc.RpcError:
        return False
    return True

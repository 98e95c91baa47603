"""Stopping and restarting the stack's components as a crash and a recovery would."""

from __future__ import annotations

import os
import signal

import grpc

from stack.orchestrator import StackConfig, is_running, up
from stack.paths import StackPaths
from stack.state import load
from tests.integration.conftest import SETUP_BUDGET
from tests.integration.support.orders import Oms, Trader
from tests.integration.support.waiting import eventually
from tradingmesh.oms.v1 import order_service_pb2


def kill_oms(oms: Oms) -> None:
    """SIGKILL: a crash, nothing handed over."""
    paths = StackPaths.for_name(oms.running.config.name)
    state = load(paths.state_file)
    assert state is not None
    entry = state.component("oms")
    assert entry is not None
    assert entry.pid is not None
    os.killpg(entry.pid, signal.SIGKILL)
    eventually(lambda: not is_running(entry), 30, "the OMS stopped")


def start_oms(oms: Oms, trader: Trader) -> None:
    up(StackConfig(name=oms.running.config.name, budget=SETUP_BUDGET))
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

"""The real local stack for integration tests: the same code as `tradingmesh up`, on free ports.

One stack per test session, under a unique name (`.tradingmesh/it-<pid>/`), torn down and
deleted at the end even when a test or the start itself fails; its components' logs are kept in
`$TMPDIR/tradingmesh-it-logs/it-<pid>/`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import URL

from simulators.lp.control import ControlClient
from stack import secrets as stack_secrets
from stack.orchestrator import StackConfig
from stack.orchestrator import down
from stack.orchestrator import up
from stack.paths import StackPaths
from stack.ports import HOST
from stack.ports import LP_SIMULATORS
from stack.ports import Ports
from stack.ports import find_free_base
from stack.provision import admin_url
from stack.state import StackState
from stack.vault import VaultAdmin
from tradingmesh.account.v1 import auth_service_pb2
from tradingmesh.account.v1 import auth_service_pb2_grpc

if TYPE_CHECKING:  # imported where used: they import RunningStack from here
    from tests.integration.callers import AccountStack
    from tests.integration.support.edge import Edge
    from tests.integration.support.orders import Oms


@dataclass(frozen=True)
class RunningStack:
    config: StackConfig
    state: StackState
    seconds_to_healthy: float

    def database_urls(self, role: str) -> tuple[str, URL]:
        """The superuser's libpq URL (for psycopg) and `role`'s SQLAlchemy URL (a service's own
        database role), with their passwords from the stack's Vault."""
        state = self.state
        vault = VaultAdmin(
            state.vault.address, Path(state.vault.root_token_file).read_text().strip()
        )
        known = stack_secrets.read(vault)
        assert known is not None
        port = Ports(state.base_port).postgres
        admin = admin_url(known.postgres_admin, port, state.endpoints.ca_file)
        login = known.postgres[role]
        url = URL.create(
            "postgresql+psycopg",
            username=login.username,
            password=login.password.reveal(),
            host=HOST,
            port=port,
            database="tradingmesh",
        )
        return admin.replace("postgresql+psycopg://", "postgresql://", 1), url


# Generous, so a crowded machine slows the suite instead of failing it; the 60 s target is
# measured by bench/stack_startup.py.
SETUP_BUDGET = 180.0


def stack_of_its_own(
    name: str, replicas: int = 1, edge_plaintext: bool = True
) -> Iterator[RunningStack]:
    """A stack started under `name` on free ports, stopped and deleted when the generator ends
    (its components' logs kept, as the session's): for a fixture that needs a stack of its own.
    `edge_plaintext=False`: the edge's production configuration, TLS 1.3 only (ADR 0018)."""
    config = StackConfig(
        name=name,
        base_port=find_free_base(),
        replicas=replicas,
        budget=SETUP_BUDGET,
        edge_plaintext=edge_plaintext,
    )
    try:
        started = time.monotonic()
        state = up(config)
        yield RunningStack(config, state, time.monotonic() - started)
    finally:
        down(config.name)
        # The components' logs outlive the stack, for a failed run to be explained.
        paths = StackPaths.for_name(config.name)
        kept = Path(tempfile.gettempdir()) / "tradingmesh-it-logs" / config.name
        if paths.logs.is_dir():
            shutil.copytree(paths.logs, kept, dirs_exist_ok=True)
        down(config.name, purge=True)


@pytest.fixture(scope="session")
def running_stack() -> Iterator[RunningStack]:
    # TM_TEST_REPLICAS=2: the whole suite against two instances of every service (ADR 0017).
    yield from stack_of_its_own(f"it-{os.getpid()}", int(os.environ.get("TM_TEST_REPLICAS", "1")))


@pytest.fixture(scope="module")
def edge(running_stack: RunningStack) -> Edge:
    """The session's stack as seen through its edge (Envoy), for a module's tests."""
    from tests.integration.support.edge import Edge

    return Edge(running_stack.state)


@pytest.fixture(scope="module")
def accounts(running_stack: RunningStack) -> Iterator[AccountStack]:
    """The session stack's account service and database, as the test modules use them."""
    from tests.integration.callers import account_stack

    yield from account_stack(running_stack)


@pytest.fixture(scope="module")
def oms(running_stack: RunningStack) -> Iterator[Oms]:
    """The session stack's OMS, called directly with the headers Envoy would add, and its
    database, for a module's tests."""
    from tests.integration.support.orders import connect

    yield from connect(running_stack)


@pytest.fixture(scope="module")
def demo(edge: Edge) -> tuple[str, str]:
    """(access token, account id) of the seeded demo user, whose group is 'standard'."""
    demo = edge.state.demo
    assert demo is not None
    with edge.channel() as channel:
        response = auth_service_pb2_grpc.AuthServiceStub(channel).Login(
            auth_service_pb2.LoginRequest(username=demo.username, password=demo.password),
            timeout=20,
        )
    return response.access_token, demo.account_id


@pytest.fixture
def lps(running_stack: RunningStack) -> Iterator[dict[str, ControlClient]]:
    """The LP simulators' control ports; afterwards each is as the stack started it, so the
    other tests see walking prices again: no pins and, at an LP with an order desk, nothing
    silenced, its standard personality and its fill delay back."""
    ports = Ports(running_stack.state.base_port)
    clients = {lp: ControlClient(ports.lp_control(lp)) for lp in LP_SIMULATORS}
    delays = {lp: client.state()["fill_delay_ms"] for lp, client in clients.items()}
    try:
        yield clients
    finally:
        for lp, client in clients.items():
            client.unpin()
            if delays[lp]:  # "" where the LP has no order desk
                client.clear_personality()
                client.silence(orders=0, status_requests=0)
                client.set_fill_delay(int(delays[lp]))


@pytest.fixture
def stp_lps(lps: dict[str, ControlClient]) -> dict[str, ControlClient]:
    """`lps` with EURUSD pinned at lp-alpha and lp-beta, lp-alpha better on both sides
    (`support.stp.ALPHA` and `BETA`), as the STP modules' tests start."""
    from tests.integration.support.stp import pin_both

    pin_both(lps)
    return lps


@pytest.fixture
def pinned(lps: dict[str, ControlClient]) -> Callable[[str, str], None]:
    """Pins EURUSD's raw price at every LP (the same quote, so neither is preferred); `lps`
    lifts the pins afterwards."""

    def pin(bid: str, ask: str) -> None:
        for lp in lps.values():
            lp.pin("EURUSD", bid, ask)

    return pin

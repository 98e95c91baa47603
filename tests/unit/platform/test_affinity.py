"""Account affinity (services/platform/affinity.py): the account's order of instances is stable
and spread evenly, and the call goes to the first instance that serves; real gRPC servers with
the platform's health service for the fall-over."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]
from prometheus_client import CollectorRegistry

from services.platform.affinity import AccountAffineChannels
from services.platform.affinity import pick
from services.platform.affinity import rendezvous_order
from services.platform.server import RunningServer
from services.platform.server import start_server
from tests.local_ca import LocalCA
from tests.unit.platform.pricing_harness import EDGE_TOKEN
from tests.unit.platform.pricing_harness import RecordingPricing
from tests.unit.platform.pricing_harness import pricing_spec
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc
from tradingmesh.pricing.v1.pricing_service_pb2 import GetQuoteRequest

INSTANCES = [f"127.0.0.1:{17026 + k}" for k in range(4)]
ACCOUNTS = [str(uuid.UUID(int=k * 7919 + 1)) for k in range(20_000)]
S = grpc.ChannelConnectivity


# --- the order of instances ---


def test_an_accounts_order_is_the_same_whatever_the_listing_order_and_the_process() -> None:
    accounts = ACCOUNTS[:200]
    here = {a: rendezvous_order(a, INSTANCES) for a in accounts}
    for a in accounts:
        assert rendezvous_order(a, list(reversed(INSTANCES))) == here[a]
        assert sorted(here[a]) == sorted(INSTANCES)
    # Another process with another string-hash seed (another OMS or account instance) agrees.
    script = (
        "import json, sys\n"
        "from services.platform.affinity import rendezvous_order\n"
        "accounts, instances = json.load(sys.stdin)\n"
        "print(json.dumps({a: rendezvous_order(a, instances) for a in accounts}))\n"
    )
    elsewhere = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps([accounts, INSTANCES]),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert json.loads(elsewhere.stdout) == here


@pytest.mark.parametrize("count", [2, 3, 4])
def test_accounts_spread_evenly_over_the_instances(count: int) -> None:
    instances = INSTANCES[:count]
    firsts = Counter(rendezvous_order(a, instances)[0] for a in ACCOUNTS)
    share = len(ACCOUNTS) / count
    assert set(firsts) == set(instances)
    for instance in instances:
        # Binomial: one standard deviation is under 0.6 % of the accounts here; 3 % is far off.
        assert abs(firsts[instance] - share) < 0.03 * len(ACCOUNTS), firsts


def test_without_an_instance_only_its_accounts_move_each_to_its_next_instance() -> None:
    gone = INSTANCES[1]
    left = [i for i in INSTANCES if i != gone]
    moved = 0
    for a in ACCOUNTS[:5000]:
        before = rendezvous_order(a, INSTANCES)
        after = rendezvous_order(a, left)
        assert after == [i for i in before if i != gone]
        moved += before[0] == gone
    assert 0 < moved < 5000


# --- the pick ---


def _states(**by_instance: grpc.ChannelConnectivity) -> Callable[[str], grpc.ChannelConnectivity]:
    return lambda instance: by_instance[instance]


def test_the_first_instance_not_down_is_picked_and_the_first_when_all_are_down() -> None:
    order = ["a", "b", "c"]
    assert pick(order, _states(a=S.READY, b=S.READY, c=S.READY)) == "a"
    # Connecting or idle is not down: the call waits for it (or queues) rather than moving.
    assert pick(order, _states(a=S.CONNECTING, b=S.READY, c=S.READY)) == "a"
    assert pick(order, _states(a=S.IDLE, b=S.READY, c=S.READY)) == "a"
    assert pick(order, _states(a=S.TRANSIENT_FAILURE, b=S.READY, c=S.READY)) == "b"
    assert pick(order, _states(a=S.TRANSIENT_FAILURE, b=S.SHUTDOWN, c=S.CONNECTING)) == "c"
    down = S.TRANSIENT_FAILURE
    assert pick(order, _states(a=down, b=down, c=down)) == "a"


# --- fall-over with real servers ---

# Mutual TLS as in the stack (ADR 0018): the instances are risk, the caller the OMS.
CA = LocalCA()


@dataclass
class Instance:
    """A server with the platform's health service, on a port that survives its restart."""

    port: int
    servicer: RecordingPricing
    running: RunningServer | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.running = await start_server(
            pricing_spec(self.servicer),
            self.address if self.port else "127.0.0.1:0",
            EDGE_TOKEN,
            certificate=CA.source("risk"),
            registry=CollectorRegistry(),
        )
        self.port = self.running.port

    async def stop(self) -> None:
        assert self.running is not None
        await self.running.stop(grace=0)
        self.running = None

    async def set_health(self, status: int) -> None:
        assert self.running is not None
        await self.running.health.set("", status)


@pytest.fixture
async def two() -> AsyncIterator[tuple[Instance, Instance]]:
    instances = (Instance(0, RecordingPricing()), Instance(0, RecordingPricing()))
    for instance in instances:
        await instance.start()
    try:
        yield instances
    finally:
        for instance in instances:
            if instance.running is not None:
                await instance.stop()


async def _eventually(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.02)


async def test_an_accounts_calls_move_while_its_instance_is_down_and_come_back(
    two: tuple[Instance, Instance],
) -> None:
    first, second = two
    target = f"ipv4:{first.address},{second.address}"
    channels = AccountAffineChannels(
        target,
        EDGE_TOKEN,
        pricing_service_pb2_grpc.PricingServiceStub,
        callee="risk",
        certificate=CA.source("oms"),
    )
    account = next(
        a for a in ACCOUNTS if rendezvous_order(a, channels.instances)[0] == first.address
    )
    quote = GetQuoteRequest(symbol="EURUSD", account_id=account)

    async def calls_reach(instance: Instance) -> None:
        await _eventually(
            lambda: channels.instance_for(account) == instance.address, instance.address
        )
        before = (len(first.servicer.seen), len(second.servicer.seen))
        for _ in range(5):
            await channels.stub_for(account).GetQuote(quote, timeout=5, wait_for_ready=True)
        after = (len(first.servicer.seen), len(second.servicer.seen))
        expected = (5, 0) if instance is first else (0, 5)
        assert (after[0] - before[0], after[1] - before[1]) == expected

    try:
        await calls_reach(first)
        # Not serving (a stopping instance says so first): its accounts move to the next one.
        await first.set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await calls_reach(second)
        await first.set_health(health_pb2.HealthCheckResponse.SERVING)
        await calls_reach(first)
        # Gone, then back on its port.
        await first.stop()
        await calls_reach(second)
        await first.start()
        await calls_reach(first)
    finally:
        await channels.close()


async def test_with_one_instance_every_account_goes_to_it(
    two: tuple[Instance, Instance],
) -> None:
    only, _ = two
    channels = AccountAffineChannels(
        only.address,
        EDGE_TOKEN,
        pricing_service_pb2_grpc.PricingServiceStub,
        callee="risk",
        certificate=CA.source("oms"),
    )
    try:
        assert channels.instances == [only.address]
        for account in ACCOUNTS[:50]:
            assert channels.instance_for(account) == only.address
        await channels.stub_for(ACCOUNTS[0]).GetQuote(
            GetQuoteRequest(symbol="EURUSD", account_id=ACCOUNTS[0]), timeout=5
        )
        assert len(only.servicer.seen) == 1
    finally:
        await channels.close()

"""Load clients for bench.orders: one process sending PlaceOrder or Health/Check through Envoy.

A client process opens its HTTP/2 connections to Envoy once (one per channel) and keeps them for
the whole run; then it runs each phase the parent sends it:

- open loop ("rate"): calls due at a fixed rate (the client's turn in one evenly spaced stream
  of the phase's total rate), sent when due whether or not earlier calls have been answered;
  latency counts from when the call was due (bench.orders_stats.latency_from);
- closed loop ("full"): `concurrency` calls in flight, each sent as soon as the one before it
  is answered; latency counts from the send.

Only calls due (open loop) or sent (closed loop) inside [start, end) are counted; those of the
warm-up before `start` are sent and dropped. Throughput is the answers that arrive inside the
window, divided by its length. After `end` the client waits for its calls in flight, up to the
call deadline. Each order goes to one of the client's own accounts (an account belongs to one
client, so its orders alternate buy and sell in order; bench.orders_stats.order_leg).

Protocol over the pipe: child -> ("ready", None) once its channels are connected; parent ->
("phase", PhaseSpec); child -> ("result", PhaseResult); parent -> ("quit", None).
"""

from __future__ import annotations

import asyncio
import resource
import time
from array import array
from collections import Counter
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from multiprocessing.connection import Connection
from typing import Any
from typing import Literal

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]
from grpc_health.v1 import health_pb2_grpc

from bench.orders_stats import latency_from
from bench.orders_stats import order_leg
from bench.orders_stats import send_time
from tradingmesh.common.v1 import errors_pb2
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.oms.v1 import order_service_pb2_grpc as order_grpc

Kind = Literal["orders", "echo"]
Mode = Literal["rate", "full"]

FILLED = "FILLED"  # the outcome of an order that filled
SERVING = "SERVING"  # the outcome of an echo that answered


@dataclass(frozen=True)
class Account:
    account_id: str
    token: str  # the access token of the account's owner


@dataclass(frozen=True)
class ClientPlan:
    worker: int
    workers: int
    target: str  # Envoy, host:port (h2c)
    channels: int  # HTTP/2 connections to Envoy
    accounts: tuple[Account, ...]  # this client's own accounts
    symbols: tuple[str, ...]
    quantity: str  # lots per order
    run_id: str  # makes client_order_ids unique across runs on one stack
    deadline_seconds: float  # per call
    max_in_flight: int  # open loop: beyond this, a due call is not sent (counted as dropped)


@dataclass(frozen=True)
class PhaseSpec:
    kind: Kind
    mode: Mode
    rate: float  # open loop: calls/s offered by all clients together
    concurrency: int  # closed loop: this client's calls in flight
    warmup_start: float  # epoch seconds
    start: float
    end: float


@dataclass
class PhaseResult:
    worker: int
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))  # every answer
    success_ms: array[float] = field(default_factory=lambda: array("d"))  # FILLED / SERVING
    # The same answers counted from when each call was sent (open loop: the client's own
    # lateness left out; closed loop: the same figures).
    success_from_send_ms: array[float] = field(default_factory=lambda: array("d"))
    send_lag_ms: array[float] = field(default_factory=lambda: array("d"))  # sent - due, or 0
    outcomes: dict[str, int] = field(default_factory=dict)  # of the calls counted
    counted: int = 0  # calls due / sent inside the window
    answered_in_window: int = 0  # answers (any outcome) that arrived inside the window
    succeeded_in_window: int = 0  # FILLED / SERVING answers that arrived inside the window
    dropped: int = 0  # open loop: due but not sent, `max_in_flight` calls were pending
    unfinished: int = 0  # still in flight when the client gave up waiting
    max_in_flight: int = 0
    cpu_seconds: float = 0.0  # this process, from start to end


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _channel(target: str) -> grpc.aio.Channel:
    # A local subchannel pool: each channel is its own HTTP/2 connection to Envoy.
    return grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


Call = Callable[[int], Awaitable[str]]  # a call by its number: its outcome


class _Client:
    def __init__(self, plan: ClientPlan, channels: list[grpc.aio.Channel]) -> None:
        self.plan = plan
        self.orders = [order_grpc.OrderServiceStub(c) for c in channels]
        self.health = [health_pb2_grpc.HealthStub(c) for c in channels]
        self.metadata = [(("authorization", f"Bearer {a.token}"),) for a in plan.accounts]
        self.sequences = [0] * len(plan.accounts)  # orders sent per account, over every phase
        self.numbered = 0  # calls sent, over every phase: the client_order_id

    async def order(self, number: int) -> str:
        plan = self.plan
        index = number % len(plan.accounts)
        buy, symbol = order_leg(self.sequences[index], plan.symbols)
        self.sequences[index] += 1
        self.numbered += 1
        request = market_order(
            plan.accounts[index].account_id,
            f"b{plan.run_id}.{plan.worker}.{self.numbered}",
            buy,
            symbol,
            plan.quantity,
        )
        stub = self.orders[number % len(self.orders)]
        try:
            response = await stub.PlaceOrder(
                request, metadata=self.metadata[index], timeout=plan.deadline_seconds
            )
        except grpc.aio.AioRpcError as error:
            return f"RPC {error.code().name}"
        return order_outcome(response.order)

    async def echo(self, number: int) -> str:
        stub = self.health[number % len(self.health)]
        try:
            response = await stub.Check(
                health_pb2.HealthCheckRequest(), timeout=self.plan.deadline_seconds
            )
        except grpc.aio.AioRpcError as error:
            return f"RPC {error.code().name}"
        if response.status == health_pb2.HealthCheckResponse.SERVING:
            return SERVING
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def market_order(
    account_id: str, client_order_id: str, buy: bool, symbol: str, quantity: str
) -> order_service_pb2.PlaceOrderRequest:
    return order_service_pb2.PlaceOrderRequest(
        account_id=account_id,
        client_order_id=client_order_id,
        symbol=symbol,
        side=types_pb2.SIDE_BUY if buy else types_pb2.SIDE_SELL,
        type=trading_pb2.ORDER_TYPE_MARKET,
        quantity=quantity,
    )


def order_outcome(order: oms_pb2.Order) -> str:
    """FILLED, or the status and reason the order was answered with (e.g. "REJECTED
    INSUFFICIENT_MARGIN")."""
    if order.status == trading_pb2.ORDER_STATUS_FILLED:
        return FILLED
    status = trading_pb2.OrderStatus.Name(order.status).removeprefix("ORDER_STATUS_")
    if not order.status_reason:
        return status
    reason = errors_pb2.ErrorReason.Name(order.status_reason).removeprefix("ERROR_REASON_")
    return f"{status} {reason}"


class _Recorder:
    """Counts one phase's calls in the perf_counter clock (the window converted from epoch)."""

    def __init__(self, plan: ClientPlan, spec: PhaseSpec) -> None:
        offset = time.time() - time.perf_counter()
        self.warmup_start = spec.warmup_start - offset
        self.start = spec.start - offset
        self.end = spec.end - offset
        self.success = FILLED if spec.kind == "orders" else SERVING
        self.result = PhaseResult(plan.worker)
        self.outcomes: Counter[str] = Counter()

    def record(
        self, counted: bool, latency_ms: float, sent: float, answered: float, outcome: str
    ) -> None:
        result = self.result
        succeeded = outcome == self.success
        if self.start <= answered < self.end:
            result.answered_in_window += 1
            result.succeeded_in_window += succeeded
        if not counted:
            return
        self.outcomes[outcome] += 1
        result.latencies_ms.append(latency_ms)
        if succeeded:
            result.success_ms.append(latency_ms)
            result.success_from_send_ms.append((answered - sent) * 1000.0)


async def _open_loop(
    client: _Client, call: Call, spec: PhaseSpec, rec: _Recorder
) -> set[asyncio.Task[Any]]:
    plan = client.plan
    pending: set[asyncio.Task[Any]] = set()

    async def one(number: int, due: float) -> None:
        counted = rec.start <= due < rec.end
        sent = time.perf_counter()
        if counted:
            rec.result.send_lag_ms.append(max(sent - due, 0.0) * 1000.0)
        outcome = await call(number)
        answered = time.perf_counter()
        rec.record(counted, latency_from(due, sent, answered), sent, answered, outcome)

    index = 0
    while True:
        due = send_time(rec.warmup_start, spec.rate, plan.worker, plan.workers, index)
        if due >= rec.end:
            break
        delay = due - time.perf_counter()
        if delay > 0.001:  # the loop sleeps in whole ms: wake up to 1 ms early rather than late
            await asyncio.sleep(delay - 0.001)
        index += 1
        if len(pending) >= plan.max_in_flight:
            if rec.start <= due < rec.end:
                rec.result.dropped += 1
            continue
        task = asyncio.create_task(one(index, due))
        pending.add(task)
        task.add_done_callback(pending.discard)
        rec.result.max_in_flight = max(rec.result.max_in_flight, len(pending))
    return set(pending)


async def _closed_loop(
    client: _Client, call: Call, spec: PhaseSpec, rec: _Recorder
) -> set[asyncio.Task[Any]]:
    numbers = iter(range(1 << 62))

    async def slot() -> None:
        await asyncio.sleep(max(rec.warmup_start - time.perf_counter(), 0))
        while True:
            sent = time.perf_counter()
            if sent >= rec.end:
                return
            outcome = await call(next(numbers))
            answered = time.perf_counter()
            counted = rec.start <= sent < rec.end
            rec.record(counted, (answered - sent) * 1000.0, sent, answered, outcome)

    tasks = {asyncio.create_task(slot()) for _ in range(spec.concurrency)}
    rec.result.max_in_flight = spec.concurrency
    await asyncio.sleep(max(rec.end - time.perf_counter(), 0))
    return {task for task in tasks if not task.done()}


async def run_phase(client: _Client, spec: PhaseSpec) -> PhaseResult:
    rec = _Recorder(client.plan, spec)
    call: Call = client.order if spec.kind == "orders" else client.echo
    cpu_start: list[float] = []

    async def mark_start() -> None:
        await asyncio.sleep(max(rec.start - time.perf_counter(), 0))
        cpu_start.append(_cpu())

    marker = asyncio.create_task(mark_start())
    loop = _open_loop if spec.mode == "rate" else _closed_loop
    pending = await loop(client, call, spec, rec)
    await asyncio.sleep(max(rec.end - time.perf_counter(), 0))
    await marker
    cpu_end = _cpu()
    if pending:
        _, still = await asyncio.wait(pending, timeout=client.plan.deadline_seconds + 1.0)
        rec.result.unfinished = len(still)
        for task in still:
            task.cancel()
    result = rec.result
    result.cpu_seconds = cpu_end - cpu_start[0]
    result.outcomes = dict(rec.outcomes)
    result.counted = sum(rec.outcomes.values())
    return result


async def _main(plan: ClientPlan, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    channels = [_channel(plan.target) for _ in range(plan.channels)]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), timeout=30)
        client = _Client(plan, channels)
        conn.send(("ready", None))
        while True:
            kind, spec = await loop.run_in_executor(None, conn.recv)
            if kind == "quit":
                return
            conn.send(("result", await run_phase(client, spec)))
    finally:
        for channel in channels:
            await channel.close()


def run(plan: ClientPlan, conn: Connection) -> None:
    """The client process's entry point (multiprocessing, spawn)."""
    try:
        asyncio.run(_main(plan, conn))
    finally:
        conn.close()

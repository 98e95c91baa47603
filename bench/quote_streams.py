"""Quote-stream clients for bench.market_data: one process holding many StreamQuotes calls.

Each client process opens its share of the streams through Envoy over a few HTTP/2 connections
(one per channel), reports how many opened, then records every tick received inside the
measurement window the parent sends it: its latency (receive time minus the tick's
`time_unix_ms`, when pricing's engine made the price; same machine clock), and the sizes of the
messages. The first response of a stream is the snapshot of the latest prices, not a live tick,
and is not counted.

Protocol over the pipe: child -> ("open", OpenReport); parent -> ("window", start, end) in epoch
seconds; parent -> ("stop",) once it has read its own counters after the window (the streams stay
open until then); child -> ("result", StreamResult).
"""

from __future__ import annotations

import asyncio
import random
import resource
import time
from array import array
from collections import Counter
from dataclasses import dataclass
from dataclasses import field
from multiprocessing.connection import Connection

import grpc
import grpc.aio

from tradingmesh.pricing.v1 import pricing_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc as pricing_grpc


@dataclass(frozen=True)
class StreamPlan:
    worker: int
    target: str  # Envoy, host:port
    ca_file: str | None  # TLS to Envoy with this CA; None: plaintext h2c
    token: str
    account_id: str
    symbols: tuple[str, ...]
    streams: int
    channels: int
    opens_per_second: float
    open_timeout: float  # seconds for every stream to open (retries on RESOURCE_EXHAUSTED)


@dataclass(frozen=True)
class OpenReport:
    worker: int
    opened: int
    failed: int
    retries: int  # opens refused by the edge's rate limit, then retried
    errors: dict[str, int]
    seconds: float


@dataclass
class StreamResult:
    worker: int
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))
    ticks: int = 0
    responses: int = 0
    stale_marks: int = 0
    response_bytes: int = 0  # serialized StreamQuotesResponse messages
    tick_bytes: int = 0  # serialized QuoteTick messages alone
    ticks_per_stream: list[int] = field(default_factory=list)
    broken: int = 0  # streams that failed after opening
    errors: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # this process, during the window


class _Tracker:
    def __init__(self, plan: StreamPlan) -> None:
        self.plan = plan
        self.window = (float("inf"), float("inf"))
        self.result = StreamResult(plan.worker, ticks_per_stream=[0] * plan.streams)
        self.opened = 0
        self.failed = 0
        self.retries = 0
        self.errors: Counter[str] = Counter()

    def on_response(self, index: int, response: pricing_service_pb2.StreamQuotesResponse) -> None:
        now = time.time()
        start, end = self.window
        if not start <= now < end:
            return
        now_ms = now * 1000.0
        result = self.result
        result.responses += 1
        result.response_bytes += response.ByteSize()
        result.stale_marks += len(response.stale_symbols)
        for tick in response.quotes:
            result.latencies_ms.append(now_ms - tick.time_unix_ms)
            result.tick_bytes += tick.ByteSize()
        result.ticks += len(response.quotes)
        result.ticks_per_stream[index] += len(response.quotes)


def _channel(plan: StreamPlan) -> grpc.aio.Channel:
    # A local subchannel pool: each channel is its own HTTP/2 connection to Envoy.
    options = [("grpc.use_local_subchannel_pool", 1)]
    if plan.ca_file is None:
        return grpc.aio.insecure_channel(plan.target, options=options)
    with open(plan.ca_file, "rb") as ca:
        credentials = grpc.ssl_channel_credentials(ca.read())
    return grpc.aio.secure_channel(plan.target, credentials, options=options)


async def _stream(
    index: int,
    stub: pricing_grpc.PricingServiceAsyncStub,
    plan: StreamPlan,
    tracker: _Tracker,
    open_deadline: float,
) -> None:
    request = pricing_service_pb2.StreamQuotesRequest(
        account_id=plan.account_id, symbols=list(plan.symbols)
    )
    metadata = (("authorization", f"Bearer {plan.token}"),)
    backoff = 0.2
    while True:
        opened = False
        try:
            async for response in stub.StreamQuotes(request, metadata=metadata):
                if opened:
                    tracker.on_response(index, response)
                else:  # the snapshot
                    opened = True
                    tracker.opened += 1
            tracker.errors["ENDED_BY_SERVER"] += 1
        except grpc.aio.AioRpcError as error:
            code = error.code()
            limited = code == grpc.StatusCode.RESOURCE_EXHAUSTED
            if not opened and limited and time.monotonic() < open_deadline:
                tracker.retries += 1
                await asyncio.sleep(backoff * (1 + random.random()))
                backoff = min(backoff * 2, 2.0)
                continue
            tracker.errors[f"{code.name}: {(error.details() or '')[:80]}"] += 1
        if opened:
            tracker.result.broken += 1
        else:
            tracker.failed += 1
        return


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _main(plan: StreamPlan, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    tracker = _Tracker(plan)
    channels = [_channel(plan) for _ in range(plan.channels)]
    stubs = [pricing_grpc.PricingServiceStub(channel) for channel in channels]
    began = time.monotonic()
    open_deadline = began + plan.open_timeout
    tasks = []
    for index in range(plan.streams):
        stub = stubs[index % len(stubs)]
        tasks.append(asyncio.create_task(_stream(index, stub, plan, tracker, open_deadline)))
        await asyncio.sleep(1 / plan.opens_per_second)
    while tracker.opened + tracker.failed < plan.streams and time.monotonic() < open_deadline:
        await asyncio.sleep(0.1)
    open_errors = Counter(tracker.errors)
    conn.send(
        (
            "open",
            OpenReport(
                plan.worker,
                tracker.opened,
                plan.streams - tracker.opened,
                tracker.retries,
                dict(open_errors),
                round(time.monotonic() - began, 2),
            ),
        )
    )
    _, start, end = await loop.run_in_executor(None, conn.recv)
    tracker.window = (start, end)
    await asyncio.sleep(max(start - time.time(), 0))
    cpu_start = _cpu()
    await asyncio.sleep(max(end - time.time(), 0))
    tracker.result.cpu_seconds = _cpu() - cpu_start
    await loop.run_in_executor(None, conn.recv)  # "stop": the parent has read its counters
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    tracker.result.errors = dict(tracker.errors - open_errors)  # those after the opening
    conn.send(("result", tracker.result))


def run(plan: StreamPlan, conn: Connection) -> None:
    """The client process's entry point (multiprocessing, spawn)."""
    try:
        asyncio.run(_main(plan, conn))
    finally:
        conn.close()

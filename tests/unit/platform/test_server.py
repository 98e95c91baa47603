"""serve(): health, /metrics, hooks and graceful stop on SIGTERM; run(): failing fast."""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import socket
import urllib.request
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]
from grpc_health.v1 import health_pb2_grpc
from prometheus_client import CollectorRegistry

from services.platform.internal import internal_channel
from services.platform.request_id import set_request_id
from services.platform.server import Registration
from services.platform.server import ServiceSpec
from services.platform.server import run
from services.platform.server import serve
from services.platform.server import start_server
from services.platform.settings import Settings
from tests.unit.platform.pricing_harness import EDGE_TOKEN
from tests.unit.platform.pricing_harness import PRICING_SERVICE
from tests.unit.platform.pricing_harness import Harness
from tests.unit.platform.pricing_harness import RecordingPricing
from tests.unit.platform.pricing_harness import edge_metadata
from tests.unit.platform.pricing_harness import pricing_spec
from tradingmesh.pricing.v1 import pricing_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc
from tradingmesh.pricing.v1.pricing_service_pb2 import GetQuoteRequest

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
QUOTE = GetQuoteRequest(symbol="EURUSD", account_id="6f1c2a5e-8d0b-4b7e-9a51-2f0f5c3d7e11")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _settings() -> Settings:
    return Settings.from_env(
        {
            "TM_SERVICE": "pricing",
            "TM_GRPC_ADDR": f"127.0.0.1:{_free_port()}",
            "TM_METRICS_ADDR": f"127.0.0.1:{_free_port()}",
            "TM_VAULT_ADDR": "http://127.0.0.1:17004",
            "TM_VAULT_TOKEN": "unused-here",
            "TM_DATABASE_HOST": "127.0.0.1",
            "TM_DATABASE_PORT": "17000",
            "TM_DATABASE_NAME": "tradingmesh",
            "TM_REDIS_HOST": "127.0.0.1",
            "TM_REDIS_PORT": "17001",
            "TM_NATS_URL": "nats://127.0.0.1:17002",
        }
    )


class Serving:
    """A `serve()` running in a task, with a channel to it and a log of its hooks."""

    def __init__(self) -> None:
        self.settings = _settings()
        self.servicer = RecordingPricing()
        self.hooks: list[str] = []
        self.registry = CollectorRegistry()
        self.channel = grpc.aio.insecure_channel(str(self.settings.grpc_addr))

        async def started() -> None:
            self.hooks.append("start")

        async def stopped() -> None:
            self.hooks.append("stop")

        spec = pricing_spec(self.servicer)
        self.spec = ServiceSpec(spec.name, spec.registrations, [started], [stopped])
        self.task = asyncio.create_task(
            serve(
                self.spec,
                self.settings,
                EDGE_TOKEN,
                certificate=None,
                grace=2.0,
                registry=self.registry,
            )
        )

    @property
    def health(self) -> health_pb2_grpc.HealthStub:
        return health_pb2_grpc.HealthStub(self.channel)

    async def wait_until_serving(self) -> None:
        await asyncio.wait_for(self.channel.channel_ready(), timeout=10)


@pytest.fixture
async def serving() -> AsyncIterator[Serving]:
    running = Serving()
    try:
        await running.wait_until_serving()
        yield running
    finally:
        if not running.task.done():
            os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(running.task, timeout=10)
        await running.channel.close()


async def test_serve_reports_every_service_healthy_after_the_start_hooks(
    serving: Serving,
) -> None:
    overall = await serving.health.Check(health_pb2.HealthCheckRequest(service=""))
    pricing = await serving.health.Check(health_pb2.HealthCheckRequest(service=PRICING_SERVICE))

    assert (overall.status, pricing.status) == (SERVING, SERVING)
    assert serving.hooks == ["start"]


async def test_serve_exposes_prometheus_metrics(serving: Serving) -> None:
    stub = pricing_service_pb2_grpc.PricingServiceStub(serving.channel)
    await stub.GetQuote(QUOTE, metadata=edge_metadata())
    url = f"http://{serving.settings.metrics_addr}/metrics"

    with await asyncio.to_thread(urllib.request.urlopen, url, timeout=5) as response:
        body = response.read().decode()

    assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="GetQuote"' in body


async def test_sigterm_turns_health_not_serving_then_stops_and_runs_the_stop_hooks(
    serving: Serving,
) -> None:
    watch = serving.health.Watch(health_pb2.HealthCheckRequest(service=PRICING_SERVICE))
    assert (await watch.read()).status == SERVING

    os.kill(os.getpid(), signal.SIGTERM)

    assert (await watch.read()).status == NOT_SERVING
    await asyncio.wait_for(serving.task, timeout=10)
    assert serving.hooks == ["start", "stop"]


async def test_calls_in_flight_at_sigterm_finish_within_the_grace_period(
    serving: Serving,
) -> None:
    serving.servicer.delay = 0.5
    stub = pricing_service_pb2_grpc.PricingServiceStub(serving.channel)
    call = asyncio.ensure_future(stub.GetQuote(QUOTE, metadata=edge_metadata()))
    while not serving.servicer.seen:
        await asyncio.sleep(0.01)

    os.kill(os.getpid(), signal.SIGTERM)

    response = await asyncio.wait_for(call, timeout=10)
    assert response.quote.symbol == "EURUSD"
    await asyncio.wait_for(serving.task, timeout=10)


async def test_unknown_service_name_is_refused_at_start() -> None:
    spec = ServiceSpec(
        "pricing",
        [
            Registration(
                pricing_service_pb2_grpc.add_PricingServiceServicer_to_server,
                RecordingPricing(),
                "tradingmesh.pricing.v1.PriceService",
            )
        ],
    )

    with pytest.raises(ValueError, match="PriceService"):
        await start_server(
            spec, "127.0.0.1:0", EDGE_TOKEN, certificate=None, registry=CollectorRegistry()
        )


async def test_internal_channel_carries_the_edge_token_and_the_request_id(
    harness: Harness,
) -> None:
    channel = internal_channel(
        f"127.0.0.1:{harness.running.port}", EDGE_TOKEN, callee="pricing", plaintext=True
    )
    stub = pricing_service_pb2_grpc.PricingServiceStub(channel)

    async def call_while_serving_request_7() -> pricing_service_pb2.GetQuoteResponse:
        set_request_id("req-7")
        return await stub.GetQuote(QUOTE)

    try:
        # A context of its own, as a gRPC call being served has.
        response = await asyncio.create_task(
            call_while_serving_request_7(), context=contextvars.Context()
        )
    finally:
        await channel.close()

    assert response.quote.symbol == "EURUSD"
    assert harness.servicer.seen[0].request_id == "req-7"


# --- run(): the main() of a service ---


def _never_called(settings: Settings, vault: object) -> ServiceSpec:
    raise AssertionError("the spec must not be built")


def test_run_with_bad_settings_exits_2_with_one_line(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("TM_SERVICE", "pricing")

    with pytest.raises(SystemExit) as exited:
        run(_never_called)

    assert exited.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: invalid settings: ")
    assert "TM_GRPC_ADDR is missing" in line


def test_run_when_vault_is_unreachable_exits_1_without_the_token(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings()
    for name, value in {
        "TM_SERVICE": "pricing",
        "TM_GRPC_ADDR": str(settings.grpc_addr),
        "TM_METRICS_ADDR": str(settings.metrics_addr),
        "TM_VAULT_ADDR": f"http://127.0.0.1:{_free_port()}",
        "TM_VAULT_TOKEN": "s.very-secret-token",
        "TM_DATABASE_HOST": "127.0.0.1",
        "TM_DATABASE_PORT": "17000",
        "TM_DATABASE_NAME": "tradingmesh",
        "TM_REDIS_HOST": "127.0.0.1",
        "TM_REDIS_PORT": "17001",
        "TM_NATS_URL": "nats://127.0.0.1:17002",
    }.items():
        environment.setenv(name, value)

    with pytest.raises(SystemExit) as exited:
        run(_never_called)

    assert exited.value.code == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "Vault is unreachable" in line
    assert "very-secret-token" not in line

"""A pricing servicer whose handlers record what they saw, served by the platform on a real
grpc.aio server on 127.0.0.1, and a real client channel to it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Never

import grpc
import grpc.aio
from prometheus_client import CollectorRegistry

from services.platform.identity import Caller
from services.platform.identity import current_caller
from services.platform.request_id import current_request_id
from services.platform.secrets import Secret
from services.platform.server import Registration
from services.platform.server import RunningServer
from services.platform.server import ServiceSpec
from services.platform.server import start_server
from tradingmesh.pricing.v1 import pricing_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc

EDGE_TOKEN = Secret("edge-token-for-tests")
ACCOUNT_ID = str(uuid.uuid4())
PRICING_SERVICE = "tradingmesh.pricing.v1.PricingService"


@dataclass
class Seen:
    """One handler run: the method, and the caller and request id it saw."""

    method: str
    caller: Caller
    request_id: str | None


@dataclass
class RecordingPricing(pricing_service_pb2_grpc.PricingServiceServicer):
    """GetQuote (unary) and StreamQuotes (server streaming) that record every run.

    `fail_with` makes the handlers raise it (StreamQuotes after its first response); `delay`
    makes GetQuote take that long, so that calls overlap.
    """

    seen: list[Seen] = field(default_factory=list)
    fail_with: BaseException | None = None
    delay: float = 0.0

    def _record(self, method: str) -> None:
        self.seen.append(Seen(method, current_caller(), current_request_id()))

    async def GetQuote(  # noqa: N802  # the contract's name
        self, request: pricing_service_pb2.GetQuoteRequest, context: Any
    ) -> pricing_service_pb2.GetQuoteResponse:
        self._record("GetQuote")
        await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            raise self.fail_with
        return pricing_service_pb2.GetQuoteResponse(
            quote=pricing_pb2.Quote(symbol=request.symbol, bid="1.08512", ask="1.08524")
        )

    async def StreamQuotes(  # noqa: N802
        self, request: pricing_service_pb2.StreamQuotesRequest, context: Any
    ) -> AsyncIterator[pricing_service_pb2.StreamQuotesResponse]:
        self._record("StreamQuotes")
        for symbol in request.symbols:
            yield pricing_service_pb2.StreamQuotesResponse(
                quotes=[
                    pricing_service_pb2.QuoteTick(symbol=symbol, bid_units=108512, price_scale=5)
                ]
            )
            if self.fail_with is not None:
                raise self.fail_with

    # Not served, as in a service that has not implemented them yet (UNIMPLEMENTED).

    async def ListInstruments(self, request: Any, context: Any) -> Never:  # noqa: N802
        raise NotImplementedError

    async def GetInstrument(self, request: Any, context: Any) -> Never:  # noqa: N802
        raise NotImplementedError

    async def ListQuotes(self, request: Any, context: Any) -> Never:  # noqa: N802
        raise NotImplementedError

    async def GetCandles(self, request: Any, context: Any) -> Never:  # noqa: N802
        raise NotImplementedError


@dataclass
class Harness:
    servicer: RecordingPricing
    running: RunningServer
    channel: grpc.aio.Channel
    registry: CollectorRegistry

    @property
    def stub(self) -> pricing_service_pb2_grpc.PricingServiceAsyncStub:
        return pricing_service_pb2_grpc.PricingServiceStub(self.channel)


def pricing_spec(servicer: RecordingPricing) -> ServiceSpec:
    return ServiceSpec(
        name="pricing",
        registrations=[
            Registration(
                pricing_service_pb2_grpc.add_PricingServiceServicer_to_server,
                servicer,
                PRICING_SERVICE,
            )
        ],
    )


def edge_metadata(*extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    """What Envoy adds to every call it forwards: the edge token (and identity headers)."""
    return (("x-tm-edge-token", EDGE_TOKEN.reveal()), *extra)


async def start_harness() -> Harness:
    """Starts the server on a free port; `stop_harness` stops it."""
    servicer = RecordingPricing()
    registry = CollectorRegistry()
    running = await start_server(
        pricing_spec(servicer), "127.0.0.1:0", EDGE_TOKEN, certificate=None, registry=registry
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    return Harness(servicer, running, channel, registry)


async def stop_harness(harness: Harness) -> None:
    await harness.channel.close()
    await harness.running.stop(grace=0)

"""Mutual TLS of the platform's servers and internal channels (ADR 0018), against a real
grpc.aio server on 127.0.0.1 with certificates of the tests' own CA."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]
from grpc_health.v1 import health_pb2_grpc
from prometheus_client import CollectorRegistry

from services.platform.callers import ACCEPTED_CALLERS
from services.platform.callers import accepted_callers
from services.platform.certificates import Issued
from services.platform.internal import RenewingChannel
from services.platform.internal import internal_channel
from services.platform.server import RunningServer
from services.platform.server import start_server
from services.platform.tls import channel_credentials
from services.platform.tls import target_name_options
from tests.local_ca import LocalCA
from tests.local_ca import LocalCertificateSource
from tests.local_ca import served_certificate
from tests.local_ca import write_files
from tests.unit.platform.pricing_harness import ACCOUNT_ID
from tests.unit.platform.pricing_harness import EDGE_TOKEN
from tests.unit.platform.pricing_harness import RecordingPricing
from tests.unit.platform.pricing_harness import pricing_spec
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import details_of
from tradingmesh.pricing.v1 import pricing_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc

QUOTE = pricing_service_pb2.GetQuoteRequest(symbol="EURUSD", account_id=ACCOUNT_ID)
EDGE = (("x-tm-edge-token", EDGE_TOKEN.reveal()),)


@dataclass
class PeerRecordingPricing(RecordingPricing):
    """Records the serial of each caller's certificate too."""

    serials: list[int] = field(default_factory=list)

    async def GetQuote(  # noqa: N802
        self, request: pricing_service_pb2.GetQuoteRequest, context: Any
    ) -> pricing_service_pb2.GetQuoteResponse:
        (pem,) = context.auth_context()["x509_pem_cert"]
        self.serials.append(x509.load_pem_x509_certificate(pem).serial_number)
        return await super().GetQuote(request, context)

    async def StreamQuotes(  # noqa: N802
        self, request: pricing_service_pb2.StreamQuotesRequest, context: Any
    ) -> AsyncIterator[pricing_service_pb2.StreamQuotesResponse]:
        """One response per symbol, `stream_gap` seconds apart."""
        for symbol in request.symbols:
            yield pricing_service_pb2.StreamQuotesResponse(
                quotes=[pricing_service_pb2.QuoteTick(symbol=symbol, bid_units=1, price_scale=5)]
            )
            await asyncio.sleep(self.stream_gap)

    stream_gap: float = 0.0


@dataclass
class Risk:
    """A server with risk's certificate (pricing's servicer: what it serves does not matter)."""

    ca: LocalCA
    source: LocalCertificateSource
    servicer: PeerRecordingPricing
    running: RunningServer

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.running.port}"


@pytest.fixture
async def risk() -> AsyncIterator[Risk]:
    ca = LocalCA()
    source = ca.source("risk")
    servicer = PeerRecordingPricing()
    running = await start_server(
        pricing_spec(servicer),
        "127.0.0.1:0",
        EDGE_TOKEN,
        certificate=source,
        registry=CollectorRegistry(),
    )
    try:
        yield Risk(ca, source, servicer, running)
    finally:
        await running.stop(0)


def _channel(risk: Risk, issued: Issued, name: str = "risk") -> grpc.aio.Channel:
    return grpc.aio.secure_channel(
        risk.address, channel_credentials(issued), options=target_name_options(name)
    )


async def _quote(channel: grpc.aio.Channel) -> pricing_service_pb2.GetQuoteResponse:
    stub = pricing_service_pb2_grpc.PricingServiceStub(channel)
    response: pricing_service_pb2.GetQuoteResponse = await stub.GetQuote(
        QUOTE, metadata=EDGE, timeout=5
    )
    return response


# ---- the table -------------------------------------------------------------------------------


def test_every_service_accepts_the_edge_and_the_operator_and_only_its_real_callers() -> None:
    assert set(ACCEPTED_CALLERS) == {
        "account",
        "pricing",
        "oms",
        "risk",
        "reporting",
        "notification",
    }
    for accepted in ACCEPTED_CALLERS.values():
        assert {"edge", "operator"} <= accepted
    assert accepted_callers("risk") == {"edge", "operator", "oms", "account"}
    assert accepted_callers("oms") == {"edge", "operator", "risk"}
    assert accepted_callers("reporting") == {"edge", "operator", "notification"}
    assert accepted_callers("account") == {"edge", "operator"}
    # Infrastructure identities call no service.
    for accepted in ACCEPTED_CALLERS.values():
        assert not accepted & {"postgres", "redis", "nats", "lp-alpha", "lp-beta"}


def test_an_unknown_service_is_named() -> None:
    with pytest.raises(KeyError, match="risky"):
        accepted_callers("risky")


# ---- the server ------------------------------------------------------------------------------


async def test_an_accepted_certificate_is_served(risk: Risk) -> None:
    for caller in ("operator", "edge", "oms", "account"):
        async with _channel(risk, risk.ca.issue(caller)) as channel:
            assert (await _quote(channel)).quote.symbol == "EURUSD"


async def test_a_certificate_the_service_does_not_accept_is_permission_denied(
    risk: Risk,
) -> None:
    async with _channel(risk, risk.ca.issue("pricing")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _quote(channel)
        # Health answers any certificate of the CA.
        health = health_pb2_grpc.HealthStub(channel)
        response = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "risk does not accept calls from the certificate of 'pricing'" in str(
        refused.value.details()
    )
    details = details_of(refused.value)
    assert details is not None
    assert details.reason == ErrorReason.ERROR_REASON_PERMISSION_DENIED
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    assert risk.servicer.seen == []


async def test_no_client_certificate_or_another_cas_is_refused_at_the_handshake(
    risk: Risk,
) -> None:
    without = grpc.ssl_channel_credentials(root_certificates=risk.ca.ca_pem)
    async with grpc.aio.secure_channel(
        risk.address, without, options=target_name_options("risk")
    ) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as no_certificate:
            await _quote(channel)
    other = LocalCA("another CA").issue("operator")
    foreign = grpc.ssl_channel_credentials(
        root_certificates=risk.ca.ca_pem,  # trusts the server: only the client is foreign
        private_key=other.key_pem.reveal().encode(),
        certificate_chain=other.certificate_pem,
    )
    async with grpc.aio.secure_channel(
        risk.address, foreign, options=target_name_options("risk")
    ) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as another_ca:
            await _quote(channel)
    async with grpc.aio.insecure_channel(risk.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as plaintext:
            await _quote(channel)
    assert no_certificate.value.code() == grpc.StatusCode.UNAVAILABLE
    assert another_ca.value.code() == grpc.StatusCode.UNAVAILABLE
    assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
    assert risk.servicer.seen == []


async def test_the_client_refuses_a_server_certificate_naming_another_service(
    risk: Risk,
) -> None:
    async with _channel(risk, risk.ca.issue("oms"), name="oms") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _quote(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert risk.servicer.seen == []


def served_serial(address: str, client: Issued) -> int:
    """The serial of the certificate the server presents in a new TLS handshake, asked as
    `client`, trusting `client`'s CA."""
    with tempfile.TemporaryDirectory() as directory:
        files = [Path(directory) / name for name in ("c.pem", "k.pem", "ca.pem")]
        write_files(client, *files)
        return served_certificate(address, *files).serial_number


def _serial(issued: Issued) -> int:
    return x509.load_pem_x509_certificate(issued.certificate_pem).serial_number


async def test_a_renewed_server_certificate_is_served_from_the_next_handshake(
    risk: Risk,
) -> None:
    operator = risk.ca.issue("operator")
    first = _serial(risk.source.current)
    async with _channel(risk, operator) as channel:
        await _quote(channel)  # a connection made before the renewal
        assert await asyncio.to_thread(served_serial, risk.address, operator) == (first)
        renewed = _serial(await risk.source.renew())
        assert renewed != first
        served = await asyncio.to_thread(served_serial, risk.address, operator)
        assert served == renewed
        # The connection of before still works.
        await _quote(channel)


# ---- the internal channels -------------------------------------------------------------------


async def test_an_internal_channel_presents_its_certificate_and_checks_the_callees(
    risk: Risk,
) -> None:
    oms = risk.ca.source("oms")
    channel = internal_channel(risk.address, EDGE_TOKEN, callee="risk", certificate=oms)
    try:
        await _quote(channel)
    finally:
        await channel.close()
    assert risk.servicer.serials == [_serial(oms.current)]
    wrong = internal_channel(risk.address, EDGE_TOKEN, callee="oms", certificate=oms)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _quote(wrong)
    finally:
        await wrong.close()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_after_a_renewal_new_calls_present_the_new_certificate_and_calls_in_flight_end(
    risk: Risk,
) -> None:
    oms = risk.ca.source("oms")
    channel = internal_channel(risk.address, EDGE_TOKEN, callee="risk", certificate=oms)
    assert isinstance(channel, RenewingChannel)
    stub = pricing_service_pb2_grpc.PricingServiceStub(channel)  # made once, kept
    try:
        await stub.GetQuote(QUOTE, timeout=5)
        old = channel.current_generation
        risk.servicer.delay = 1.0
        in_flight = asyncio.ensure_future(stub.GetQuote(QUOTE, timeout=10))
        await asyncio.sleep(0.2)
        renewed = await oms.renew()
        for _ in range(100):
            if channel.switches:
                break
            await asyncio.sleep(0.02)
        assert channel.switches == 1
        risk.servicer.delay = 0.0
        await stub.GetQuote(QUOTE, timeout=5)
        # The old channel stays open for the call it carries, which ends normally.
        assert old.channel.get_state() != grpc.ChannelConnectivity.SHUTDOWN
        assert (await in_flight).quote.symbol == "EURUSD"
        await asyncio.sleep(0.1)
        assert old.active == 0
    finally:
        await channel.close()
    first, during, after = risk.servicer.serials
    assert first == during != after == _serial(renewed)


async def test_a_stream_open_across_a_renewal_goes_on_to_its_end(risk: Risk) -> None:
    oms = risk.ca.source("oms")
    channel = internal_channel(risk.address, EDGE_TOKEN, callee="risk", certificate=oms)
    assert isinstance(channel, RenewingChannel)
    stub = pricing_service_pb2_grpc.PricingServiceStub(channel)
    risk.servicer.stream_gap = 0.3
    symbols = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"]
    try:
        stream = stub.StreamQuotes(
            pricing_service_pb2.StreamQuotesRequest(account_id=ACCOUNT_ID, symbols=symbols),
            timeout=10,
        )
        first = await stream.read()
        assert isinstance(first, pricing_service_pb2.StreamQuotesResponse)
        received = [first.quotes[0].symbol]
        old = channel.current_generation
        await oms.renew()
        while not channel.switches:
            await asyncio.sleep(0.02)
        async for response in stream:
            received.extend(tick.symbol for tick in response.quotes)
        await asyncio.sleep(0.1)
        assert old.active == 0
        assert old.channel.get_state() == grpc.ChannelConnectivity.SHUTDOWN
    finally:
        await channel.close()
    assert received == symbols


async def test_a_renewal_before_the_last_one_switched_replaces_it(risk: Risk) -> None:
    oms = risk.ca.source("oms")
    channel = internal_channel(risk.address, EDGE_TOKEN, callee="risk", certificate=oms)
    assert isinstance(channel, RenewingChannel)
    stub = pricing_service_pb2_grpc.PricingServiceStub(channel)
    try:
        await oms.renew()
        latest = await oms.renew()  # at once: the first renewal's channel is dropped unused
        for _ in range(100):
            if channel.switches:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        await stub.GetQuote(QUOTE, timeout=5)
    finally:
        await channel.close()
    assert channel.switches == 1
    assert risk.servicer.serials == [_serial(latest)]


async def test_a_closed_channel_ignores_later_renewals(risk: Risk) -> None:
    oms = risk.ca.source("oms")
    channel = internal_channel(risk.address, EDGE_TOKEN, callee="risk", certificate=oms)
    assert isinstance(channel, RenewingChannel)
    await channel.close()
    await oms.renew()
    await asyncio.sleep(0.05)
    assert channel.switches == 0


def test_an_internal_channel_names_a_service_of_the_platform() -> None:
    with pytest.raises(KeyError, match="riskk"):
        internal_channel("127.0.0.1:1", EDGE_TOKEN, callee="riskk", plaintext=True)

"""Pricing as the tests read it: instrument specifications, the quotes a group gets, and the
pricing events on JetStream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import grpc

from tests.integration.events import Login
from tests.integration.events import Message
from tests.integration.events import events_on
from tests.integration.events import published
from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.waiting import eventually
from tradingmesh.account.v1 import auth_service_pb2 as auth_pb2
from tradingmesh.account.v1 import auth_service_pb2_grpc as auth_grpc
from tradingmesh.pricing.v1 import pricing_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc as pricing_grpc

T = TypeVar("T")


def events(edge: Edge, subject: str, kind: Callable[[bytes], T]) -> list[tuple[Message, T]]:
    """Every event on `subject` inside the PRICING stream's envelopes: (its message, event)."""
    known = edge.admin_secrets().nats
    login = Login(
        f"nats://127.0.0.1:{edge.ports.nats}",
        known.username,
        known.password.reveal(),
        edge.state.endpoints.ca_file,
    )
    messages = asyncio.run(published(login, "PRICING", "pricing.instrument.>"))
    return [(message, kind(event.data)) for message, event in events_on(messages, subject)]


STANDARD_MARKUP_POINTS = 10  # stack/seed.py: the demo account's group


def get_quote(
    pricing: pricing_grpc.PricingServiceStub, demo: tuple[str, str], symbol: str = "EURUSD"
) -> pricing_pb2.Quote:
    token, account = demo
    deadline = time.monotonic() + 30
    while True:  # the first prices arrive a moment after the stack is healthy
        try:
            response = pricing.GetQuote(
                pricing_service_pb2.GetQuoteRequest(symbol=symbol, account_id=account),
                metadata=bearer(token),
                timeout=10,
            )
            return response.quote
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def demo_instruments(edge: Edge) -> list[pricing_pb2.Instrument]:
    """The instruments the demo account is offered, as the Python SDK lists them through the
    edge (what the other languages' clients are checked against)."""
    demo = edge.state.demo
    assert demo is not None
    with edge.channel() as channel:
        login = auth_grpc.AuthServiceStub(channel).Login(
            auth_pb2.LoginRequest(username=demo.username, password=demo.password), timeout=20
        )
        listed = pricing_grpc.PricingServiceStub(channel).ListInstruments(
            pricing_service_pb2.ListInstrumentsRequest(account_id=demo.account_id, page_size=500),
            metadata=bearer(login.access_token),
            timeout=20,
        )
    return list(listed.instruments)


def offered_instrument(
    pricing: pricing_grpc.PricingServiceStub,
    token: tuple[tuple[str, str]],
    account_id: str,
    symbol: str,
) -> pricing_pb2.Instrument:
    """The instrument as a client of the account reads it, once pricing offers it to the
    account (NOT_FOUND while the account's or the offer's events are on their way)."""

    def offered() -> pricing_pb2.Instrument | None:
        try:
            response = pricing.GetInstrument(
                pricing_service_pb2.GetInstrumentRequest(symbol=symbol, account_id=account_id),
                metadata=token,
                timeout=10,
            )
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return None
        found: pricing_pb2.Instrument = response.instrument
        return found

    instrument: pricing_pb2.Instrument = eventually(
        offered, 20, f"{symbol} offered to {account_id}"
    )
    return instrument

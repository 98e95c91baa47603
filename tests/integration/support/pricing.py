"""Pricing as the tests read it: instrument specifications, the quotes a group gets, and the
pricing events on JetStream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import grpc

from tests.integration.events import Login, Message, events_on, published
from tests.integration.support.edge import Edge, bearer
from tradingmesh.pricing.v1 import (
    pricing_pb2,
    pricing_service_pb2,
)
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

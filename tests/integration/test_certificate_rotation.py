"""`tradingmesh certs rotate` during trading (issue #19, ADR 0018): every certificate the stack
wrote to files (Envoy's, PostgreSQL's, Redis's, NATS's, the LP simulators') is renewed while
orders flow through the edge and a quote stream is open; no order fails, the stream keeps going,
and new connections to the edge get its new certificate (the servers' own reload is tested in
test_infrastructure_tls; the LP simulators take theirs at their next start)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509

from stack.orchestrator import rotate_certificates
from tests.integration.callers import AccountStack
from tests.integration.conftest import RunningStack
from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.edge_trading import market
from tests.integration.support.edge_trading import new_trader
from tests.integration.support.waiting import eventually
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_service_pb2_grpc as order_grpc
from tradingmesh.pricing.v1 import pricing_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc as pricing_grpc


def _served_serial(edge: Edge) -> int:
    """The serial of the certificate the edge presents to a new TLS connection."""
    context = ssl.create_default_context(cafile=edge.state.endpoints.ca_file)
    with (
        socket.create_connection(("127.0.0.1", edge.ports.envoy), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _file_serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def test_rotating_every_file_certificate_interrupts_no_order_and_no_quote_stream(
    running_stack: RunningStack, edge: Edge, accounts: AccountStack
) -> None:
    trader = new_trader(edge, accounts)
    tls = Path(running_stack.state.state_dir) / "tls"
    before = _served_serial(edge)
    assert before == _file_serial(tls / "edge.pem")

    quotes: list[float] = []  # when each quote arrived
    stream_errors: list[grpc.RpcError] = []
    stream_channel = edge.channel()  # opened before the rotation, kept through it
    pricing = pricing_grpc.PricingServiceStub(stream_channel)
    request = pricing_service_pb2.StreamQuotesRequest(
        account_id=trader.account_id, symbols=["EURUSD"]
    )

    def first_quote() -> Any:
        """A stream that gave its first quote; None while the stream workers do not know the
        account yet (NOT_FOUND: they learn it from the account's events, like the OMS and risk,
        but on their own time)."""
        call = pricing.StreamQuotes(request, metadata=bearer(trader.token))
        try:
            next(call)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        quotes.append(time.monotonic())
        return call

    stream = eventually(first_quote, 20, "a quote stream with its first quote")

    def read_stream() -> None:
        try:
            for _ in stream:
                quotes.append(time.monotonic())
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                stream_errors.append(error)

    reader = threading.Thread(target=read_stream, daemon=True)
    reader.start()

    renewed: list[str] = []
    rotation = threading.Thread(
        target=lambda: renewed.extend(rotate_certificates(running_stack.config.name))
    )
    orders: list[oms_pb2.Order] = []
    failures: list[str] = []
    kept_channel = edge.channel()  # one connection made before the rotation ...
    kept = order_grpc.OrderServiceStub(kept_channel)
    side = types_pb2.SIDE_BUY
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        # Two orders per tenth of a second at most: well under the edge's per-user limit (a
        # burst of 100, then 50 a second), which unpaced orders on a quick stack went over.
        paced = time.monotonic() + 0.1
        if rotation.ident is None and time.monotonic() > deadline - 6:
            rotation.start()  # two seconds in: orders before, during and after it
        with edge.channel() as fresh:  # ... and a new one for each order, some after it
            for stub in (kept, order_grpc.OrderServiceStub(fresh)):
                try:
                    response = stub.PlaceOrder(
                        market(trader, side, "0.01"), metadata=bearer(trader.token), timeout=10
                    )
                    orders.append(response.order)
                except grpc.RpcError as error:
                    failures.append(f"{error.code().name}: {error.details()}")
                side = types_pb2.SIDE_SELL if side == types_pb2.SIDE_BUY else types_pb2.SIDE_BUY
        time.sleep(max(0.0, paced - time.monotonic()))
    rotation.join(timeout=60)
    rotated_at = time.monotonic()
    eventually(lambda: len([t for t in quotes if t > rotated_at]) > 0, 20, "quotes after it")
    stream.cancel()
    reader.join(timeout=10)
    kept_channel.close()
    stream_channel.close()

    assert {"envoy", "postgres", "redis", "nats", "lp-alpha", "lp-beta"} <= set(renewed), renewed
    assert failures == []
    assert len(orders) >= 10
    assert {o.status for o in orders} == {trading_pb2.ORDER_STATUS_FILLED}
    assert stream_errors == []
    # New connections get the new certificate; the edge never restarted for it.
    after = _file_serial(tls / "edge.pem")
    assert after != before
    eventually(lambda: _served_serial(edge) == after, 10, "the edge serving the new certificate")

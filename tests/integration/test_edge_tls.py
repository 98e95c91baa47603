"""The edge in its production configuration (ADR 0018), on a stack of its own started like
`tradingmesh up --production-edge`: TLS 1.3 only (a TLS 1.2 handshake fails), no plaintext (an
HTTP/1.1 or h2c client is refused), HSTS on answers over TLS, sign-in and tokens work (jwt_authn
fetches the JWKS from the listener over TLS), and a certificate rewritten during the run is taken
by new connections while an open stream keeps going."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from stack import pki
from stack.components.envoy import HSTS
from stack.orchestrator import up
from tests.integration.conftest import RunningStack
from tests.integration.conftest import stack_of_its_own
from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.edge_calls import Trader
from tests.integration.support.edge_calls import call
from tests.integration.support.edge_calls import rest
from tests.integration.support.waiting import eventually
from tradingmesh.pricing.v1 import pricing_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc

# What an HTTP/2 client sends first in cleartext (h2c with prior knowledge, as grpcurl -plaintext).
H2C_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.fixture(scope="module")
def production() -> Iterator[RunningStack]:
    yield from stack_of_its_own(f"it-edge-tls-{os.getpid()}", edge_plaintext=False)


@pytest.fixture(scope="module")
def edge(production: RunningStack) -> Edge:
    return Edge(production.state)


@pytest.fixture(scope="module")
def trader(edge: Edge) -> Trader:
    demo = edge.state.demo
    assert demo is not None
    body = {"username": demo.username, "password": demo.password}
    answer = rest(edge, "POST", "/v1/auth/login", None, body)
    assert answer.status == 200, answer
    return Trader(json.loads(answer.body)["access_token"], demo.account_id)


def _context(edge: Edge, version: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=edge.state.endpoints.ca_file)
    context.minimum_version = version
    context.maximum_version = version
    return context


def _handshake(edge: Edge, version: ssl.TLSVersion) -> tuple[str | None, int]:
    """A TLS handshake with only `version` offered: (version agreed, the server's serial)."""
    with (
        socket.create_connection(("127.0.0.1", edge.ports.envoy), timeout=10) as raw,
        _context(edge, version).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return tls.version(), x509.load_der_x509_certificate(der).serial_number


def _closed_without_an_answer(edge: Edge, first_bytes: bytes) -> bool:
    """Sends `first_bytes` in cleartext; True if Envoy closes the connection saying nothing."""
    with socket.create_connection(("127.0.0.1", edge.ports.envoy), timeout=10) as raw:
        raw.sendall(first_bytes)
        try:
            return raw.recv(4096) == b""
        except ConnectionResetError:
            return True


def test_the_recorded_endpoints_say_plaintext_is_off(edge: Edge) -> None:
    endpoints = edge.state.endpoints
    assert endpoints.plaintext is False
    assert endpoints.http == f"https://127.0.0.1:{edge.ports.envoy}"
    assert endpoints.web == f"https://127.0.0.1:{edge.ports.envoy}/"


def test_a_tls_1_3_handshake_succeeds_and_a_tls_1_2_one_fails(edge: Edge) -> None:
    assert _handshake(edge, ssl.TLSVersion.TLSv1_3)[0] == "TLSv1.3"
    with pytest.raises(ssl.SSLError):
        _handshake(edge, ssl.TLSVersion.TLSv1_2)


def test_plaintext_http_1_1_and_h2c_are_refused(edge: Edge) -> None:
    request = b"GET /v1/auth/jwks HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    assert _closed_without_an_answer(edge, request)
    assert _closed_without_an_answer(edge, H2C_PREFACE)
    # And as a client library meets it.
    connection = http.client.HTTPConnection("127.0.0.1", edge.ports.envoy, timeout=10)
    try:
        connection.request("GET", "/v1/auth/jwks")
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            connection.getresponse()
    finally:
        connection.close()
    with grpc.insecure_channel(edge.state.endpoints.grpc) as channel:
        stub = pricing_service_pb2_grpc.PricingServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ListInstruments(pricing_service_pb2.ListInstrumentsRequest(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_rest_answers_over_tls_carry_hsts(edge: Edge, trader: Trader) -> None:
    for answer in (
        call(edge, "GET", "/v1/auth/jwks"),  # a public route
        rest(edge, "GET", f"/v1/accounts/{trader.account_id}/history/trades", trader),
        rest(edge, "GET", "/v1/no-such-route", trader),  # Envoy's own answer (404)
    ):
        assert answer.headers["strict-transport-security"] == HSTS, answer


def test_sign_in_works_and_the_token_is_verified_against_the_jwks(
    edge: Edge, trader: Trader
) -> None:
    """jwt_authn fetched the JWKS over TLS: a signed-in trader's call passes, a forged token not."""
    path = f"/v1/accounts/{trader.account_id}/history/trades"
    answer = rest(edge, "GET", path, trader)
    assert answer.status == 200, answer
    forged = Trader(trader.token[:-4] + "AAAA", trader.account_id)
    assert rest(edge, "GET", path, forged).status == 401


def test_a_rewritten_certificate_reaches_new_connections_and_an_open_stream_keeps_going(
    edge: Edge, trader: Trader
) -> None:
    _, before = _handshake(edge, ssl.TLSVersion.TLSv1_3)
    with edge.channel() as channel:
        stream = pricing_service_pb2_grpc.PricingServiceStub(channel).StreamQuotes(
            pricing_service_pb2.StreamQuotesRequest(
                account_id=trader.account_id, symbols=["EURUSD"]
            ),
            metadata=bearer(trader.token),
            timeout=60,
        )
        assert next(stream).quotes  # the snapshot: the stream is open

        # What `tradingmesh certs rotate` does for Envoy: new files, replaced atomically.
        written = pki.write_files(
            Path(edge.state.endpoints.ca_file).parent, pki.issue(edge.vault(), "edge")
        )
        issued = x509.load_pem_x509_certificate(written.certificate.read_bytes()).serial_number
        assert issued != before
        eventually(
            lambda: _handshake(edge, ssl.TLSVersion.TLSv1_3)[1] == issued,
            15,
            "a new connection gets the new certificate",
        )

        # The stream opened before the rotation goes on with new prices.
        assert next(stream).quotes
        assert next(stream).quotes
        stream.cancel()


def test_up_with_the_switch_on_restarts_envoy_with_plaintext_and_off_again(
    production: RunningStack, edge: Edge
) -> None:
    """Last: `up` with the other setting restarts only Envoy, and stack.json follows."""
    config = production.config
    on = up(replace(config, edge_plaintext=True))
    assert on.endpoints.plaintext is True
    assert on.endpoints.web == f"http://127.0.0.1:{edge.ports.envoy}/"
    connection = http.client.HTTPConnection("127.0.0.1", edge.ports.envoy, timeout=10)
    try:
        connection.request("GET", "/v1/auth/jwks")
        answer = connection.getresponse()
        answer.read()
    finally:
        connection.close()
    assert answer.status == 200
    assert answer.getheader("strict-transport-security") is None  # not over plaintext

    off = up(config)
    assert off.endpoints.plaintext is False
    assert _closed_without_an_answer(edge, H2C_PREFACE)
    unchanged = {c.name: c.pid for c in off.components if c.name != "envoy"}
    assert unchanged == {c.name: c.pid for c in on.components if c.name != "envoy"}

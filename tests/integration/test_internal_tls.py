"""Mutual TLS inside the platform (ADR 0018), against the real stack: a service's port takes only
a client certificate of the platform CA whose name it accepts (services/platform/callers.py),
clients check the server's name, and certificates renew while orders fill and quotes stream."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from services.platform.certificates import Issued
from stack import pki
from stack.operator_tls import operator_credentials
from stack.operator_tls import service_channel
from stack.operator_tls import tls_dir_of
from stack.orchestrator import rotate_certificates
from stack.ports import HOST
from stack.ports import SERVICES
from stack.ports import Ports
from stack.ports import stream_workers
from stack.state import StackState
from stack.vault import VaultAdmin
from tests.integration.callers import AccountStack
from tests.integration.callers import account_stack
from tests.integration.callers import staff
from tests.integration.conftest import RunningStack
from tests.integration.conftest import stack_of_its_own
from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.edge_trading import market
from tests.integration.support.edge_trading import new_trader
from tests.integration.support.edge_trading import place_grpc
from tests.integration.support.waiting import eventually
from tests.local_ca import LocalCA
from tests.local_ca import served_certificate
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb
from tradingmesh.account.v1 import account_admin_service_pb2_grpc as admin_grpc
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import details_of
from tradingmesh.pricing.v1 import pricing_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc as pricing_grpc
from tradingmesh.risk.v1 import risk_service_pb2
from tradingmesh.risk.v1 import risk_service_pb2_grpc as risk_grpc

# The rotation stack's certificates: lifetime 60 s + the 30 s the roles backdate, renewed at two
# thirds of it, i.e. about every 30 s.
SHORT_TTL = "60s"


def _vault(state: StackState) -> VaultAdmin:
    return VaultAdmin(state.vault.address, Path(state.vault.root_token_file).read_text().strip())


def _address(state: StackState, service: str) -> str:
    return f"{HOST}:{Ports(state.base_port).service_grpc(service)}"


def _channel(
    state: StackState, service: str, credentials: grpc.ChannelCredentials, name: str | None = None
) -> grpc.Channel:
    return grpc.secure_channel(
        _address(state, service),
        credentials,
        options=[("grpc.ssl_target_name_override", name or service)],
    )


def _as(issued: Issued, ca_pem: bytes) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca_pem,
        private_key=issued.key_pem.reveal().encode(),
        certificate_chain=issued.certificate_pem,
    )


def _list_groups(channel: grpc.Channel, accounts: AccountStack) -> grpc.StatusCode:
    """AccountAdminService/ListClientGroups as back office (with the edge token): its status."""
    try:
        admin_grpc.AccountAdminServiceStub(channel).ListClientGroups(
            admin_pb.ListClientGroupsRequest(), metadata=accounts.as_(staff()), timeout=10
        )
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_the_operator_certificate_is_accepted(
    running_stack: RunningStack, accounts: AccountStack
) -> None:
    with service_channel(running_stack.state, "account") as channel:
        assert _list_groups(channel, accounts) == grpc.StatusCode.OK


def test_without_a_client_certificate_or_in_plaintext_a_call_is_refused(
    running_stack: RunningStack, accounts: AccountStack
) -> None:
    state = running_stack.state
    ca_pem = (tls_dir_of(state) / "ca.pem").read_bytes()
    with _channel(state, "account", grpc.ssl_channel_credentials(ca_pem)) as channel:
        assert _list_groups(channel, accounts) == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(_address(state, "account")) as channel:
        assert _list_groups(channel, accounts) == grpc.StatusCode.UNAVAILABLE


def test_a_certificate_of_another_ca_is_refused(
    running_stack: RunningStack, accounts: AccountStack
) -> None:
    state = running_stack.state
    ca_pem = (tls_dir_of(state) / "ca.pem").read_bytes()
    # Named as the operator, trusting the platform's CA: only the client's issuer is foreign.
    forged = LocalCA("not the platform's CA").issue("operator")
    with _channel(state, "account", _as(forged, ca_pem)) as channel:
        assert _list_groups(channel, accounts) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("service", ["account", "risk"])
def test_a_platform_certificate_of_an_identity_the_service_does_not_accept_is_denied(
    running_stack: RunningStack, accounts: AccountStack, service: str
) -> None:
    state = running_stack.state
    pricing = pki.issue(_vault(state), "pricing")
    with _channel(state, service, _as(pricing, pricing.ca_pem)) as channel:
        try:
            if service == "account":
                admin_grpc.AccountAdminServiceStub(channel).ListClientGroups(
                    admin_pb.ListClientGroupsRequest(), metadata=accounts.as_(staff()), timeout=10
                )
            else:
                risk_grpc.RiskServiceStub(channel).GetAccountRisk(
                    risk_service_pb2.GetAccountRiskRequest(account_id=str(uuid.uuid4())),
                    metadata=accounts.as_(staff("dealer")),
                    timeout=10,
                )
        except grpc.RpcError as error:
            refused = error
        else:
            pytest.fail(f"{service} served a caller with pricing's certificate")
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert f"{service} does not accept calls from the certificate of 'pricing'" in str(
        refused.details()
    )
    details = details_of(refused)
    assert details is not None
    assert details.reason == ErrorReason.ERROR_REASON_PERMISSION_DENIED


def test_the_client_refuses_a_server_certificate_naming_another_service(
    running_stack: RunningStack, accounts: AccountStack
) -> None:
    state = running_stack.state
    # The account service's port, expected to be the OMS: its certificate names `account`.
    credentials = operator_credentials(tls_dir_of(state))
    with _channel(state, "account", credentials, name="oms") as channel:
        assert _list_groups(channel, accounts) == grpc.StatusCode.UNAVAILABLE


# ---- Envoy's client certificate --------------------------------------------------------------


def _envoy_client_serials(state: StackState) -> list[str]:
    """The serial of every certificate Envoy presents (its admin's /certs), lower-case hex."""
    admin = f"http://{HOST}:{Ports(state.base_port).envoy_admin}/certs"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(admin, timeout=5) as response:
        contexts = json.load(response)["certificates"]
    return [c["serial_number"].lower() for ctx in contexts for c in ctx.get("cert_chain", [])]


def test_envoy_presents_a_rotated_client_certificate_to_the_services(
    running_stack: RunningStack, accounts: AccountStack
) -> None:
    state = running_stack.state
    edge_pem = tls_dir_of(state) / "edge.pem"
    rotate_certificates(running_stack.config.name)
    new = f"{x509.load_pem_x509_certificate(edge_pem.read_bytes()).serial_number:x}"
    # One upstream TLS context per service cluster and the stream workers', reloaded from the
    # files through SDS (the client listener's certificate is not counted here).
    clusters = len(SERVICES) + 1

    def reloaded() -> bool:
        return sum(serial.lstrip("0") == new for serial in _envoy_client_serials(state)) >= (
            clusters
        )

    eventually(reloaded, 15, "Envoy's upstream contexts present the rotated certificate")
    with Edge(state).channel() as channel:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            "/tradingmesh.account.v1.AuthService/GetJwks"
        )
        assert call(b"", timeout=10) is not None


# ---- renewal while trading --------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_lived() -> Iterator[RunningStack]:
    """A stack whose services' certificates live 90 s (renewed about every 30 s)."""
    before = os.environ.get("TM_TLS_CERT_TTL")
    os.environ["TM_TLS_CERT_TTL"] = SHORT_TTL
    try:
        yield from stack_of_its_own(f"it-tls-{os.getpid()}")
    finally:
        if before is None:
            os.environ.pop("TM_TLS_CERT_TTL", None)
        else:
            os.environ["TM_TLS_CERT_TTL"] = before


def _serials(state: StackState) -> dict[str, int]:
    """The serial each service instance (and stream worker) serves to a new connection."""
    ports = Ports(state.base_port)
    tls = tls_dir_of(state)
    files = (tls / "operator.pem", tls / "operator-key.pem", tls / "ca.pem")
    addresses = {s: f"{HOST}:{ports.service_grpc(s)}" for s in SERVICES}
    addresses |= {w: f"{HOST}:{ports.stream_worker_grpc(w)}" for w in stream_workers()}
    return {
        name: served_certificate(address, *files).serial_number
        for name, address in addresses.items()
    }


def test_orders_fill_and_quotes_stream_across_two_renewals_of_every_certificate(
    short_lived: RunningStack,
) -> None:
    state = short_lived.state
    edge = Edge(state)
    for accounts in account_stack(short_lived):
        trader = new_trader(edge, accounts)

    ticks: list[float] = []
    stream_error: list[BaseException] = []
    channel = edge.channel()
    stream = pricing_grpc.PricingServiceStub(channel).StreamQuotes(
        pricing_service_pb2.StreamQuotesRequest(account_id=trader.account_id, symbols=["EURUSD"]),
        metadata=bearer(trader.token),
    )

    def read() -> None:
        try:
            for response in stream:
                if response.quotes:
                    ticks.append(time.monotonic())
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                stream_error.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen = {name: [serial] for name, serial in _serials(state).items()}
    fills = 0
    started = time.monotonic()
    try:
        # Twice renewed everywhere, and past the first certificates' end (90 s).
        while min(len(s) for s in seen.values()) < 3 or time.monotonic() - started < 95:
            assert time.monotonic() - started < 240, f"not renewed twice: {seen}"
            side = types_pb2.SIDE_BUY if fills % 2 == 0 else types_pb2.SIDE_SELL
            order = place_grpc(edge, trader, market(trader, side, "0.01"))
            assert order.status == trading_pb2.ORDER_STATUS_FILLED, order
            fills += 1
            for name, serial in _serials(state).items():
                if serial != seen[name][-1]:
                    seen[name].append(serial)
            assert not stream_error, stream_error
            assert ticks, "no quote yet"
            assert time.monotonic() - ticks[-1] < 10, "the quote stream went quiet"
            time.sleep(2)
    finally:
        stream.cancel()
        channel.close()
        reader.join(5)
    assert not stream_error, stream_error
    assert all(len(serials) >= 3 for serials in seen.values()), seen
    assert fills >= 20

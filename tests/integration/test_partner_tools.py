"""The tools partners call the platform with, against the real stack and through Envoy (issue 12):
grpcurl with server reflection only (no protoset), and a Node client that loads proto/ with
@grpc/proto-loader and calls with @grpc/grpc-js (tests/node/partner_client.js).

What is public is read from the descriptor set the stack built from proto/ for Envoy, not from
the reflection code under test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2

from stack.paths import REPO
from stack.ports import Ports
from tests.integration.node_clients import run_node_script
from tests.integration.support.edge import Edge
from tests.integration.support.pricing import demo_instruments
from tradingmesh.pricing.v1 import pricing_pb2

GRPCURL = Path(sys.prefix) / "bin" / "grpcurl"
NODE_CLIENT = REPO / "tests" / "node" / "partner_client.js"
TOOL_SERVICES = {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}


@pytest.fixture(scope="module")
def contract_services(edge: Edge) -> dict[str, bool]:
    """Every service of proto/ -> whether it is internal (ADR 0001: `*InternalService`)."""
    path = Path(edge.state.state_dir) / "envoy" / "descriptors.binpb"
    files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()).file
    found = {
        f"{file.package}.{service.name}": service.name.endswith("InternalService")
        for file in files
        if file.name.startswith("tradingmesh/")
        for service in file.service
    }
    # Both kinds exist, so that both checks below check something.
    assert any(found.values())
    assert not all(found.values())
    return found


def _grpcurl(
    edge: Edge, *args: str, stdin: str | None = None, service: str | None = None
) -> subprocess.CompletedProcess[str]:
    """grpcurl with reflection only (no protoset), to the edge over TLS, or to `service`'s own
    port over mutual TLS as the operator (ADR 0018). `args` are flags, then "--", then what
    follows the address (verb or method)."""
    split = args.index("--")
    ca = edge.state.endpoints.ca_file
    connection = ["-cacert", ca]
    address = edge.state.endpoints.grpc
    if service is not None:
        tls = Path(ca).parent
        connection += ["-cert", str(tls / "operator.pem"), "-key", str(tls / "operator-key.pem")]
        connection += ["-servername", service]
        address = f"127.0.0.1:{Ports(edge.state.base_port).service_grpc(service)}"
    argv = [str(GRPCURL), "-max-time", "20", *connection, *args[:split], address]
    return subprocess.run(
        [*argv, *args[split + 1 :]],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_grpcurl_lists_every_public_service_through_the_edge_and_no_internal_one(
    edge: Edge, contract_services: dict[str, bool]
) -> None:
    listed = _grpcurl(edge, "--", "list")

    assert listed.returncode == 0, listed.stderr
    names = set(listed.stdout.split())
    public = {name for name, internal in contract_services.items() if not internal}
    assert names == public | TOOL_SERVICES
    assert not names & {name for name, internal in contract_services.items() if internal}


def test_grpcurl_describes_a_public_service_and_calls_it_by_name_through_the_edge(
    edge: Edge,
) -> None:
    demo = edge.state.demo
    assert demo is not None

    described = _grpcurl(edge, "--", "describe", "tradingmesh.pricing.v1.PricingService")
    # The password goes on stdin (-d @), not on the command line.
    login = _grpcurl(
        edge,
        "-d",
        "@",
        "--",
        "tradingmesh.account.v1.AuthService/Login",
        stdin=json.dumps({"username": demo.username, "password": demo.password}),
    )

    assert described.returncode == 0, described.stderr
    assert "rpc ListInstruments ( .tradingmesh.pricing.v1.ListInstrumentsRequest )" in (
        described.stdout
    )
    assert login.returncode == 0, login.stderr
    token = json.loads(login.stdout)["accessToken"]
    instruments = _grpcurl(
        edge,
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        json.dumps({"account_id": demo.account_id}),
        "--",
        "tradingmesh.pricing.v1.PricingService/ListInstruments",
    )
    assert instruments.returncode == 0, instruments.stderr
    symbols = {i["symbol"] for i in json.loads(instruments.stdout)["instruments"]}
    assert "EURUSD" in symbols


def test_internal_services_cannot_be_described_through_the_edge_but_can_on_their_own_port(
    edge: Edge, contract_services: dict[str, bool]
) -> None:
    internal = sorted(name for name, is_internal in contract_services.items() if is_internal)

    for name in internal:
        described = _grpcurl(edge, "--", "describe", name)
        assert described.returncode != 0, described.stdout
        assert "not found" in described.stderr.lower(), described.stderr
    on_its_port = _grpcurl(edge, "--", "list", service="risk")

    assert on_its_port.returncode == 0, on_its_port.stderr
    assert "tradingmesh.risk.v1.RiskInternalService" in on_its_port.stdout.split()


# ---- Node: @grpc/proto-loader and @grpc/grpc-js ---------------------------------------------


def _run_node_client(edge: Edge) -> dict[str, Any]:
    # npm ci, once per change of the lock file (scripts/check runs it too).
    subprocess.run([str(REPO / "scripts" / "bootstrap-node")], check=True, timeout=300)
    return run_node_script(
        NODE_CLIENT,
        edge,
        TM_EDGE_ADDRESS=edge.state.endpoints.grpc,
        TM_EDGE_CA_FILE=edge.state.endpoints.ca_file,
    )


def _instruments_in_python(edge: Edge) -> list[dict[str, Any]]:
    return [
        {
            "symbol": i.symbol,
            "asset_class": pricing_pb2.AssetClass.Name(i.asset_class),
            "digits": i.digits,
            "contract_size": i.contract_size,
            "min_lot": i.min_lot,
        }
        for i in demo_instruments(edge)
    ]


def test_a_node_client_loads_every_proto_and_calls_login_and_list_instruments_through_the_edge(
    edge: Edge, contract_services: dict[str, bool]
) -> None:
    report = _run_node_client(edge)

    proto = REPO / "proto"
    assert report["files"] == sorted(str(p.relative_to(proto)) for p in proto.rglob("*.proto"))
    assert set(report["services"]) == set(contract_services)
    assert report["login"] == {
        "token_type": "Bearer",
        "has_access_token": True,
        "has_refresh_token": True,
    }
    assert (
        report["list_instruments_without_token"]["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
    )
    # The same instruments, field for field (decimal strings unchanged), as the Python SDK gets.
    assert report["instruments"] == _instruments_in_python(edge)
    assert any(i["symbol"] == "EURUSD" for i in report["instruments"])

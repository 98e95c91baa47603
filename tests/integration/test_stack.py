"""`tradingmesh up/status/down` against the real servers (no fakes of PostgreSQL, Redis, NATS,
OpenBao or Envoy). Tests run in file order: the last ones kill components and stop the stack.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import grpc
import hvac  # type: ignore[import-untyped]
import pytest
from hvac.exceptions import Forbidden  # type: ignore[import-untyped]

from stack import pki
from stack import secrets as stack_secrets
from stack.components.web_static import web_dist
from stack.contracts import edge_services
from stack.operator_tls import service_channel
from stack.operator_tls import tls_dir_of
from stack.orchestrator import StackConfig
from stack.orchestrator import down
from stack.orchestrator import is_running
from stack.orchestrator import status
from stack.orchestrator import up
from stack.paths import REPO
from stack.ports import SERVICES
from stack.ports import Ports
from stack.ports import port_is_listening
from stack.process import ProcessRef
from stack.process import group_members
from stack.process import is_alive
from stack.process import start_ticks
from stack.state import StackState
from stack.vault import VaultAdmin
from tests.integration.conftest import SETUP_BUDGET
from tests.integration.conftest import RunningStack

GRPCURL = Path(sys.prefix) / "bin" / "grpcurl"
INFRASTRUCTURE = ("openbao", "postgres", "redis", "nats", "smtp", "envoy")


def _names(state: StackState) -> set[str]:
    return {c.name for c in state.components}


def _services(state: StackState) -> list[str]:
    return [name for name in SERVICES if name in _names(state)]


def _vault(state: StackState) -> VaultAdmin:
    token = Path(state.vault.root_token_file).read_text().strip()
    return VaultAdmin(state.vault.address, token)


def _grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GRPCURL), "-max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _descriptor_set(state: StackState) -> Path:
    return Path(state.state_dir) / "envoy" / "descriptors.binpb"


def test_up_brings_every_component_healthy(running_stack: RunningStack) -> None:
    """How fast is measured by bench/stack_startup.py, not here (timed tests flake under load)."""
    state = running_stack.state

    assert set(INFRASTRUCTURE) <= _names(state)
    assert all(c.healthy for c in state.components), state.components


def test_status_json_lists_every_component_with_a_live_pid(running_stack: RunningStack) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stack.cli",
            "status",
            "--name",
            running_stack.config.name,
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    reported = json.loads(result.stdout)
    components = {c["name"]: c for c in reported["components"]}
    assert set(components) == _names(running_stack.state)
    for component in components.values():
        assert component["healthy"] is True
        assert is_alive(ProcessRef(component["pid"], component["pid_start_ticks"]))
    assert reported["endpoints"]["ca_file"] == str(Path(reported["state_dir"]) / "tls" / "ca.pem")
    assert Path(reported["vault"]["root_token_file"]).stat().st_mode & 0o777 == 0o600
    # The web terminal: Envoy's port over plain HTTP (ADR 0014); built or not, Envoy answers.
    web = reported["endpoints"]["web"]
    assert web == f"http://127.0.0.1:{Ports(reported['base_port']).envoy}/"
    built = (web_dist(REPO) / "index.html").is_file()
    request = urllib.request.Request(web, method="HEAD")
    if built:
        with urllib.request.urlopen(request, timeout=10) as page:
            assert page.headers["content-type"] == "text/html; charset=utf-8"
    else:
        with pytest.raises(urllib.error.HTTPError, match="503"):
            urllib.request.urlopen(request, timeout=10)


def test_grpcurl_lists_each_service_on_its_own_port(running_stack: RunningStack) -> None:
    state = running_stack.state
    if not _services(state):
        pytest.skip("no service package exists yet (services/<name>/__main__.py)")
    ports = Ports(state.base_port)

    tls = tls_dir_of(state)
    for name in _services(state):
        # As the operator, over mutual TLS (ADR 0018): no service port speaks plaintext.
        listed = _grpcurl(
            *("-cacert", str(tls / "ca.pem")),
            *("-cert", str(tls / "operator.pem"), "-key", str(tls / "operator-key.pem")),
            *("-servername", name),
            f"127.0.0.1:{ports.service_grpc(name)}",
            "list",
        )

        assert listed.returncode == 0, listed.stderr
        assert f"tradingmesh.{name}.v1." in listed.stdout


def test_envoy_routes_public_services_and_never_internal_ones(running_stack: RunningStack) -> None:
    state = running_stack.state
    ca = state.endpoints.ca_file
    descriptors = _descriptor_set(state)
    routed = edge_services(descriptors)
    internal = "tradingmesh.risk.v1.RiskInternalService/CheckOrder"

    assert {s.owner for s in routed} == set(SERVICES)
    assert not any("Internal" in s.full_name for s in routed)
    # With the descriptor set (no reflection needed): an internal RPC has no route at the edge.
    hidden = _grpcurl(
        "-cacert", ca, "-protoset", str(descriptors), "-d", "{}", state.endpoints.grpc, internal
    )
    assert "Unimplemented" in hidden.stdout + hidden.stderr
    # A public RPC is routed: whatever the service answers, it is not "no such route".
    public = _grpcurl(
        "-cacert",
        ca,
        "-protoset",
        str(descriptors),
        "-d",
        "{}",
        state.endpoints.grpc,
        "tradingmesh.pricing.v1.PricingService/ListInstruments",
    )
    assert "Unimplemented" not in public.stdout + public.stderr


def test_grpcurl_lists_services_through_envoy(running_stack: RunningStack) -> None:
    state = running_stack.state
    if "account" not in _names(state):
        pytest.skip("reflection at the edge is served by the account service, not written yet")

    listed = _grpcurl("-cacert", state.endpoints.ca_file, state.endpoints.grpc, "list")

    assert listed.returncode == 0, listed.stderr
    assert "tradingmesh.account.v1.AuthService" in listed.stdout


JWKS = "/tradingmesh.account.v1.AuthService/GetJwks"  # public: stays open when JWT lands


@dataclass
class _Edge:
    """The account service behind Envoy: the real one, or a recorder on its port until it exists.

    The recorder answers every call with an empty message and keeps the metadata it received,
    which shows exactly what Envoy forwards.
    """

    state: StackState
    real: bool
    seen: list[dict[str, str]] = field(default_factory=list)


class _Recorder(grpc.GenericRpcHandler):
    def __init__(self, edge: _Edge) -> None:
        self.edge = edge
        self.lock = threading.Lock()

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[bytes, bytes] | None:
        metadata = {k: str(v) for k, v in handler_call_details.invocation_metadata}
        with self.lock:
            self.edge.seen.append(metadata)
        # Raw bytes both ways: an empty response is a valid message of any type.
        return grpc.unary_unary_rpc_method_handler(lambda _request, _context: b"")


@pytest.fixture(scope="module")
def edge(running_stack: RunningStack) -> Iterator[_Edge]:
    state = running_stack.state
    if "account" in _names(state):
        yield _Edge(state, real=True)
        return
    recorded = _Edge(state, real=False)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers([_Recorder(recorded)])
    # Envoy calls services over mutual TLS (ADR 0018): the stand-in serves account's certificate.
    account = pki.issue(_vault(state), "account")
    credentials = grpc.ssl_server_credentials(
        [(account.key_pem.reveal().encode(), account.certificate_pem)],
        root_certificates=account.ca_pem,
        require_client_auth=True,
    )
    server.add_secure_port(
        f"127.0.0.1:{Ports(state.base_port).service_grpc('account')}", credentials
    )
    server.start()
    try:
        yield recorded
    finally:
        server.stop(grace=None)


def _call(channel: grpc.Channel, token: str) -> grpc.StatusCode:
    """GetJwks with client-sent identity headers; the status code it ends with."""
    metadata = (
        ("x-tm-subject", "someone-else"),
        ("x-tm-roles", "admin"),
        ("x-tm-edge-token", token),
    )
    with channel:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(JWKS)
        try:
            call(b"", timeout=10, metadata=metadata)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_only_calls_through_envoy_carry_the_edge_token(edge: _Edge) -> None:
    state = edge.state
    credentials = grpc.ssl_channel_credentials(Path(state.endpoints.ca_file).read_bytes())

    through_envoy = _call(grpc.secure_channel(state.endpoints.grpc, credentials), token="forged")

    if edge.real:
        # Directly, with a certificate the account service accepts, but a forged edge token.
        direct = _call(service_channel(state, "account"), "forged")
        assert direct == grpc.StatusCode.UNAUTHENTICATED
        assert through_envoy != grpc.StatusCode.UNAUTHENTICATED
    else:
        known = stack_secrets.read(_vault(state))
        assert known is not None
        seen = edge.seen[-1]
        assert through_envoy == grpc.StatusCode.OK
        assert seen["x-tm-edge-token"] == known.edge_token.reveal()
        assert "x-tm-subject" not in seen
        assert "x-tm-roles" not in seen


def _https(state: StackState) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=state.endpoints.ca_file)
    return http.client.HTTPSConnection("127.0.0.1", Ports(state.base_port).envoy, context=context)


def test_rest_json_is_transcoded_to_the_owning_service(edge: _Edge) -> None:
    connection = _https(edge.state)

    connection.request("GET", "/v1/auth/jwks", headers={"x-tm-subject": "someone-else"})
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.request("GET", "/v1/no-such-route")
    unknown = connection.getresponse()
    unknown.read()

    assert response.getheader("content-type") == "application/json"
    if edge.real:
        assert response.status != 404
        assert body.get("code") != grpc.StatusCode.UNAUTHENTICATED.value[0]
    else:
        assert response.status == 200
        assert body == {"keys": []}
        assert "x-tm-subject" not in edge.seen[-1]
    assert unknown.status == 404


def test_grpc_web_reaches_the_owning_service(edge: _Edge) -> None:
    connection = _https(edge.state)

    connection.request(
        "POST",
        JWKS,
        body=b"\x00\x00\x00\x00\x00",  # one uncompressed, empty message
        headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
    )
    response = connection.getresponse()
    payload = response.read()

    assert response.status == 200
    assert response.getheader("content-type") == "application/grpc-web+proto"
    # The status is a header (trailers-only answer) or in the final trailer frame.
    status = response.getheader("grpc-status") or payload.split(b"grpc-status:")[-1][:2].strip()
    code = int(status)
    assert code != grpc.StatusCode.UNAUTHENTICATED.value[0]
    if not edge.real:
        assert code == 0


def test_each_service_token_reads_only_its_own_paths(running_stack: RunningStack) -> None:
    state = running_stack.state
    token = stack_secrets.issue_service_token(_vault(state), "oms")
    client = hvac.Client(url=state.vault.address, token=token.reveal())

    def read(path: str) -> dict[str, str]:
        response = client.secrets.kv.v2.read_secret_version(
            path=path, mount_point="secret", raise_on_deleted_version=True
        )
        data: dict[str, str] = response["data"]["data"]
        return data

    assert read("tradingmesh/postgres/oms")["username"] == "oms"
    assert read("tradingmesh/edge")["token"]
    assert read("tradingmesh/redis")["password"]
    assert read("tradingmesh/nats")["password"]
    with pytest.raises(Forbidden):
        read("tradingmesh/postgres/risk")
    with pytest.raises(Forbidden):
        read("tradingmesh/postgres/admin")


def test_no_secret_is_written_under_the_state_directory(running_stack: RunningStack) -> None:
    state = running_stack.state
    known = stack_secrets.read(_vault(state))
    assert known is not None
    root_token_file = Path(state.vault.root_token_file)
    values = [v.encode() for v in [*known.values(), root_token_file.read_text().strip()]]

    tls = tls_dir_of(state)
    leaks = []
    keys = []
    for path in Path(state.state_dir).rglob("*"):
        if not path.is_file() or path == root_token_file or path.is_socket():
            continue
        content = path.read_bytes()
        if b"PRIVATE KEY-----" in content:
            keys.append(path)
        elif any(value in content for value in values):
            leaks.append(path)

    assert leaks == []
    # The only private keys on disk: the certificates' of processes that read files (ADR 0018:
    # in tls/, and QuickFIX's client certificate in its service's store), owner-only.
    assert tls / "edge-key.pem" in keys, "the check itself is broken"
    for key in keys:
        assert key.name.endswith("-key.pem"), key
        assert key.stat().st_mode & 0o077 == 0, key


def test_a_killed_component_is_reported_and_up_restores_it(running_stack: RunningStack) -> None:
    name = running_stack.config.name
    before = status(name)
    assert before is not None
    victims = ["redis", *_services(before)[:1]]
    pids = {c.name: c.pid for c in before.components}
    for victim in victims:
        entry = before.component(victim)
        assert entry is not None
        assert entry.pid is not None
        os.kill(entry.pid, signal.SIGKILL)

    reported = status(name)
    assert reported is not None
    for victim in victims:
        entry = reported.component(victim)
        assert entry is not None
        assert entry.healthy is False
        assert not is_running(entry)

    restored = up(running_stack.config)

    assert all(c.healthy for c in restored.components)
    assert {c.name: c.pid for c in restored.components if c.name not in victims} == {
        n: p for n, p in pids.items() if n not in victims
    }
    for victim in victims:
        entry = restored.component(victim)
        assert entry is not None
        assert entry.pid != pids[victim]


def test_down_leaves_no_process_and_no_listening_port(running_stack: RunningStack) -> None:
    name = running_stack.config.name
    before = status(name)
    assert before is not None
    refs = [
        ProcessRef(c.pid, c.pid_start_ticks)
        for c in before.components
        if c.pid and c.pid_start_ticks
    ]

    down(name)
    try:
        _assert_all_stopped(name, before, refs)
    finally:
        # Other test modules share this session's stack: bring it back for them.
        up(StackConfig(name=name, budget=SETUP_BUDGET))


def _assert_all_stopped(name: str, before: StackState, refs: list[ProcessRef]) -> None:
    assert not any(is_alive(ref) for ref in refs)
    # Members of our groups started with or after their leader; an older process reporting the
    # same group number belongs to someone else on this busy machine.
    left = [
        pid
        for ref in refs
        for pid in group_members(ref.pid)
        if (start_ticks(pid) or 0) >= ref.start_ticks
    ]
    assert left == []
    listening = [p for p in Ports(before.base_port).all_used() if port_is_listening(p)]
    assert listening == []
    after = status(name)
    assert after is not None
    assert all(c.pid is None and not c.healthy for c in after.components)

"""What REST, gRPC and gRPC-web clients see when the edge itself refuses a request (issue 12).

Against the real stack, through Envoy: unknown JSON fields, query parameters and enum names are
400 and change nothing; every error Envoy makes is a `google.rpc.Status` with a stable reason
(JSON over REST, grpc-status + grpc-status-details-bin over gRPC and gRPC-web); an over-long
path or large headers get the same deterministic answer every time, naming no internal header;
a CORS preflight from an origin that is not allowed is refused by Envoy itself, without an
upstream call or a rate-limit token; and a service killed while calls are in flight is
UNAVAILABLE / 503 to every caller, never INTERNAL (issue #18).
"""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2
from google.rpc import status_pb2

from stack.orchestrator import status as stack_status
from stack.orchestrator import up
from stack.process import ProcessRef
from stack.process import stop_groups
from tests.integration.conftest import RunningStack
from tests.integration.support.components import kill
from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.edge import login
from tests.integration.support.edge import make_user
from tests.integration.support.edge_calls import LOGIN
from tests.integration.support.edge_calls import Answer
from tests.integration.support.edge_calls import Trader
from tests.integration.support.edge_calls import call
from tests.integration.support.edge_calls import error_info
from tests.integration.support.edge_calls import preflight
from tests.integration.support.edge_calls import rest
from tests.integration.support.waiting import eventually
from tradingmesh.account.v1 import auth_service_pb2 as auth_pb2
from tradingmesh.account.v1 import auth_service_pb2_grpc as auth_grpc
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.errors import details_of
from tradingmesh.errors import parse_status_details
from tradingmesh.errors import reason_string
from tradingmesh.oms.v1 import order_service_pb2 as order_pb2
from tradingmesh.oms.v1 import order_service_pb2_grpc as order_grpc
from tradingmesh.reporting.v1 import reporting_service_pb2 as reporting_pb2
from tradingmesh.reporting.v1 import reporting_service_pb2_grpc as reporting_grpc

PLACE_ORDER = "/tradingmesh.oms.v1.OrderService/PlaceOrder"


@pytest.fixture(scope="module")
def trader(demo: tuple[str, str]) -> Trader:
    """The seeded demo user: a funded account that every service knows."""
    return Trader(*demo)


def bad_request(status: status_pb2.Status) -> error_details_pb2.BadRequest:
    for detail in status.details:
        found = error_details_pb2.BadRequest()
        if detail.Unpack(found):
            return found
    raise AssertionError(f"no BadRequest in {status}")


def orders_with_client_id(edge: Edge, account_id: str, client_order_id: str) -> int:
    with edge.database() as db:
        row = db.execute(
            "SELECT count(*) FROM oms.orders WHERE account_id = %s AND client_order_id = %s",
            (account_id, client_order_id),
        ).fetchone()
    assert row is not None
    return int(row[0])


def order(client_order_id: str, **extra: object) -> dict[str, object]:
    return {
        "client_order_id": client_order_id,
        "symbol": "EURUSD",
        "side": "SIDE_BUY",
        "type": "ORDER_TYPE_MARKET",
        "quantity": "0.01",
        **extra,
    }


# ---- unknown fields, query parameters and enum names ----------------------------------------


def test_a_misspelled_or_unknown_field_is_400_naming_it_and_places_no_order(
    edge: Edge, trader: Trader
) -> None:
    orders = f"/v1/accounts/{trader.account_id}/orders"
    typo, extra, good = (f"edge-{uuid.uuid4().hex[:12]}" for _ in range(3))

    misspelled = rest(edge, "POST", orders, trader, order(typo, stop_los="0.48824"))
    unknown = rest(edge, "POST", orders, trader, order(extra, foo="bar", is_admin=True))
    accepted = rest(edge, "POST", orders, trader, order(good))

    assert misspelled.status == 400
    refusal = misspelled.status_json()
    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert error_info(refusal).reason == "VALIDATION_FAILED"
    assert error_info(refusal).metadata["field"] == "stop_los"
    assert "stop_los" in refusal.message
    assert [v.field for v in bad_request(refusal).field_violations] == ["stop_los"]
    assert unknown.status == 400
    assert sorted(v.field for v in bad_request(unknown.status_json()).field_violations) == [
        "foo",
        "is_admin",
    ]
    # Nothing was placed for the refused bodies; the same order without the typo is placed.
    assert orders_with_client_id(edge, trader.account_id, typo) == 0
    assert orders_with_client_id(edge, trader.account_id, extra) == 0
    assert accepted.status == 200, accepted.body
    assert orders_with_client_id(edge, trader.account_id, good) == 1


def test_an_unknown_field_inside_a_nested_message_is_refused_and_creates_nothing(
    edge: Edge,
) -> None:
    admin = make_user(edge, ["admin"])
    token = login(edge, admin).access_token
    name = f"edge-{uuid.uuid4().hex[:12]}"
    group = {"name": name, "currency": "USD", "leverage": 100, "leverrage": 500}

    refused = call(
        edge,
        "POST",
        "/v1/admin/groups",
        json.dumps({"client_group": group}).encode(),
        {"content-type": "application/json", "authorization": f"Bearer {token}"},
    )

    assert refused.status == 400
    violations = bad_request(refused.status_json()).field_violations
    assert [v.field for v in violations] == ["client_group.leverrage"]
    with edge.database() as db:
        row = db.execute(
            "SELECT count(*) FROM account.client_groups WHERE name = %s", (name,)
        ).fetchone()
    assert row == (0,)


def test_camel_case_and_escaped_names_of_real_fields_are_accepted(
    edge: Edge, trader: Trader
) -> None:
    orders = f"/v1/accounts/{trader.account_id}/orders"
    camel, escaped = (f"edge-{uuid.uuid4().hex[:12]}" for _ in range(2))
    body = order(escaped)
    del body["symbol"]
    # JSON's "\u0073ymbol" is "symbol": the check reads names as the transcoder does.
    text = json.dumps(body)[:-1] + ', "\\u0073ymbol": "EURUSD"}'

    by_json_name = rest(
        edge, "POST", orders, trader, {**order(camel), "timeInForce": "TIME_IN_FORCE_IOC"}
    )
    by_escaped_name = rest(edge, "POST", orders, trader, text.encode())

    assert by_json_name.status == 200, by_json_name.body
    assert by_escaped_name.status == 200, by_escaped_name.body


def test_an_unknown_query_parameter_or_enum_name_is_400_naming_it(
    edge: Edge, trader: Trader
) -> None:
    orders = f"/v1/accounts/{trader.account_id}/orders"
    client_order_id = f"edge-{uuid.uuid4().hex[:12]}"

    query = rest(edge, "GET", f"/v1/quotes/EURUSD?account_id={trader.account_id}&foo=1", trader)
    enum = rest(edge, "POST", orders, trader, order(client_order_id, side="SIDE_BUYX"))

    for answer, named in ((query, '"foo"'), (enum, "SIDE_BUYX")):
        assert answer.status == 400
        refusal = answer.status_json()
        assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert error_info(refusal).reason == "VALIDATION_FAILED"
        assert named in refusal.message
    assert orders_with_client_id(edge, trader.account_id, client_order_id) == 0


# ---- every error Envoy makes, as a google.rpc.Status ----------------------------------------


def test_every_error_the_edge_makes_is_a_status_with_a_reason_over_rest(
    edge: Edge, trader: Trader
) -> None:
    account = f"/v1/accounts/{trader.account_id}"
    huge_body = b'{"symbol": "' + b"A" * (2 * 1024 * 1024) + b'"}'
    cases: dict[str, tuple[Answer, int, str]] = {
        "no token": (rest(edge, "GET", account, None), 401, "UNAUTHENTICATED"),
        "garbage token": (
            call(edge, "GET", account, headers={"authorization": "Bearer not-a-jwt"}),
            401,
            "UNAUTHENTICATED",
        ),
        "no such route": (rest(edge, "GET", "/v1/no-such-route", trader), 404, "NOT_FOUND"),
        "malformed JSON": (
            rest(edge, "POST", f"{account}/orders", trader, b'{"symbol":'),
            400,
            "VALIDATION_FAILED",
        ),
        "number for a decimal string": (
            rest(edge, "POST", f"{account}/orders", trader, {"quantity": 0.1}),
            400,
            "VALIDATION_FAILED",
        ),
        "body too large": (
            rest(edge, "POST", f"{account}/orders", trader, huge_body),
            413,
            "REQUEST_TOO_LARGE",
        ),
        "path too long": (
            rest(edge, "GET", f"/v1/quotes/{'A' * 10_000}", trader),
            414,
            "REQUEST_TOO_LARGE",
        ),
        "headers too large": (
            call(edge, "GET", account, headers={"x-padding": "p" * 9000}),
            431,
            "REQUEST_TOO_LARGE",
        ),
        "rate limited": (sign_in_until_limited(edge, "127.0.0.3"), 429, "RATE_LIMITED"),
    }

    for name, (answer, http_status, reason) in cases.items():
        assert answer.status == http_status, (name, answer)
        refusal = answer.status_json()
        assert error_info(refusal).reason == reason, name
        assert refusal.message, name
    limited = cases["rate limited"][0]
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in limited.status_json().details)


def sign_in(edge: Edge, source: str) -> Answer:
    """A sign-in with an unknown name (the account service's per-name limit never applies)."""
    body = {"username": f"nobody-{uuid.uuid4().hex[:10]}", "password": "x"}
    headers = {"content-type": "application/json"}
    return call(edge, "POST", "/v1/auth/login", json.dumps(body).encode(), headers, source)


def sign_in_until_limited(edge: Edge, source: str) -> Answer:
    """Sign-ins from `source` (its own buckets) until Envoy says 429: the sign-in bucket holds
    60, and 400 tries outrun its refill of one a second on any machine."""
    for _ in range(400):
        answer = sign_in(edge, source)
        if answer.status == 429:
            return answer
    raise AssertionError("no sign-in was ever limited")


def test_errors_over_grpc_keep_their_status_and_carry_the_same_reason(edge: Edge) -> None:
    with edge.channel() as channel:
        auth = auth_grpc.AuthServiceStub(channel)
        without_token = refused(lambda: auth.Logout(auth_pb2.LogoutRequest(), timeout=20))
        large_metadata = refused(
            lambda: auth.Login(
                auth_pb2.LoginRequest(username="x", password="y"),
                timeout=20,
                metadata=(("x-padding", "p" * 9000),),
            )
        )
        large_message = refused(
            lambda: auth.Login(
                auth_pb2.LoginRequest(username="x" * (2 * 1024 * 1024), password="y"), timeout=20
            )
        )

    assert (without_token.code, without_token.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "UNAUTHENTICATED",
    )
    for error in (large_metadata, large_message):
        assert (error.code, error.reason) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "REQUEST_TOO_LARGE",
        )


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    reason: str
    message: str


def refused(do: Callable[[], object]) -> Refusal:
    """Runs `do`, which must fail: its status, ErrorInfo reason and message (SDK decoder)."""
    with pytest.raises(grpc.RpcError) as raised:
        do()
    details = details_of(raised.value)
    return Refusal(details.code, reason_string(details.reason), details.message)


def test_errors_over_grpc_web_are_trailers_only_with_status_and_reason(edge: Edge) -> None:
    message = auth_pb2.LogoutRequest().SerializeToString()
    frame = b"\x00" + len(message).to_bytes(4, "big") + message
    web = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}
    huge = b"\x00" + (2 * 1024 * 1024).to_bytes(4, "big") + b"\x00" * (2 * 1024 * 1024)

    without_token = call(edge, "POST", "/tradingmesh.account.v1.AuthService/Logout", frame, web)
    too_large = call(edge, "POST", LOGIN, huge, web)
    no_such_method = call(edge, "POST", "/tradingmesh.risk.v1.RiskInternalService/X", frame, web)

    for answer, code, reason in (
        (without_token, grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
        (too_large, grpc.StatusCode.RESOURCE_EXHAUSTED, "REQUEST_TOO_LARGE"),
    ):
        # gRPC's trailers-only form: HTTP 200, the status in the headers, no body.
        assert answer.status == 200, answer
        assert answer.headers["content-type"] == "application/grpc-web+proto"
        assert int(answer.headers["grpc-status"]) == code.value[0]
        packed = answer.headers["grpc-status-details-bin"]
        details = parse_status_details(
            code,
            answer.headers["grpc-message"],
            base64.b64decode(packed + "=" * (-len(packed) % 4)),
        )
        assert reason_string(details.reason) == reason
        assert answer.body == b""
    assert int(no_such_method.headers["grpc-status"]) == grpc.StatusCode.UNIMPLEMENTED.value[0]


def test_a_service_that_is_down_is_a_503_status_over_rest_and_unavailable_over_grpc(
    edge: Edge, trader: Trader, running_stack: RunningStack
) -> None:
    state = stack_status(running_stack.config.name)
    assert state is not None
    reporting = state.component("reporting")
    assert reporting is not None
    assert reporting.pid is not None
    assert reporting.pid_start_ticks is not None
    process = ProcessRef(reporting.pid, reporting.pid_start_ticks)
    try:
        assert stop_groups([(process, signal.SIGTERM)], timeout=20) == []
        over_rest = rest(edge, "GET", f"/v1/accounts/{trader.account_id}/history/trades", trader)
        with edge.channel() as channel:
            over_grpc = refused(
                lambda: reporting_grpc.ReportingServiceStub(channel).ListTradeHistory(
                    reporting_pb2.ListTradeHistoryRequest(account_id=trader.account_id),
                    timeout=20,
                    metadata=bearer(trader.token),
                )
            )
    finally:
        up(running_stack.config)

    assert over_rest.status == 503
    refusal = over_rest.status_json()
    assert refusal.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert error_info(refusal).reason == "DEPENDENCY_UNAVAILABLE"
    assert (over_grpc.code, over_grpc.reason) == (
        grpc.StatusCode.UNAVAILABLE,
        "DEPENDENCY_UNAVAILABLE",
    )


# ---- a service killed mid-call ---------------------------------------------------------------


def test_calls_in_flight_when_a_service_is_killed_are_unavailable_or_503_never_internal(
    edge: Edge, trader: Trader, running_stack: RunningStack
) -> None:
    """SIGKILL the OMS while PlaceOrder calls are in flight over gRPC, REST and gRPC-web: every
    call that fails says UNAVAILABLE (gRPC, gRPC-web) or 503 with a JSON Status (REST), never
    INTERNAL (the services send response headers as a call starts, and a stream whose headers
    Envoy has passed on can only be reset: issue #18) nor 500/502."""
    orders = f"/v1/accounts/{trader.account_id}/orders"
    web_headers = {
        "content-type": "application/grpc-web+proto",
        "x-grpc-web": "1",
        "authorization": f"Bearer {trader.token}",
    }

    def over_grpc(channel: grpc.Channel) -> tuple[object, ...] | None:
        try:
            order_grpc.OrderServiceStub(channel).PlaceOrder(
                _market_order(trader, f"kill-{uuid.uuid4().hex[:16]}"),
                metadata=bearer(trader.token),
                timeout=20,
            )
        except grpc.RpcError as error:
            details = details_of(error)
            return details.code, reason_string(details.reason), details.message
        return None

    def over_rest(_: grpc.Channel) -> tuple[object, ...] | None:
        answer = rest(edge, "POST", orders, trader, order(f"kill-{uuid.uuid4().hex[:16]}"))
        if answer.status == 200:
            return None
        status = json.loads(answer.body) if answer.body else {}
        reasons = [d.get("reason") for d in status.get("details", []) if "reason" in d]
        return answer.status, answer.headers.get("content-type"), status.get("code"), *reasons

    def over_grpc_web(_: grpc.Channel) -> tuple[object, ...] | None:
        message = _market_order(trader, f"kill-{uuid.uuid4().hex[:16]}").SerializeToString()
        frame = b"\x00" + len(message).to_bytes(4, "big") + message
        answer = call(edge, "POST", PLACE_ORDER, frame, web_headers)
        status = _grpc_web_status(answer)
        return None if (answer.status, status) == (200, "0") else (answer.status, status)

    channel = edge.channel()
    # 24 clients, each pausing 0.4 s after a failure: under the trader's rate limit (50/s after
    # a burst of 100), which the quick refusals while the OMS is down would otherwise reach.
    load = [
        Load(over_grpc, channel, 16),
        Load(over_rest, channel, 4),
        Load(over_grpc_web, channel, 4),
    ]
    try:
        for protocol in load:
            protocol.start()
        # Orders flow on every protocol before the kill: calls are in flight at every moment.
        eventually(lambda: min(p.ok for p in load) >= 3, 60, "orders on every protocol", 0.1)
        kill(running_stack, "oms")
        time.sleep(1.5)  # and the calls made while it is down
    finally:
        for protocol in load:
            protocol.stop()
        channel.close()
        up(running_stack.config)

    grpc_load, rest_load, web_load = load
    assert min(p.ok for p in load) >= 3
    unavailable = (grpc.StatusCode.UNAVAILABLE, "DEPENDENCY_UNAVAILABLE")
    assert {f[:2] for f in grpc_load.failures} == {unavailable}, grpc_load.failures
    # Calls the OMS had started were among them (16 clients: some are in flight at any moment,
    # also with TM_TEST_REPLICAS=2), told that the call may have taken effect.
    assert any("during the call" in str(f[2]) for f in grpc_load.failures)
    assert set(rest_load.failures) <= {(503, "application/json", 14, "DEPENDENCY_UNAVAILABLE")}, (
        rest_load.failures
    )
    assert set(web_load.failures) <= {(200, "14")}, web_load.failures


def _market_order(trader: Trader, client_order_id: str) -> order_pb2.PlaceOrderRequest:
    return order_pb2.PlaceOrderRequest(
        account_id=trader.account_id,
        client_order_id=client_order_id,
        symbol="EURUSD",
        side=types_pb2.SIDE_BUY,
        type=trading_pb2.ORDER_TYPE_MARKET,
        quantity="0.01",
    )


def _grpc_web_status(answer: Answer) -> str | None:
    """grpc-status of a gRPC-web answer: in its headers (trailers-only) or its trailer frame."""
    if "grpc-status" in answer.headers:
        return answer.headers["grpc-status"]
    marker = b"grpc-status:"
    if marker not in answer.body:
        return None
    return answer.body.split(marker, 1)[1].split(b"\r\n", 1)[0].strip().decode()


class Load:
    """`clients` threads making calls with `attempt` until stopped: the calls that succeeded,
    and what each failure was (an exception the attempt did not expect is a failure too)."""

    def __init__(
        self,
        attempt: Callable[[grpc.Channel], tuple[object, ...] | None],
        channel: grpc.Channel,
        clients: int,
    ) -> None:
        self.ok = 0
        self.failures: list[tuple[object, ...]] = []
        self._attempt = attempt
        self._channel = channel
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                failure = self._attempt(self._channel)
            except Exception as error:  # a reset connection, an answer of the wrong form
                failure = ("exception", repr(error))
            with self._lock:
                if failure is None:
                    self.ok += 1
                else:
                    self.failures.append(failure)
            if failure is not None:
                time.sleep(0.4)


# ---- long paths and headers -----------------------------------------------------------------


def test_an_over_long_path_gets_the_same_answer_every_time_naming_no_internal_header(
    edge: Edge, trader: Trader
) -> None:
    answers = [
        rest(edge, "GET", f"/v1/quotes/{'A' * length}?account_id={trader.account_id}", trader)
        for length in (10_000, 20_000)
        for _ in range(10)
    ]

    assert {a.status for a in answers} == {414}
    assert len({a.body for a in answers}) == 1
    refusal = answers[0].status_json()
    assert error_info(refusal).reason == "REQUEST_TOO_LARGE"
    assert error_info(refusal).metadata["limit"] == "path"
    text = answers[0].body.decode().lower()
    assert "x-tm-" not in text
    assert "x-envoy" not in text
    assert ":path" not in text


def test_a_path_under_the_limit_reaches_the_service(edge: Edge, trader: Trader) -> None:
    # 3,000 characters: past the edge, the pricing service refuses the symbol itself.
    answer = rest(edge, "GET", f"/v1/quotes/{'A' * 3000}?account_id={trader.account_id}", trader)

    assert answer.status == 400
    assert error_info(answer.status_json()).reason == "VALIDATION_FAILED"
    assert "symbol" in answer.status_json().message


# ---- CORS preflights ------------------------------------------------------------------------


def envoy_counter(edge: Edge, name: str) -> int:
    url = f"http://127.0.0.1:{edge.ports.envoy_admin}/stats?filter=^{name}$&format=json"
    with urllib.request.urlopen(url, timeout=10) as response:
        stats = json.loads(response.read())["stats"]
    (found,) = [s["value"] for s in stats if s.get("name") == name]
    return int(found)


def account_requests(edge: Edge) -> int:
    """Requests Envoy has sent to the account service, less the JWKS fetches of jwt_authn
    (they come through the edge to the account service too, whenever the cache refreshes)."""
    return envoy_counter(edge, "cluster.account.upstream_rq_total") - envoy_counter(
        edge, "cluster.edge_jwks.upstream_rq_total"
    )


def test_a_preflight_from_an_allowed_origin_is_answered_by_envoy_for_rest_and_grpc_web(
    edge: Edge,
) -> None:
    origin = f"http://127.0.0.1:{edge.ports.web_client}"

    for path in ("/v1/auth/login", LOGIN):
        answer = preflight(edge, path, origin)

        assert answer.status == 200, (path, answer)
        assert answer.headers["access-control-allow-origin"] == origin
        assert "POST" in answer.headers["access-control-allow-methods"]


def test_a_preflight_from_an_unlisted_origin_is_refused_by_envoy_without_upstream_or_token(
    edge: Edge,
) -> None:
    before = account_requests(edge)
    # From 127.0.0.4: its own sign-in bucket (60 at once), which 70 preflights would empty.
    refusals = [
        preflight(edge, path, origin, source="127.0.0.4")
        for path in ("/v1/auth/login", LOGIN, "/v1/no-such-route")
        for origin in ("https://evil.example", "null")
        for _ in range(12)
    ]
    upstream = account_requests(edge) - before
    first_sign_in = sign_in(edge, "127.0.0.4")

    assert len(refusals) == 72
    for answer in refusals:
        assert answer.status == 403
        refusal = answer.status_json()
        assert error_info(refusal).reason == "PERMISSION_DENIED"
        assert "access-control-allow-origin" not in answer.headers
        # Neither the rate limits nor an upstream saw it: both mark what passes them.
        assert not any(h.startswith("x-ratelimit") for h in answer.headers)
        assert "x-envoy-upstream-service-time" not in answer.headers
    assert error_info(refusals[0].status_json()).metadata["origin"] == "https://evil.example"
    assert upstream == 0
    # The sign-in bucket is whole: this sign-in is the first to take a token from it.
    assert first_sign_in.status == 401, first_sign_in
    assert int(first_sign_in.headers["x-ratelimit-remaining"]) >= 58

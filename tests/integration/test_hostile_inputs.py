"""Hostile input over every public RPC of the edge, generated from the contracts (issue #18).

For every method Envoy routes (`stack.contracts.edge_services`), Hypothesis builds requests from
the request message's descriptor, field by field: strings that are huge, empty, unicode, with NUL,
SQL and JSON fragments, decimal strings with exponents, NaN, Infinity, signs and too many digits;
integers at their edges; unknown enum numbers; timestamps beyond any calendar; repeated fields
with thousands of items; the ids of other users' objects and made-up ids; any field left out.
Each goes through Envoy over gRPC as a signed-in ordinary trader, a few with no token, and the
read-only admin RPCs also as the broker's operator. The answer must be OK or a client error whose
`grpc-status-details-bin` holds an ErrorInfo of the `tradingmesh` domain: never INTERNAL, UNKNOWN
or DATA_LOSS. Afterwards no row changed in the services' schemas except the trader's own (which a
call that succeeded may change) and tables that change by themselves. Over REST, hostile JSON
bodies and query values on the transcoded routes answer 4xx, never 5xx.

The run is bounded (a few examples per RPC, no shrinking: every example's outcome is recorded
instead) and derandomized; the report (RPCs, cases, outcomes by status) goes to the terminal
whether or not pytest captures output.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from services.account.webhook_auth import sign
from stack.contracts import edge_services
from tests.integration.callers import AccountStack
from tests.integration.conftest import RunningStack
from tests.integration.support.edge import Edge
from tests.integration.support.edge_trading import Trader
from tests.integration.support.edge_trading import market
from tests.integration.support.edge_trading import new_trader
from tests.integration.support.edge_trading import place_grpc
from tests.integration.support.hostile import ACCEPTED
from tests.integration.support.hostile import OWNER_COLUMNS
from tests.integration.support.hostile import RPCS
from tests.integration.support.hostile import SETTINGS
from tests.integration.support.hostile import SIGN_IN_METHODS
from tests.integration.support.hostile import VOLATILE
from tests.integration.support.hostile import Baseline
from tests.integration.support.hostile import Ids
from tests.integration.support.hostile import Report
from tests.integration.support.hostile import Requests
from tests.integration.support.hostile import Rpc
from tests.integration.support.hostile import World
from tests.integration.support.hostile import call
from tests.integration.support.hostile import changed
from tests.integration.support.hostile import owner_columns
from tests.integration.support.hostile import snapshot
from tradingmesh.account.v1 import account_service_pb2
from tradingmesh.account.v1 import auth_service_pb2 as auth_pb2
from tradingmesh.account.v1 import auth_service_pb2_grpc as auth_grpc
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.errors import ERROR_DOMAIN
from tradingmesh.errors import details_of
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.oms.v1 import position_service_pb2
from tradingmesh.pricing.v1 import pricing_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2
from tradingmesh.reporting.v1 import reporting_service_pb2
from tradingmesh.risk.v1 import risk_service_pb2

IDLE_SECONDS = 1.5  # how long the database is watched for tables that change by themselves
SETTLE_ROUNDS = 8
SELF_CHANGING = ("published_prices",)  # known to change every moment

# -- values -----------------------------------------------------------------------------------


# -- the RPCs ---------------------------------------------------------------------------------


# -- callers, ids and the report --------------------------------------------------------------


def templates(me: Trader, order_id: str, position_id: str) -> dict[str, Message]:
    """Valid requests of the trader's RPCs that act on its own objects: the hostile examples
    change one or two of their fields."""
    account = me.account_id
    week = types_pb2.TimeRange()
    week.start_time.FromSeconds(int(time.time()) - 7 * 86_400)
    market = order_service_pb2.PlaceOrderRequest(
        account_id=account,
        client_order_id="hostile-template",
        symbol="EURUSD",
        side=types_pb2.SIDE_BUY,
        type=trading_pb2.ORDER_TYPE_MARKET,
        quantity="0.01",
    )
    found: list[Message] = [
        market,
        order_service_pb2.AmendOrderRequest(account_id=account, order_id=order_id, price="0.6"),
        order_service_pb2.CancelOrderRequest(account_id=account, order_id=order_id),
        order_service_pb2.GetOrderRequest(account_id=account, order_id=order_id),
        order_service_pb2.ListOrdersRequest(account_id=account, page_size=10),
        position_service_pb2.ClosePositionRequest(
            account_id=account,
            position_id=position_id,
            client_order_id="hostile-close",
            quantity="0.01",
        ),
        position_service_pb2.ModifyPositionRequest(
            account_id=account, position_id=position_id, stop_loss="0.5"
        ),
        position_service_pb2.GetPositionRequest(account_id=account, position_id=position_id),
        account_service_pb2.RequestWithdrawalRequest(
            account_id=account, amount="1", idempotency_key="hostile-withdrawal"
        ),
        account_service_pb2.ListLedgerEntriesRequest(account_id=account, page_size=10),
        pricing_service_pb2.GetCandlesRequest(
            account_id=account, symbol="EURUSD", timeframe=pricing_pb2.TIMEFRAME_M1
        ),
        pricing_service_pb2.GetQuoteRequest(account_id=account, symbol="EURUSD"),
        pricing_service_pb2.ListQuotesRequest(account_id=account, symbols=["EURUSD"]),
        reporting_service_pb2.ListTradeHistoryRequest(account_id=account, page_size=10),
        reporting_service_pb2.GetStatementRequest(account_id=account, time_range=week),
        reporting_service_pb2.GetPerformanceRequest(account_id=account),
        risk_service_pb2.ListMarginEventsRequest(account_id=account, page_size=10),
    ]
    return {request.DESCRIPTOR.name.removesuffix("Request"): request for request in found}


@pytest.fixture(scope="module")
def report(request: pytest.FixtureRequest) -> Iterator[Report]:
    found = Report()
    yield found
    # Straight to the terminal, past pytest's capture (which holds file descriptor 1 here).
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            for line in found.lines():
                reporter.write_line(line)


@pytest.fixture(scope="module")
def world(edge: Edge, accounts: AccountStack) -> World:
    """Two funded traders, each with a position and (mine) an open limit order; every id of an
    object in the database is then someone's, to be used against the other's account."""
    me, other = new_trader(edge, accounts), new_trader(edge, accounts)
    for trader in (me, other):
        place_grpc(edge, trader, market(trader, types_pb2.SIDE_BUY, "0.01"))
    resting = market(me, types_pb2.SIDE_BUY, "0.01")
    resting.type = trading_pb2.ORDER_TYPE_LIMIT
    resting.price = "0.50000"
    resting.time_in_force = trading_pb2.TIME_IN_FORCE_GTC
    order = place_grpc(edge, me, resting)
    with edge.database() as db:
        row = db.execute(
            "SELECT id::text FROM oms.positions WHERE account_id = %s", (me.account_id,)
        ).fetchone()
    assert row is not None, "the trader's market order opened no position"
    operator = edge.state.operator
    assert operator is not None
    with edge.channel() as channel:
        login = auth_grpc.AuthServiceStub(channel).Login(
            auth_pb2.LoginRequest(username=operator.username, password=operator.password),
            timeout=20,
        )
    own, foreign = ids_in_database(edge, me)
    return World(
        me, other, login.access_token, Ids(own, foreign), templates(me, order.id, str(row[0]))
    )


def ids_in_database(edge: Edge, me: Trader) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A few ids of every table with an `id`: the trader's own objects and everyone else's."""
    own: list[str] = [me.user_id, me.account_id]
    foreign: list[str] = []
    with edge.database() as db:
        columns = owner_columns(db)
        for (schema, table), names in sorted(columns.items()):
            if "id" not in names or any(part in table for part in VOLATILE):
                continue
            owners = [c for c in OWNER_COLUMNS if c in names]
            if not owners:
                continue
            mine = " OR ".join(f"{c}::text IN (%(user)s, %(account)s)" for c in owners)
            for where, into in ((mine, own), (f"NOT ({mine})", foreign)):
                rows = db.execute(
                    f'SELECT id::text FROM "{schema}"."{table}" WHERE {where} LIMIT 2',
                    {"user": me.user_id, "account": me.account_id},
                ).fetchall()
                into.extend(str(row[0]) for row in rows)
    return tuple(dict.fromkeys(own)), tuple(dict.fromkeys(foreign))


# -- the database before and after ------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline(edge: Edge, world: World) -> Baseline:
    """The database once the traders' own setup has settled (its events booked, notified and
    copied); what still changes while nobody calls changes by itself (prices) and is left out."""
    others, own = snapshot(edge, world.me, own=False), snapshot(edge, world.me, own=True)
    moving: set[str] = set()
    for _ in range(SETTLE_ROUNDS):
        time.sleep(IDLE_SECONDS)
        later, later_own = snapshot(edge, world.me, own=False), snapshot(edge, world.me, own=True)
        moving = changed(others, later) | changed(own, later_own)
        others, own = later, later_own
        if all(any(part in name for part in SELF_CHANGING) for name in moving):
            break
    return Baseline(others, own, moving)


# -- gRPC -------------------------------------------------------------------------------------


def shown(request: Message) -> str:
    text = " ".join(str(request).split())
    return text if len(text) <= 300 else text[:300] + " ..."


@pytest.mark.parametrize("rpc", RPCS, ids=[rpc.path.rpartition(".")[2] for rpc in RPCS])
def test_hostile_requests_get_a_client_error_with_details_never_a_server_error(
    rpc: Rpc, edge: Edge, world: World, baseline: Baseline, report: Report
) -> None:
    template = world.templates.get(rpc.method.name)
    requests = Requests(world.ids, world.me.account_id).message(rpc.method.input_type, 0, template)
    # Mostly the ordinary trader, one in nine with no token; admin reads also as the operator.
    callers = (
        ["trader"] * 8 + ["anonymous"] + (["operator"] * 3 if rpc.admin and rpc.read_only else [])
    )
    tokens = {"trader": world.me.token, "anonymous": None, "operator": world.operator_token}
    found = report.violations[rpc.path]

    with edge.channel(options=[("grpc.max_send_message_length", 64 << 20)]) as channel:

        @settings(SETTINGS, max_examples=rpc.examples)
        @given(request=requests, who=st.sampled_from(callers))
        def hostile(request: Message, who: str) -> None:
            outcome = call(channel, rpc, request, tokens[who])
            report.outcomes[rpc.path][outcome.label] += 1
            if outcome.code == grpc.StatusCode.OK:
                report.succeeded.add(rpc.path)
            elif outcome.code not in ACCEPTED or not outcome.error_info:
                found.append(
                    f"{who}: {outcome.label} {outcome.message!r} (ErrorInfo:"
                    f" {outcome.error_info})"
                    f" for {shown(request)}"
                )

        hostile()

    assert not found, f"{rpc.path}: {len(found)} bad answers:\n" + "\n".join(found[:10])


def test_every_routed_rpc_is_covered(running_stack: RunningStack) -> None:
    """The generated cases cover exactly what Envoy routes (its descriptor set's services)."""
    descriptors = Path(running_stack.state.state_dir) / "envoy" / "descriptors.binpb"
    routed_services = {service.full_name for service in edge_services(descriptors)}
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptors.read_bytes())
    routed = {
        f"/{file.package}.{service.name}/{method.name}"
        for file in files.file
        for service in file.service
        if f"{file.package}.{service.name}" in routed_services
        for method in service.method
    }

    assert routed == {rpc.path for rpc in RPCS}


# -- REST -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    verb: str
    template: str
    body: str
    rpc: Rpc


def routes() -> list[Route]:
    found = []
    for rpc in RPCS:
        rules = [rpc.http, *rpc.http.additional_bindings]
        for rule in rules:
            verb = rule.WhichOneof("pattern")
            if verb is None or verb == "custom":
                continue
            found.append(Route(verb.upper(), getattr(rule, verb), rule.body, rpc))
    return found


@dataclass(frozen=True)
class RestCase:
    query: str
    body: bytes | None
    wrong_type: bool  # a value of the wrong JSON type: 4xx; else anything but 5xx


QUERY_VALUES: tuple[str, ...] = ("\x00", "' OR 1=1 --", "-0", "NaN", "1e99", "9" * 5_000)
WRONG_QUERY_VALUES: dict[int, tuple[str, ...]] = {
    FieldDescriptor.TYPE_ENUM: ("NOT_A_VALUE", "1.5"),
    FieldDescriptor.TYPE_BOOL: ("maybe", "2"),
}
WRONG_NUMBERS = ("abc", "1.5", "1e99", "99999999999999999999999", "NaN")


def rest_cases(route: Route) -> list[RestCase]:
    """Wrong JSON types and hostile values for one route, in its body or its query."""
    fields = list(route.rpc.method.input_type.fields)
    cases: list[RestCase] = []
    if route.body:
        for raw in (b"[]", b'"text"', b"123", b"{", b'{"a":' * 300):
            cases.append(RestCase("", raw, True))
        for described in fields[:6]:
            for value in _wrong_json(described):
                body = json.dumps({described.json_name: value}).encode()
                cases.append(RestCase("", body, True))
        return cases
    for described in fields[:6]:
        if described.type == FieldDescriptor.TYPE_MESSAGE:
            continue
        if described.type == FieldDescriptor.TYPE_STRING:
            wrong, values = False, QUERY_VALUES
        else:
            wrong, values = True, WRONG_QUERY_VALUES.get(described.type, WRONG_NUMBERS)
        for value in values:
            cases.append(
                RestCase(urllib.parse.urlencode({described.json_name: value}), None, wrong)
            )
    return cases


def _wrong_json(described: FieldDescriptor) -> list[object]:
    if described.is_repeated:
        return [{"x": 1}, "x"]
    kind = described.type
    if kind == FieldDescriptor.TYPE_STRING:
        return [1.5, 1e300, {"x": 1}, [1]]
    if kind == FieldDescriptor.TYPE_ENUM:
        return ["NOT_A_VALUE", 1.5, {"x": 1}]
    if kind == FieldDescriptor.TYPE_MESSAGE:
        return ["text", 12, [1]]
    if kind == FieldDescriptor.TYPE_BOOL:
        return ["maybe", 2]
    return ["abc", 1.5, 1e300, {"x": 1}]


_PATH_VARIABLE = re.compile(r"\{([^}=]+)(=[^}]*)?\}")


def test_hostile_rest_bodies_and_queries_answer_4xx_never_5xx(
    edge: Edge, world: World, report: Report
) -> None:
    bad: list[str] = []
    connection = edge.https()
    try:
        for route in routes():
            if route.rpc.streaming or route.rpc.method.name in SIGN_IN_METHODS:
                continue
            path = _PATH_VARIABLE.sub(lambda m: _path_value(m.group(1), world), route.template)
            for case in rest_cases(route):
                target = f"{path}?{case.query}" if case.query else path
                status = _rest(connection, edge, route.verb, target, case.body, world.me.token)
                report.rest[str(status)] += 1
                if status >= 500 or (case.wrong_type and not 400 <= status < 500):
                    shown = (case.body or b"")[:120]
                    bad.append(f"{route.verb} {target[:200]} {shown!r}: {status}")
    finally:
        connection.close()

    assert not bad, f"{len(bad)} REST answers not 4xx:\n" + "\n".join(bad[:20])


def _path_value(name: str, world: World) -> str:
    last = name.rpartition(".")[2]
    if last == "account_id":
        return world.me.account_id
    if last == "symbol":
        return "EURUSD"
    if last == "trading_date":
        return "2026-01-02"
    return str(uuid.uuid4())


def _rest(
    connection: http.client.HTTPSConnection,
    edge: Edge,
    verb: str,
    target: str,
    body: bytes | None,
    token: str,
) -> int:
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    for _ in range(40):
        try:
            connection.request(verb, target, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
        except (http.client.HTTPException, OSError):
            connection.close()
            connection = edge.https()
            continue
        if response.status != 429:
            return response.status
        time.sleep(0.5)
    raise AssertionError(f"{verb} {target} stayed rate limited")


# -- the database check -----------------------------------------------------------------------


def test_refused_requests_changed_nothing_in_the_database(
    edge: Edge, world: World, baseline: Baseline, report: Report
) -> None:
    """Runs after the hostile calls (pytest keeps the module's order)."""
    others = changed(baseline.others, snapshot(edge, world.me, own=False)) - baseline.moving
    own = changed(baseline.own, snapshot(edge, world.me, own=True)) - baseline.moving
    report.database = [
        f"database: {len(baseline.others)} tables compared; changed by themselves (left out):"
        f" {', '.join(sorted(baseline.moving)) or 'none'}; the trader's own rows changed in:"
        f" {', '.join(sorted(own)) or 'none'};"
        f" other rows changed in: {', '.join(sorted(others)) or 'none'}"
    ]

    assert not others, f"rows of other users or of the platform changed: {sorted(others)}"
    # The trader's own rows may change only through a call that succeeded.
    assert not own or report.succeeded, f"the trader's own rows changed: {sorted(own)}"


# -- signed webhooks --------------------------------------------------------------------------

WEBHOOK_EXAMPLES = 60
JSON_VALUES: tuple[str, ...] = (
    # Raw JSON texts: what a provider's body may hold where a string is expected.
    '""',
    '"\\u0000"',
    '"a\\u0000b"',
    '"\\ud800"',  # a lone surrogate: valid JSON, no valid UTF-8
    '"1e5"',
    '"NaN"',
    '"-0"',
    '"0.0000000000001"',
    '"9999999999999999999.5"',
    '"0001-01-01T00:00:00+14:00"',
    '"9999-12-31T23:59:59-14:00"',
    '"2026-13-45T99:99:99Z"',
    '"2026-12-06T10:00:00"',
    "1e400",
    "NaN",
    "-Infinity",
    "12",
    "null",
    "true",
    "[]",
    '{"a": 1}',
    '"' + "x" * 60_000 + '"',
)


def _webhook_body(fields: dict[str, str | None]) -> bytes:
    parts = [f"{json.dumps(name)}: {value}" for name, value in fields.items() if value is not None]
    return ("{" + ", ".join(parts) + "}").encode()


def test_hostile_signed_webhook_bodies_are_refused_as_client_errors(
    edge: Edge, accounts: AccountStack, world: World, report: Report
) -> None:
    """A provider's correctly signed body with hostile JSON: a 4xx with a reason (or 200 when it
    is well-formed), never a 5xx."""
    with edge.database() as db:
        row = db.execute(
            "SELECT account_number FROM account.trading_accounts WHERE id = %s",
            (world.me.account_id,),
        ).fetchone()
    assert row is not None
    good = {
        "payments": {
            "event_id": None,
            "type": '"deposit"',
            "account_number": json.dumps(row[0]),
            "amount": '"1.00"',
            "currency": '"USD"',
            "status": '"pending"',
            "occurred_at": '"2026-12-06T10:00:00Z"',
        },
        "kyc": {
            "event_id": None,
            "user_id": json.dumps(world.me.user_id),
            "status": '"approved"',
            "occurred_at": '"2026-12-06T10:00:00Z"',
        },
    }
    providers = {"payments": "demopay", "kyc": "demokyc"}
    raw_bodies = st.sampled_from(
        [
            b"[" * 30_000,
            b'{"a":' * 20_000,
            b"\xff\xfe",
            b"{}",
            b"",
            b'{"event_id": "e"'.ljust(70_000),
        ]
    )
    bad: list[str] = []
    refused: list[str] = []

    @settings(SETTINGS, max_examples=WEBHOOK_EXAMPLES)
    @given(
        kind=st.sampled_from(sorted(good)),
        hostile=st.data(),
        raw=st.sampled_from([None] * 5) | raw_bodies,  # mostly hostile fields in an object
        event=st.integers(0, 10**12),
    )
    def hostile_webhook(kind: str, hostile: st.DataObject, raw: bytes | None, event: int) -> None:
        fields = dict(good[kind])
        fields["event_id"] = json.dumps(f"hostile-{event}")
        chosen = hostile.draw(st.sets(st.sampled_from(sorted(fields)), min_size=1, max_size=2))
        for name in chosen:
            fields[name] = hostile.draw(st.none() | st.sampled_from(JSON_VALUES))
        body = raw if raw is not None else _webhook_body(fields)
        signature = _signature(accounts, providers[kind], body)
        path = f"/v1/webhooks/{kind}/{providers[kind]}"
        status, answer = accounts.post_webhook(path, body, signature)
        report.rest[f"{status} (signed webhook)"] += 1
        if status >= 500 or (status >= 400 and not _has_reason(answer)):
            bad.append(f"{status} {answer!r:.200} for {body[:200]!r}")
        if status >= 400:
            refused.append(f"hostile-{event}")

    hostile_webhook()
    with edge.database() as db:
        row = db.execute(
            "SELECT count(*) FROM account.webhook_events WHERE event_id = ANY(%s)", (refused,)
        ).fetchone()

    assert not bad, f"{len(bad)} bad webhook answers:\n" + "\n".join(bad[:10])
    assert row is not None
    assert row[0] == 0, "a refused webhook event was recorded"


def _signature(accounts: AccountStack, provider: str, body: bytes) -> str:
    at = int(time.time())
    return f"t={at},v1={sign(accounts.webhook_secrets[provider], at, body)}"


def _has_reason(answer: dict[str, Any]) -> bool:
    details = answer.get("details") or []
    return any(
        isinstance(d, dict) and d.get("domain") == ERROR_DOMAIN and d.get("reason") for d in details
    )


def test_a_login_name_with_nul_is_invalid_argument_not_internal(edge: Edge) -> None:
    with edge.channel() as channel, pytest.raises(grpc.RpcError) as raised:
        auth_grpc.AuthServiceStub(channel).Login(
            auth_pb2.LoginRequest(username="demo\x00", password="x"), timeout=20
        )

    assert details_of(raised.value).code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_huge_unknown_kyc_user_id_is_not_found_with_a_bounded_answer(
    accounts: AccountStack,
) -> None:
    body = json.dumps(
        {
            "event_id": f"hostile-{uuid.uuid4().hex}",
            "user_id": "x" * 60_000,
            "status": "approved",
            "occurred_at": "2026-12-06T10:00:00Z",
        }
    ).encode()

    status, answer = accounts.post_webhook(
        "/v1/webhooks/kyc/demokyc", body, _signature(accounts, "demokyc", body)
    )

    assert status == 404, answer
    assert len(json.dumps(answer)) < 8_192

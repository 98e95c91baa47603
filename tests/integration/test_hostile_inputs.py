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
import importlib
import json
import os
import pkgutil
import re
import time
import urllib.parse
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import tradingmesh
from services.account.webhook_auth import sign
from services.platform.reflection import is_internal
from stack.contracts import edge_services
from stack.ports import SERVICES
from tests.integration.callers import AccountStack, account_stack
from tests.integration.conftest import RunningStack
from tests.integration.test_auth import Edge, bearer
from tests.integration.test_trading_flow import Trader, market, new_trader, place_grpc
from tradingmesh.account.v1 import account_service_pb2
from tradingmesh.account.v1 import auth_service_pb2 as auth_pb2
from tradingmesh.account.v1 import auth_service_pb2_grpc as auth_grpc
from tradingmesh.common.v1 import trading_pb2, types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import ERROR_DOMAIN, STATUS_DETAILS_KEY, details_of, reason_string
from tradingmesh.oms.v1 import order_service_pb2, position_service_pb2
from tradingmesh.pricing.v1 import pricing_pb2, pricing_service_pb2
from tradingmesh.reporting.v1 import reporting_service_pb2
from tradingmesh.risk.v1 import risk_service_pb2

# What a hostile request may get: OK or a client error. UNAVAILABLE (no price, a dependency down)
# and ABORTED (a lost race) describe the platform's state, not the request, and are no bugs.
ACCEPTED = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.UNAVAILABLE,
    }
)
# Per unary RPC; `TM_HOSTILE_EXAMPLES=200` in the environment runs a longer hunt.
EXAMPLES = int(os.environ.get("TM_HOSTILE_EXAMPLES", "25"))
STREAM_EXAMPLES = 5  # per server-streaming RPC: a quiet stream costs its whole wait
STREAM_WAIT = 2.0  # seconds a stream may stay quiet; then it counts as open (OK)
CALL_TIMEOUT = 20.0
# Their rate limit (per client address) is shared with the rest of the suite: few calls.
SIGN_IN_METHODS = frozenset({"Login", "ExchangeApiKey"})
SIGN_IN_EXAMPLES = 4

# Tables that change by themselves (prices, jobs, queues, logs, sessions), by part of the name.
# notification.deliveries is the email sender's work queue: its rows' attempts and statuses move
# on the sender's own schedule (retries, the daily statements after another test's rollover);
# a delivery is only ever created with its notification, and notification.notifications is
# checked.
VOLATILE = (
    "quote",
    "tick",
    "candle",
    "outbox",
    "inbox",
    "audit",
    "login_attempt",
    "alembic",
    "deliveries",
)
SCHEMAS = ("account", "pricing", "oms", "risk", "reporting", "notification")
OWNER_COLUMNS = ("account_id", "user_id")
# The trader's rows of tables without an owner column: its user, and the broker's legs of its
# ledger journals (a trade the trader placed books the house side too).
OWNED_THROUGH = {
    "account.users": "id::text = %(user)s",
    "account.house_ledger_entries": "journal_id IN (SELECT journal_id FROM"
    " account.ledger_entries WHERE account_id::text = %(account)s)",
}
IDLE_SECONDS = 1.5  # how long the database is watched for tables that change by themselves
SETTLE_ROUNDS = 8
SELF_CHANGING = ("published_prices",)  # known to change every moment

# -- values -----------------------------------------------------------------------------------

SHORT_STRINGS: tuple[str, ...] = (
    "",
    " ",
    "Ünïcødé 漢字 🙂 \u202e\u200b",
    "\x00",
    "a\x00b",
    "' OR '1'='1' --",
    "'; DROP TABLE account.users; --",
    '{"$ne": null}',
    "{",
    "null",
    "%s%n%x",
    "../../../../etc/passwd",
    "1e5",
    "1E-3",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "+1",
    "-1",
    "-0",
    "-0.00",
    "0",
    "0.0000000000001",
    "1" * 19,
    "9" * 40 + ".5",
    "1." + "1" * 30,
    "1.5.2",
    "0x10",
    " 1 ",
    "1,5",
    "\uff11\uff12",  # full-width digits
    "\u0661",  # an Arabic-Indic digit
)
LONG_STRINGS: tuple[str, ...] = ("x" * 5_000, "9" * 200_000)
# Well-formed values, so that the other fields' hostility gets past the first check.
PLAUSIBLE_STRINGS: tuple[str, ...] = ("EURUSD", "0.01", "1.1", "100000", "USD", "standard")
INT_EDGES: dict[int, tuple[int, ...]] = {
    FieldDescriptor.TYPE_INT32: (0, -1, 1, 2**31 - 1, -(2**31)),
    FieldDescriptor.TYPE_SINT32: (0, -1, 2**31 - 1, -(2**31)),
    FieldDescriptor.TYPE_SFIXED32: (0, -1, 2**31 - 1, -(2**31)),
    FieldDescriptor.TYPE_UINT32: (0, 1, 2**31, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 1, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63)),
    FieldDescriptor.TYPE_SINT64: (0, -1, 2**63 - 1, -(2**63)),
    FieldDescriptor.TYPE_SFIXED64: (0, -1, 2**63 - 1, -(2**63)),
    FieldDescriptor.TYPE_UINT64: (0, 1, 2**63, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 1, 2**64 - 1),
}
# Timestamps and durations beyond what a calendar or a datetime holds, and some inside.
SECONDS_EDGES = (
    0,
    -1,
    1,
    -62135596801,
    -62135596800,
    253402300799,
    253402300800,
    2**63 - 1,
    -(2**63),
    4102444800,
)
NANOS_EDGES = (0, -1, 999_999_999, 1_000_000_000, 2**31 - 1, -(2**31))
BYTES: tuple[bytes, ...] = (
    b"",
    b"\x00" * 16,
    b"{",
    b'{"amount": 1e400, "event_id": null}',
    b"[]",
    b'"x"',
    b"\xff\xfe\xfd",
    b"{" * 5_000,
    json.dumps({"event_id": "e", "type": "deposit", "amount": "NaN"}).encode(),
    b"a" * 300_000,
)
BIG_LIST = 3_000
# Field names that hold decimal strings (quantities, prices, money, rates).
DECIMAL_WORDS = (
    "quantity",
    "price",
    "amount",
    "markup",
    "commission",
    "rate",
    "level",
    "volume",
    "size",
    "limit",
    "step",
    "margin",
    "lots",
    "balance",
    "swap",
    "exposure",
)
MADE_UP_IDS = (
    str(uuid.UUID(int=0)),
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    str(uuid.uuid5(uuid.NAMESPACE_URL, "tradingmesh-hostile")),
    str(uuid.uuid5(uuid.NAMESPACE_URL, "tradingmesh-hostile")).upper(),
    uuid.uuid5(uuid.NAMESPACE_URL, "tradingmesh-hostile").hex,
    "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, "tradingmesh")) + "}",
)


@dataclass(frozen=True)
class Ids:
    """The ids a hostile request may carry: the caller's own objects', other users', made up."""

    own: tuple[str, ...]
    foreign: tuple[str, ...]


class Requests:
    """Hypothesis strategies for hostile messages, made from their descriptors."""

    def __init__(self, ids: Ids, account: str) -> None:
        self._account = account
        pooled = SHORT_STRINGS + PLAUSIBLE_STRINGS
        self._short = st.sampled_from(pooled) | st.text(max_size=24)
        self._strings = self._short | st.sampled_from(LONG_STRINGS)
        ids_ = [st.sampled_from(MADE_UP_IDS)]
        ids_ += [st.sampled_from(group) for group in (ids.own, ids.foreign) if group]
        self._ids = st.one_of(*ids_)

    def message(
        self, descriptor: Descriptor, depth: int = 0, template: Message | None = None
    ) -> st.SearchStrategy[Message]:
        """Half the messages have every field hostile or missing; the other half one or two
        hostile fields among well-formed ones (those of `template`, a valid request, if given),
        so that the hostility gets past validation to the handler."""
        cls = message_factory.GetMessageClass(descriptor)
        fields = [f for f in descriptor.fields if depth < 3 or f.message_type is None]
        hostile = {f.name: st.none() | self._field(f, depth) for f in fields}
        plausible = {f.name: st.none() | self._plausible_field(f, depth) for f in fields}
        names = [f.name for f in fields]

        @st.composite
        def build(draw: st.DrawFn) -> Message:
            built = cls()
            if not names:
                return built
            every = draw(st.booleans())
            chosen = (
                set(names)
                if every
                else draw(st.sets(st.sampled_from(names), min_size=1, max_size=2))
            )
            if template is not None and not every:
                built.CopyFrom(template)
            for described in fields:
                name = described.name
                if template is not None and not every and name not in chosen:
                    continue  # the template's own, well-formed value
                value = draw(hostile[name] if name in chosen else plausible[name])
                built.ClearField(name)
                if value is not None:
                    _assign(built, described, value)
            return built

        return build()

    def plausible(self, descriptor: Descriptor, depth: int) -> st.SearchStrategy[Message]:
        """A message of well-formed values (or missing fields)."""
        cls = message_factory.GetMessageClass(descriptor)
        fields = [f for f in descriptor.fields if depth < 3 or f.message_type is None]
        parts = {f.name: st.none() | self._plausible_field(f, depth) for f in fields}

        def build(values: dict[str, Any]) -> Message:
            built = cls()
            for described in fields:
                if values[described.name] is not None:
                    _assign(built, described, values[described.name])
            return built

        return st.fixed_dictionaries(parts).map(build)

    def _plausible_field(self, described: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        if _is_map(described):
            entry = _message_type(described)
            keys = self._plausible_value(entry.fields_by_name["key"], depth)
            values = self._plausible_value(entry.fields_by_name["value"], depth)
            return st.dictionaries(keys, values, max_size=2)
        one = self._plausible_value(described, depth)
        return st.lists(one, min_size=1, max_size=2) if described.is_repeated else one

    def _plausible_value(self, described: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        kind, name = described.type, described.name
        if kind == FieldDescriptor.TYPE_STRING:
            if name == "account_id":
                return st.just(self._account) | self._ids
            if name == "id" or name.endswith(("_id", "_ids")):
                return self._ids
            if "symbol" in name:
                return st.sampled_from(("EURUSD", "GBPUSD", "XAUUSD", "NOPE"))
            if name in ("client_order_id", "idempotency_key") or name.endswith("_key"):
                return st.builds(lambda n: f"hostile-{n}", st.integers(0, 10**9))
            if "currency" in name:
                return st.just("USD")
            if any(word in name for word in DECIMAL_WORDS):
                return st.sampled_from(("0.01", "1.1", "1", "100", "0.00001", "1.123456789012"))
            return st.sampled_from(("hostile", "EURUSD", "0.01", "standard")) | st.text(max_size=12)
        if kind == FieldDescriptor.TYPE_BYTES:
            return st.sampled_from(BYTES[:3])
        if kind in INT_EDGES:
            return st.integers(0, 100)
        if kind == FieldDescriptor.TYPE_ENUM:
            enum = described.enum_type
            assert enum is not None
            return st.sampled_from([v.number for v in enum.values if v.number] or [0])
        if kind == FieldDescriptor.TYPE_MESSAGE:
            descriptor = _message_type(described)
            cls = message_factory.GetMessageClass(descriptor)
            if descriptor.full_name == "google.protobuf.Timestamp":
                now = int(time.time())
                return st.builds(lambda s: cls(seconds=s), st.integers(now - 40 * 86_400, now))
            if descriptor.full_name == "google.protobuf.Duration":
                return st.builds(lambda s: cls(seconds=s), st.integers(0, 86_400))
            if descriptor.full_name == "google.protobuf.FieldMask":
                names = [f.name for f in _masked(described)] or ["x"]
                return st.builds(
                    lambda p: cls(paths=p), st.lists(st.sampled_from(names), max_size=3)
                )
            return self.plausible(descriptor, depth + 1)
        return self._value(described, depth, small=True)

    def _field(self, described: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        if _is_map(described):
            entry = _message_type(described)
            keys = self._value(entry.fields_by_name["key"], depth, small=True)
            values = self._value(entry.fields_by_name["value"], depth, small=True)
            return st.dictionaries(keys, values, max_size=3)
        one = self._value(described, depth, small=False)
        if not described.is_repeated:
            return one
        small = self._value(described, depth, small=True)
        return (
            st.lists(one, max_size=3)
            | st.builds(lambda v: [v] * BIG_LIST, small)  # thousands of items
            | st.builds(lambda v: [v, v], small)  # duplicates
        )

    def _value(self, described: FieldDescriptor, depth: int, small: bool) -> st.SearchStrategy[Any]:
        kind = described.type
        if kind == FieldDescriptor.TYPE_STRING:
            strings = self._short if small else self._strings
            is_id = described.name == "id" or described.name.endswith("_id")
            return self._ids | strings if is_id else strings
        if kind == FieldDescriptor.TYPE_BYTES:
            return st.sampled_from(BYTES[:7] if small else BYTES) | st.binary(max_size=64)
        if kind == FieldDescriptor.TYPE_BOOL:
            return st.booleans()
        if kind in INT_EDGES:
            edges = INT_EDGES[kind]
            return st.sampled_from(edges) | st.integers(min(edges), max(edges))
        if kind == FieldDescriptor.TYPE_ENUM:
            enum = described.enum_type
            assert enum is not None
            known = [v.number for v in enum.values]
            return st.sampled_from([*known, 99, -1, 2**31 - 1])
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return st.sampled_from([0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e38])
        if kind == FieldDescriptor.TYPE_MESSAGE:
            descriptor = _message_type(described)
            cls = message_factory.GetMessageClass(descriptor)
            if descriptor.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
                return st.builds(
                    lambda s, n: cls(seconds=s, nanos=n),
                    st.sampled_from(SECONDS_EDGES),
                    st.sampled_from(NANOS_EDGES),
                )
            if descriptor.full_name == "google.protobuf.FieldMask":
                paths = st.lists(
                    st.sampled_from([f.name for f in _masked(described)]) | self._short
                )
                return st.builds(lambda p: cls(paths=p), paths)
            if small:
                return st.just(cls())
            return self.message(descriptor, depth + 1)
        raise AssertionError(f"no strategy for {described.full_name} (type {kind})")


def _masked(mask: FieldDescriptor) -> list[FieldDescriptor]:
    """The fields an update mask may name: those of its message's other message fields."""
    container = mask.containing_type
    assert container is not None
    siblings = container.fields
    return [
        f for s in siblings if s.message_type and s is not mask for f in _message_type(s).fields
    ]


def _message_type(described: FieldDescriptor) -> Descriptor:
    descriptor = described.message_type
    assert descriptor is not None, described.full_name
    return descriptor


def _is_map(described: FieldDescriptor) -> bool:
    return bool(
        described.type == FieldDescriptor.TYPE_MESSAGE
        and _message_type(described).GetOptions().map_entry
    )


def _assign(message: Message, described: FieldDescriptor, value: Any) -> None:
    target = getattr(message, described.name)
    if _is_map(described):
        value_field = _message_type(described).fields_by_name["value"]
        for key, item in value.items():
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif described.is_repeated:
        if described.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value:
                target.add().CopyFrom(item)
        else:
            target.extend(value)
    elif described.type == FieldDescriptor.TYPE_MESSAGE:
        target.CopyFrom(value)
    else:
        setattr(message, described.name, value)


# -- the RPCs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rpc:
    path: str  # /tradingmesh.oms.v1.OrderService/PlaceOrder
    method: MethodDescriptor

    @property
    def streaming(self) -> bool:
        return bool(self.method.server_streaming)

    @property
    def admin(self) -> bool:
        return "Admin" in self.method.containing_service.name

    @property
    def http(self) -> http_pb2.HttpRule:
        rule: http_pb2.HttpRule = self.method.GetOptions().Extensions[annotations_pb2.http]
        return rule

    @property
    def read_only(self) -> bool:
        return bool(self.http.WhichOneof("pattern") == "get")

    @property
    def examples(self) -> int:
        if self.method.name in SIGN_IN_METHODS:
            return SIGN_IN_EXAMPLES
        return STREAM_EXAMPLES if self.streaming else EXAMPLES


def public_rpcs() -> list[Rpc]:
    """The RPCs of every public and admin service in the SDK's contracts, which are the protos
    the stack's descriptor set is built from (a test checks that Envoy routes exactly these)."""
    found = []
    for module in pkgutil.walk_packages(tradingmesh.__path__, "tradingmesh."):
        if not module.name.endswith("_pb2") or module.name.endswith("_grpc"):
            continue
        file = importlib.import_module(module.name).DESCRIPTOR
        parts = file.package.split(".")
        if len(parts) != 3 or parts[0] != "tradingmesh" or parts[1] not in SERVICES:
            continue
        for service in file.services_by_name.values():
            if is_internal(service.name):
                continue
            for method in service.methods:
                assert not method.client_streaming, method.full_name  # ADR 0001: there are none
                found.append(Rpc(f"/{service.full_name}/{method.name}", method))
    return sorted(found, key=lambda rpc: rpc.path)


RPCS = public_rpcs()


# -- callers, ids and the report --------------------------------------------------------------


@dataclass(frozen=True)
class World:
    me: Trader
    other: Trader
    operator_token: str
    ids: Ids
    templates: dict[str, Message]  # a well-formed request by method name


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


@dataclass
class Report:
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    succeeded: set[str] = field(default_factory=set)  # RPCs with a call that returned OK
    rest: Counter[str] = field(default_factory=Counter)
    database: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        total = sum(sum(c.values()) for c in self.outcomes.values())
        by_status: Counter[str] = Counter()
        for counts in self.outcomes.values():
            by_status.update(counts)
        lines = [
            "",
            f"hostile inputs: {len(self.outcomes)} RPCs through the edge over gRPC, {total} cases",
        ]
        lines += [f"  {status:<22} {count:>6}" for status, count in by_status.most_common()]
        for path in sorted(self.outcomes):
            seen = ", ".join(f"{s} {n}" for s, n in self.outcomes[path].most_common())
            lines.append(f"  {path.strip('/')}: {seen}")
        if self.rest:
            lines.append(f"hostile inputs over REST: {sum(self.rest.values())} cases")
            lines += [f"  HTTP {s:<17} {count:>6}" for s, count in self.rest.most_common()]
        bad = sum(len(v) for v in self.violations.values())
        lines += self.database
        lines.append(f"violations: {bad}")
        return lines


@pytest.fixture(scope="module")
def edge(running_stack: RunningStack) -> Edge:
    return Edge(running_stack.state)


@pytest.fixture(scope="module")
def accounts(running_stack: RunningStack) -> Iterator[AccountStack]:
    yield from account_stack(running_stack)


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


def owner_columns(db: Any) -> dict[tuple[str, str], set[str]]:
    columns: dict[tuple[str, str], set[str]] = defaultdict(set)
    rows = db.execute(
        "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE t.table_type = 'BASE TABLE' AND c.table_schema = ANY(%s)",
        (list(SCHEMAS),),
    ).fetchall()
    for schema, table, column in rows:
        columns[(schema, table)].add(column)
    return columns


# -- the database before and after ------------------------------------------------------------

Snapshot = dict[str, tuple[int, str]]


def snapshot(edge: Edge, me: Trader, *, own: bool) -> Snapshot:
    """Per table of the services' schemas, a row count and a checksum of its rows: the
    trader's own rows (by account or user id, or `OWNED_THROUGH`) if `own`, else every other."""
    found: Snapshot = {}
    with edge.database() as db:
        for (schema, table), names in sorted(owner_columns(db).items()):
            if any(part in table for part in VOLATILE):
                continue
            name = f"{schema}.{table}"
            owners = [f"{c}::text IN (%(user)s, %(account)s)" for c in OWNER_COLUMNS if c in names]
            owners += [OWNED_THROUGH[name]] if name in OWNED_THROUGH else []
            if own and not owners:
                continue
            mine = " OR ".join(owners) or "false"
            where = mine if own else f"NOT coalesce({mine}, false)"
            row = db.execute(
                "SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY"
                f' md5(t::text))), \'\') FROM "{schema}"."{table}" t WHERE {where}',
                {"user": me.user_id, "account": me.account_id},
            ).fetchone()
            assert row is not None
            found[name] = (int(row[0]), str(row[1]))
    return found


def changed(before: Snapshot, after: Snapshot) -> set[str]:
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}


@dataclass(frozen=True)
class Baseline:
    others: Snapshot
    own: Snapshot
    moving: set[str]  # tables that changed while nobody called


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


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    reason: str = ""
    error_info: bool = False  # an ErrorInfo of the tradingmesh domain in the status details
    message: str = ""

    @property
    def label(self) -> str:
        return self.code.name + (f"/{self.reason}" if self.reason else "")


def call(channel: grpc.Channel, rpc: Rpc, request: Message, token: str | None) -> Outcome:
    response_cls = message_factory.GetMessageClass(rpc.method.output_type)
    metadata = bearer(token) if token else ()
    for _ in range(40):
        try:
            if rpc.streaming:
                stream = channel.unary_stream(
                    rpc.path,
                    request_serializer=_serialized,
                    response_deserializer=response_cls.FromString,
                )(request, metadata=metadata, timeout=STREAM_WAIT)
                try:
                    next(iter(stream))
                finally:
                    stream.cancel()
            else:
                channel.unary_unary(
                    rpc.path,
                    request_serializer=_serialized,
                    response_deserializer=response_cls.FromString,
                )(request, metadata=metadata, timeout=CALL_TIMEOUT)
            return Outcome(grpc.StatusCode.OK)
        except StopIteration:
            return Outcome(grpc.StatusCode.OK)  # a stream that ended at once, cleanly
        except grpc.RpcError as error:
            outcome = _outcome_of(error)
            if rpc.streaming and outcome.code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return Outcome(grpc.StatusCode.OK)  # open and quiet until our own deadline
            if outcome.reason != reason_string(ErrorReason.ERROR_REASON_RATE_LIMITED):
                return outcome
            time.sleep(0.5)  # the per-user bucket refills: the case is worth sending
    raise AssertionError(f"{rpc.path} stayed rate limited")


def _serialized(message: Message) -> bytes:
    return message.SerializeToString()


def _outcome_of(error: grpc.RpcError) -> Outcome:
    details = details_of(error)
    trailers = cast("Iterable[tuple[str, str | bytes]]", error.trailing_metadata() or ())
    raw = next((v for k, v in trailers if k == STATUS_DETAILS_KEY and isinstance(v, bytes)), b"")
    info = False
    for detail in status_pb2.Status.FromString(raw).details if raw else ():
        found = error_details_pb2.ErrorInfo()
        info = info or bool(detail.Unpack(found) and found.domain == ERROR_DOMAIN and found.reason)
    reason = reason_string(details.reason) if info else ""
    return Outcome(details.code, reason, info, details.message[:200])


def shown(request: Message) -> str:
    text = " ".join(str(request).split())
    return text if len(text) <= 300 else text[:300] + " ..."


# Deterministic, no example database, no per-example deadline (the stack is shared and slow),
# no shrinking: every example's outcome is recorded, so a failure lists them all.
SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


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

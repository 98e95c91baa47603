"""Hostile inputs: the write RPCs called with malformed requests, the world of rows each may
change, and the snapshots that show a refused call changed nothing."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import time
import uuid
from collections import Counter
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import cast

import grpc
from google.api import annotations_pb2
from google.api import http_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from google.rpc import status_pb2
from hypothesis import HealthCheck
from hypothesis import Phase
from hypothesis import settings
from hypothesis import strategies as st

import tradingmesh
from services.platform.reflection import is_internal
from stack.ports import SERVICES
from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.edge_trading import Trader
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import ERROR_DOMAIN
from tradingmesh.errors import STATUS_DETAILS_KEY
from tradingmesh.errors import details_of
from tradingmesh.errors import reason_string

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


@dataclass(frozen=True)
class World:
    me: Trader
    other: Trader
    operator_token: str
    ids: Ids
    templates: dict[str, Message]  # a well-formed request by method name


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


Snapshot = dict[str, tuple[int, str]]


def snapshot(edge: Edge, me: Trader, *, own: bool) -> Snapshot:
    """Per table of the services' schemas, a row count and a checksum of its rows: the
    trader's own rows (by account or user id, or `OWNED_THROUGH`) if `own`, else every other.
    One statement for all the tables (one snapshot per call of the hostile modules)."""
    with edge.database() as db:
        parts = []
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
            parts.append(
                f"SELECT '{name}', count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY"
                f' md5(t::text))), \'\') FROM "{schema}"."{table}" t WHERE {where}'
            )
        rows = db.execute(
            " UNION ALL ".join(parts), {"user": me.user_id, "account": me.account_id}
        ).fetchall()
    return {str(name): (int(count), str(digest)) for name, count, digest in rows}


def changed(before: Snapshot, after: Snapshot) -> set[str]:
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}


@dataclass(frozen=True)
class Baseline:
    others: Snapshot
    own: Snapshot
    moving: set[str]  # tables that changed while nobody called


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


# Deterministic, no example database, no per-example deadline (the stack is shared and slow),
# no shrinking: every example's outcome is recorded, so a failure lists them all.
SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)

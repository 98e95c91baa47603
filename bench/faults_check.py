"""The reconciliation of the fault campaign (bench/faults.py): what the platform stored and
published, against what its clients were told.

Read as PostgreSQL's admin role and from JetStream (nats-py, the stack's NATS login from its
Vault), for the campaign's own accounts and for the outbox rows written since the run started:

- orders: every order acknowledged to a client (an answer carrying an order) is in
  `oms.orders` with the status the client was told or a later one (`lost` otherwise); an
  acknowledged order that is still working may end FILLED, CANCELLED or EXPIRED; one that
  ended REJECTED (`acked_then_rejected`: the client was told it was accepted, and our own
  restart must not cost it the order, issue #18) counts as lost too;
  no order exists on the accounts with a client_order_id the load did not send (`unasked`);
- trades and fills: per order, its trades add up to its filled quantity, never beyond its
  quantity; per STP hedge order (made since the start), its LP fills add up to its filled
  quantity (`doubled`); every position's quantity is the signed sum of its trades, its realized
  P&L and commission their sums (`positions_off`);
- money: every account's balance is the sum of its ledger entries, its last sequence their
  count (`unbalanced`); every trade's realized P&L and commission are booked once, with the
  trade's amounts (`unbooked`, `misbooked`), and no trade posting has no trade;
- events: every outbox row (account, oms, risk, pricing) was published (`unsent`) and is in its
  JetStream stream exactly once by `Nats-Msg-Id` (`missing_in_stream`, `doubled_in_stream`);
  every consumer with an inbox recorded each envelope it must apply (its subscription matches
  the envelope's subject and the envelope holds an event it claims: `inbox_missing`; the inbox's
  primary key makes "at most once" structural).

Some of these lag by design (a trade is booked from its event, the relay publishes after the
commit): `reconcile` repeats the whole reading until nothing is off or its timeout passes, and
returns the last reading.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections import Counter
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats
import psycopg
from nats.js.api import AckPolicy
from nats.js.api import ConsumerConfig
from nats.js.api import DeliverPolicy

from bench.faults_load import OrderRecord
from services.account.trading import SWAPS_SUBJECT
from services.account.trading import TRADES_SUBJECT
from services.notification import events as notification_events
from services.platform.bus import MSG_ID_HEADER
from services.platform.envelope import EnvelopeError
from services.platform.envelope import matches
from services.platform.envelope import open_envelope
from services.platform.infra_tls import client_context
from services.risk.copies import _ACCOUNT_SUBJECTS
from services.risk.copies import _INSTRUMENT_SUBJECTS
from services.risk.copies import _TRADING_SUBJECTS
from stack import secrets as stack_secrets
from stack.ports import HOST
from stack.ports import Ports
from stack.provision import admin_url
from stack.state import StackState
from stack.vault import VaultAdmin

# The schemas with an outbox, and the JetStream stream their events go to (services/platform/
# bus.py STREAMS).
OUTBOX_STREAMS: dict[str, str] = {
    "account": "ACCOUNT",
    "oms": "OMS",
    "risk": "RISK",
    "pricing": "PRICING",
}


@dataclass(frozen=True)
class InboxConsumer:
    """A consumer that records envelopes in an inbox: its schema, subscription and the events
    it claims."""

    name: str
    inbox: str
    subscription: str
    claims: Callable[[str], bool]


_NOTIFICATION_ACCOUNT = (
    notification_events.FOLLOWED - set(notification_events.OMS) - set(notification_events.RISK)
) | set(notification_events.ACCOUNT)
INBOX_CONSUMERS: tuple[InboxConsumer, ...] = (
    InboxConsumer("account-trades", "account", TRADES_SUBJECT, lambda s: s == TRADES_SUBJECT),
    InboxConsumer("account-swaps", "account", SWAPS_SUBJECT, lambda s: s == SWAPS_SUBJECT),
    InboxConsumer("risk-accounts", "risk", "account.>", _ACCOUNT_SUBJECTS.__contains__),
    InboxConsumer(
        "risk-instruments", "risk", "pricing.instrument.>", _INSTRUMENT_SUBJECTS.__contains__
    ),
    InboxConsumer("risk-trading", "risk", "oms.>", _TRADING_SUBJECTS.__contains__),
    InboxConsumer(
        "notification-oms",
        "notification",
        "oms.>",
        {*notification_events.OMS, notification_events.ROLLOVER_COMPLETED}.__contains__,
    ),
    InboxConsumer(
        "notification-risk", "notification", "risk.>", set(notification_events.RISK).__contains__
    ),
    InboxConsumer(
        "notification-account", "notification", "account.>", _NOTIFICATION_ACCOUNT.__contains__
    ),
)

# Order statuses by progress: a later reading may show the same or a later one.
_RANK = {
    "NEW": 0,
    "PENDING": 1,
    "ACCEPTED": 2,
    "WORKING": 3,
    "PARTIALLY_FILLED": 4,
    "PENDING_CANCEL": 4,
    "PENDING_AMEND": 4,
}
TERMINAL = frozenset({"FILLED", "CANCELLED", "REJECTED", "EXPIRED"})
EXAMPLES = 5  # kept per finding, for the report
# Findings that may be an event still on its way: `reconcile` reads again while any remains.
LAGGING = ("unsent", "missing_in_stream", "inbox_missing", "unbooked")


@dataclass
class Finding:
    """How many things one check found off, with a few of them described."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(text)


@dataclass
class Reconciliation:
    orders_told: int = 0  # answers that carried an order
    orders_stored: int = 0  # orders on the campaign's accounts
    trades: int = 0
    outbox_rows: int = 0
    stream_messages: int = 0
    inbox_claims: int = 0  # (consumer, envelope) pairs that must be in an inbox
    unanswered: int = 0  # orders whose client never got a final answer
    findings: dict[str, Finding] = field(default_factory=dict)
    seconds: float = 0.0  # how long reconciling took (repeats included)
    readings: int = 0

    def finding(self, name: str) -> Finding:
        return self.findings.setdefault(name, Finding())

    def count(self, name: str) -> int:
        found = self.findings.get(name)
        return found.count if found else 0

    @property
    def lost(self) -> int:
        """Acknowledged orders missing, set back or REJECTED later, events not published or
        not applied, trades not booked."""
        return sum(
            self.count(n)
            for n in (
                "lost",
                "acked_then_rejected",
                "unsent",
                "missing_in_stream",
                "inbox_missing",
                "unbooked",
            )
        )

    @property
    def doubled(self) -> int:
        return sum(
            self.count(n) for n in ("doubled", "doubled_in_stream", "unasked", "posting_no_trade")
        )

    @property
    def unbalanced(self) -> int:
        return sum(self.count(n) for n in ("unbalanced", "misbooked", "positions_off"))

    @property
    def clean(self) -> bool:
        return not any(f.count for f in self.findings.values())

    @property
    def settled(self) -> bool:
        """Nothing off that waiting could still put right (an event on its way)."""
        return not any(self.count(n) for n in LAGGING)

    def to_json(self) -> dict[str, Any]:
        return {
            "orders_told": self.orders_told,
            "orders_stored": self.orders_stored,
            "trades": self.trades,
            "outbox_rows": self.outbox_rows,
            "stream_messages_read": self.stream_messages,
            "inbox_claims_checked": self.inbox_claims,
            "unanswered": self.unanswered,
            "lost": self.lost,
            "doubled": self.doubled,
            "unbalanced": self.unbalanced,
            "findings": {
                name: {"count": f.count, "examples": f.examples}
                for name, f in sorted(self.findings.items())
                if f.count
            },
            "seconds": round(self.seconds, 1),
            "readings": self.readings,
        }


@dataclass(frozen=True)
class Access:
    """How to read the stack: PostgreSQL's admin URL (libpq), NATS and its login."""

    postgres: str
    nats: str
    nats_user: str
    nats_password: str
    ca_file: str  # NATS and PostgreSQL are TLS only, checked against the stack's CA

    @classmethod
    def of(cls, state: StackState) -> Access:
        token = Path(state.vault.root_token_file).read_text().strip()
        known = stack_secrets.read(VaultAdmin(state.vault.address, token))
        if known is None:
            raise SystemExit(f"stack {state.name!r} has no secrets in its Vault")
        ports = Ports(state.base_port)
        url = admin_url(known.postgres_admin, ports.postgres, state.endpoints.ca_file)
        return cls(
            postgres=url.replace("postgresql+psycopg://", "postgresql://", 1),
            nats=f"nats://{HOST}:{ports.nats}",
            nats_user=known.nats.username,
            nats_password=known.nats.password.reveal(),
            ca_file=state.endpoints.ca_file,
        )


def _d(value: Any) -> Decimal:
    return Decimal(value) if value is not None else Decimal(0)


def _check_orders(
    result: Reconciliation, records: Sequence[OrderRecord], rows: list[tuple[Any, ...]]
) -> None:
    stored = {str(r[0]): r for r in rows}
    sent = {r.client_order_id for r in records}
    result.orders_stored = len(rows)
    for record in records:
        if not record.answered:
            result.unanswered += 1
        if not record.order_id:
            continue
        result.orders_told += 1
        row = stored.get(record.order_id)
        told = f"{record.client_order_id} told {record.status} {record.reason}".rstrip()
        if row is None:
            result.finding("lost").add(f"{told}: no order {record.order_id} in PostgreSQL")
            continue
        status = str(row[3])
        if str(row[2]) != record.client_order_id:
            result.finding("lost").add(f"{told}: order {record.order_id} is {row[2]}")
        elif record.status in TERMINAL:
            if status != record.status:
                result.finding("lost").add(f"{told}: PostgreSQL has {status}")
        elif status == "REJECTED":
            result.finding("acked_then_rejected").add(f"{told}: now REJECTED {row[6]}")
        elif status not in TERMINAL and _RANK.get(status, -1) < _RANK.get(record.status, 0):
            result.finding("lost").add(f"{told}: PostgreSQL has {status} (earlier)")
    for row in rows:
        client_order_id = str(row[2])
        if client_order_id not in sent:
            result.finding("unasked").add(f"order {row[0]} {client_order_id} {row[3]} {row[7]}")


def _check_trades(
    result: Reconciliation,
    orders: list[tuple[Any, ...]],
    trades: list[tuple[Any, ...]],
    positions: list[tuple[Any, ...]],
) -> None:
    result.trades = len(trades)
    by_order: dict[str, Decimal] = defaultdict(Decimal)
    by_position: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for trade in trades:
        by_order[str(trade[1])] += _d(trade[4])
        by_position[str(trade[8])].append(trade)
    for order in orders:
        order_id, quantity, filled = str(order[0]), _d(order[4]), _d(order[5])
        traded = by_order.get(order_id, Decimal(0))
        if traded != filled or filled > quantity:
            result.finding("doubled").add(
                f"order {order_id} {order[2]}: quantity {quantity}, filled {filled}, "
                f"trades {traded}"
            )
    for position in positions:
        position_id, side, status, quantity = (
            str(position[0]),
            position[2],
            position[3],
            position[4],
        )
        own = by_position.get(position_id, [])
        if any(t[9] == "REVERSE" for t in own):
            continue  # a reversing trade spans two positions: not summed here
        signed = sum((_d(t[4]) if t[3] == "BUY" else -_d(t[4]) for t in own), Decimal(0))
        expected = Decimal(0) if status == "CLOSED" else _d(quantity) * (1 if side == "BUY" else -1)
        pnl = sum((_d(t[7]) for t in own), Decimal(0))
        commission = sum((_d(t[6]) for t in own), Decimal(0))
        if signed != expected or pnl != _d(position[5]) or commission != _d(position[6]):
            result.finding("positions_off").add(
                f"position {position_id} {status} {side} {quantity}: trades sum {signed}; "
                f"P&L {position[5]} vs trades {pnl}; commission {position[6]} vs {commission}"
            )


def _check_money(
    result: Reconciliation,
    trades: list[tuple[Any, ...]],
    balances: list[tuple[Any, ...]],
    postings: list[tuple[Any, ...]],
) -> None:
    for account_id, balance, last, total, count, top in balances:
        if _d(balance) != _d(total) or int(last) != int(count) or int(top) != int(count):
            result.finding("unbalanced").add(
                f"account {account_id}: balance {balance} vs ledger sum {total}; "
                f"last_sequence {last}, {count} entries, max sequence {top}"
            )
    booked: dict[str, dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    for reference_id, reason, amount in postings:
        booked[str(reference_id)][str(reason)].append(_d(amount))
    known = set()
    for trade in trades:
        trade_id = str(trade[0])
        known.add(trade_id)
        pnl, commission = _d(trade[7]), _d(trade[6])
        mine = booked.get(trade_id, {})
        expected: dict[str, Decimal] = {}
        if pnl != 0:
            expected["REALIZED_PNL" if "STOP_OUT_LOSS" not in mine else "STOP_OUT_LOSS"] = pnl
        if commission != 0:
            expected["COMMISSION"] = -commission
        if expected and not mine:
            result.finding("unbooked").add(f"trade {trade_id}: P&L {pnl}, commission {commission}")
            continue
        seen = dict(mine)
        if (
            any(len(a) != 1 for a in seen.values())
            or {r: a[0] for r, a in seen.items()} != expected
        ):
            result.finding("misbooked").add(
                f"trade {trade_id}: expected {expected}, booked "
                f"{ {r: [str(x) for x in a] for r, a in seen.items()} }"
            )
    for reference_id in booked:
        if reference_id not in known:
            result.finding("posting_no_trade").add(f"ledger postings for trade {reference_id}")


def _check_hedges(result: Reconciliation, hedges: list[tuple[Any, ...]]) -> None:
    for hedge_id, quantity, filled, fills, _count in hedges:
        if _d(fills) != _d(filled) or _d(filled) > _d(quantity):
            result.finding("doubled").add(
                f"hedge order {hedge_id}: quantity {quantity}, filled {filled}, fills {fills}"
            )


@dataclass
class _Outbox:
    rows: dict[str, list[tuple[str, str, bool, bytes]]]  # schema: (event_id, subject, sent, data)
    inboxes: dict[str, set[str]]


def _read_sql(
    access: Access, accounts: Sequence[str], since: datetime.datetime
) -> tuple[dict[str, list[tuple[Any, ...]]], _Outbox]:
    ids = list(accounts)
    outbox_since = since - datetime.timedelta(seconds=5)
    with psycopg.connect(access.postgres, connect_timeout=10) as connection:
        connection.read_only = True
        with connection.cursor() as cursor:
            # One snapshot for every table: the checks compare tables with each other.
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")

            def rows(sql: str, *params: Any) -> list[tuple[Any, ...]]:
                cursor.execute(sql, params)
                return list(cursor.fetchall())

            tables = {
                "orders": rows(
                    "SELECT id::text, account_id::text, client_order_id, status, quantity,"
                    " filled_quantity, status_reason, origin"
                    " FROM oms.orders WHERE account_id = ANY(%s::uuid[])",
                    ids,
                ),
                "trades": rows(
                    "SELECT id::text, order_id::text, account_id::text, side, quantity, price,"
                    " commission, realized_pnl, position_id::text, position_effect"
                    " FROM oms.trades WHERE account_id = ANY(%s::uuid[])",
                    ids,
                ),
                "positions": rows(
                    "SELECT id::text, account_id::text, side, status, quantity, realized_pnl,"
                    " commission FROM oms.positions WHERE account_id = ANY(%s::uuid[])",
                    ids,
                ),
                "balances": rows(
                    "SELECT b.account_id::text, b.balance, b.last_sequence,"
                    " COALESCE(sum(e.amount), 0), count(e.id), COALESCE(max(e.sequence), 0)"
                    " FROM account.balances b"
                    " LEFT JOIN account.ledger_entries e ON e.account_id = b.account_id"
                    " WHERE b.account_id = ANY(%s::uuid[])"
                    " GROUP BY b.account_id, b.balance, b.last_sequence",
                    ids,
                ),
                "postings": rows(
                    "SELECT reference_id, reason, amount FROM account.ledger_entries"
                    " WHERE account_id = ANY(%s::uuid[]) AND reference_type = 'trade'",
                    ids,
                ),
                "hedges": rows(
                    "SELECT h.id::text, h.quantity, h.filled_quantity,"
                    " COALESCE(sum(f.quantity), 0), count(f.id)"
                    " FROM oms.hedge_orders h LEFT JOIN oms.hedge_fills f"
                    " ON f.hedge_order_id = h.id WHERE h.created_at >= %s GROUP BY h.id",
                    since,
                ),
            }
            outbox: dict[str, list[tuple[str, str, bool, bytes]]] = {}
            for schema in OUTBOX_STREAMS:
                outbox[schema] = [
                    (str(r[0]), str(r[1]), bool(r[2]), bytes(r[3]))
                    for r in rows(
                        f"SELECT event_id::text, subject, sent_at IS NOT NULL, payload"
                        f" FROM {schema}.outbox WHERE created_at >= %s",
                        outbox_since,
                    )
                ]
            inboxes = {
                schema: {
                    str(r[0])
                    for r in rows(
                        f"SELECT event_id FROM {schema}.inbox WHERE received_at >= %s",
                        outbox_since,
                    )
                }
                for schema in sorted({c.inbox for c in INBOX_CONSUMERS})
            }
            cursor.execute("COMMIT")
    return tables, _Outbox(outbox, inboxes)


async def _stream_ids(access: Access, since: datetime.datetime) -> Counter[str]:
    """How many times each Nats-Msg-Id is in the outbox streams, for messages stored since
    `since` (headers only, an ephemeral consumer per stream)."""
    counts: Counter[str] = Counter()
    client = await nats.connect(
        access.nats,
        user=access.nats_user,
        password=access.nats_password,
        tls=client_context(access.ca_file),
        connect_timeout=5,
        max_reconnect_attempts=2,
        allow_reconnect=False,
    )
    try:
        js = client.jetstream()
        for stream in OUTBOX_STREAMS.values():
            info = await js.stream_info(stream)
            if not info.state.messages:
                continue
            subscription = await js.pull_subscribe(
                "",
                stream=stream,
                config=ConsumerConfig(
                    deliver_policy=DeliverPolicy.BY_START_TIME,
                    opt_start_time=since,
                    ack_policy=AckPolicy.NONE,
                    headers_only=True,
                    inactive_threshold=30.0,
                ),
            )
            try:
                while True:
                    try:
                        messages = await subscription.fetch(batch=500, timeout=2)
                    except TimeoutError:
                        break
                    for message in messages:
                        headers = message.headers or {}
                        counts[headers.get(MSG_ID_HEADER, "")] += 1
                    if not messages or messages[-1].metadata.num_pending == 0:
                        break
            finally:
                await subscription.unsubscribe()
    finally:
        await client.close()
    return counts


def _canonical(event_id: str) -> str:
    return event_id.lower()


def _check_events(result: Reconciliation, outbox: _Outbox, stream: Counter[str]) -> None:
    result.stream_messages = sum(stream.values())
    for schema, rows in outbox.rows.items():
        for event_id, subject, sent, payload in rows:
            result.outbox_rows += 1
            if not sent:
                result.finding("unsent").add(f"{schema}.outbox {event_id} {subject}")
            copies = stream.get(event_id, 0)
            if copies == 0:
                result.finding("missing_in_stream").add(f"{schema}.outbox {event_id} {subject}")
            elif copies > 1:
                result.finding("doubled_in_stream").add(
                    f"{schema}.outbox {event_id} {subject}: {copies} messages"
                )
            try:
                _, events = open_envelope(payload)
            except EnvelopeError:
                continue
            subjects = [e.subject for e in events]
            for consumer in INBOX_CONSUMERS:
                if not matches(consumer.subscription, subject):
                    continue
                if not any(consumer.claims(s) for s in subjects):
                    continue
                result.inbox_claims += 1
                if _canonical(event_id) not in outbox.inboxes.get(consumer.inbox, set()):
                    result.finding("inbox_missing").add(
                        f"{consumer.name}: {schema}.outbox {event_id} {subject}"
                    )


def read_once(
    access: Access,
    records: Sequence[OrderRecord],
    accounts: Sequence[str],
    since: datetime.datetime,
) -> Reconciliation:
    result = Reconciliation()
    tables, outbox = _read_sql(access, accounts, since)
    stream = asyncio.run(_stream_ids(access, since - datetime.timedelta(seconds=30)))
    _check_orders(result, records, tables["orders"])
    _check_trades(result, tables["orders"], tables["trades"], tables["positions"])
    _check_money(result, tables["trades"], tables["balances"], tables["postings"])
    _check_hedges(result, tables["hedges"])
    _check_events(result, outbox, stream)
    return result


def reconcile(
    access: Access,
    records: Sequence[OrderRecord],
    accounts: Sequence[str],
    since: datetime.datetime,
    timeout: float,
) -> Reconciliation:
    """Reads until nothing is off, or `timeout` seconds; the last reading (module doc)."""
    started = time.monotonic()
    readings = 0
    while True:
        readings += 1
        try:
            result = read_once(access, records, accounts, since)
        except (psycopg.Error, OSError, TimeoutError, nats.errors.Error) as error:
            if time.monotonic() - started > timeout:
                raise
            print(f"  reconciliation read failed ({error!r}); again")
            time.sleep(1.0)
            continue
        if result.settled or time.monotonic() - started > timeout:
            result.seconds = time.monotonic() - started
            result.readings = readings
            return result
        time.sleep(1.0)

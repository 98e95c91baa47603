"""An envelope is published exactly once and applied exactly once (ADR 0005, ADR 0009), against
the real stack:

- a FILLED market order's change is ONE message on the OMS stream (headlined
  `oms.trade.executed`, `Nats-Msg-Id` = the envelope id, holding its order events, its trade and
  its position event); the account service's `account-trades` and risk's `risk-trading` each
  claim it once (one `account.inbox` / `risk.inbox` row per envelope id), the ledger books the
  trade once and risk keeps one copy of the trade and the position;
- envelopes the OMS committed but could not publish (NATS stopped) when it was killed go out
  once after the restart, the same envelopes, and are applied once;
- a consumer killed mid-batch loses nothing and applies nothing twice: the account service
  killed while applying a batch (before its commit, held at the account's balance row), the
  account service killed after its batch committed but before it acknowledged the messages
  (the commit held in PostgreSQL until the process is dead), and the risk service killed while
  applying a batch (held at the position's row).

Holds are deterministic, no sleeps on timing: a row lock from the test's own connection, and
PostgreSQL's `synchronous_standby_names` naming a standby that never comes (every commit waits,
committed locally, until the setting is reset). What was delivered to a killed process and not
acknowledged comes again after the consumer's ack wait (30 s), so the tests after a kill wait
that long.

The ledger has its own idempotency key (reason, reference), so a consumer applying an envelope
twice would post nothing the second time; the second run shows in the account service's log
("trade booked", written each time its booking handler gets past de-duplication), which the
tests count. What each check would catch is said where it is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from nats.js.api import ConsumerInfo

from services.account.trading import TRADES_CONSUMER
from services.account.trading import TRADES_SUBJECT
from services.oms.store.events import ORDER_EVENTS
from services.platform.envelope import Event
from services.platform.envelope import open_envelope
from tests.integration.events import published as stream_messages
from tests.integration.support.components import component
from tests.integration.support.components import frozen
from tests.integration.support.components import kill
from tests.integration.support.components import kill_oms
from tests.integration.support.components import restore
from tests.integration.support.components import start_oms
from tests.integration.support.edge_trading import unsent_outbox
from tests.integration.support.infra import connect_nats
from tests.integration.support.orders import Oms
from tests.integration.support.orders import Trader
from tests.integration.support.orders import new_group
from tests.integration.support.orders import new_trader
from tests.integration.support.orders import place_filled as place_filled_order
from tests.integration.support.postgres import blocked_by
from tests.integration.support.waiting import eventually
from tradingmesh.common.v1 import types_pb2
from tradingmesh.oms.v1 import oms_events_pb2
from tradingmesh.oms.v1 import oms_pb2

D = Decimal
OMS_STREAM = "OMS"
RISK_TRADING = "risk-trading"
BATCH = 30  # orders whose envelopes queue up for a stopped consumer
QUANTITY = "0.10"
REDELIVERY_SECONDS = 90.0  # the restart, then the consumer's ack wait (30 s), then the apply
_DECODERS: dict[str, Any] = {
    **{f"oms.order.{event.value.lower()}": kind for event, kind in ORDER_EVENTS.items()},
    "oms.trade.executed": oms_events_pb2.TradeExecuted,
    "oms.position.opened": oms_events_pb2.PositionOpened,
    "oms.position.changed": oms_events_pb2.PositionChanged,
    "oms.position.closed": oms_events_pb2.PositionClosed,
}


@pytest.fixture(scope="module")
def commission_group(oms: Oms) -> str:
    """A market-execution netting group charging 3.50 per lot: every trade books a COMMISSION
    entry, so every trade is visible in the ledger."""
    return new_group(oms, types_pb2.EXECUTION_MODE_MARKET, commission="3.50")


# ---- the stack's processes --------------------------------------------------------------------


def backends(oms: Oms, service: str) -> int:
    """The service's connections to PostgreSQL (its pool names them `tradingmesh-<service>`)."""
    (count,) = oms.rows(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
        f"tradingmesh-{service}",
    )[0]
    return int(count)


@contextlib.contextmanager
def commits_held(oms: Oms) -> Iterator[None]:
    """Every commit in the stack's PostgreSQL waits for a synchronous standby that never comes,
    until the block ends: such a transaction is committed locally (its WAL flushed) but neither
    visible nor answered to its client; it completes when the setting is reset."""
    with oms.stack.db() as admin:
        admin.execute("ALTER SYSTEM SET synchronous_standby_names = 'it_never_connects'")
        admin.execute("SELECT pg_reload_conf()")
        try:
            eventually(
                lambda: _setting(oms, "synchronous_standby_names") == "it_never_connects",
                10,
                "PostgreSQL waiting for a synchronous standby",
            )
            yield
        finally:
            admin.execute("ALTER SYSTEM RESET synchronous_standby_names")
            admin.execute("SELECT pg_reload_conf()")


def _setting(oms: Oms, name: str) -> str:
    return str(oms.rows("SELECT current_setting(%s)", name)[0][0])


def committing_a_booking(oms: Oms) -> bool:
    """Whether an account service transaction that wrote ledger entries waits in its commit
    (for the synchronous standby of `commits_held`)."""
    (count,) = oms.rows(
        "SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid"
        " WHERE a.application_name = 'tradingmesh-account' AND a.wait_event = 'SyncRep'"
        " AND l.relation = 'account.ledger_entries'::regclass AND l.mode = 'RowExclusiveLock'"
    )[0]
    return int(count) > 0


async def _consumer_info(oms: Oms, durable: str) -> ConsumerInfo:
    stack = oms.stack
    client = await connect_nats(
        stack.nats_url, stack.nats_user, stack.nats_password, stack.nats_ca_file
    )
    try:
        info: ConsumerInfo = await client.jetstream().consumer_info(OMS_STREAM, durable)
    finally:
        await client.close()
    return info


def deliveries(oms: Oms, durable: str) -> int:
    """How many messages the durable consumer has delivered, redeliveries included."""
    info = asyncio.run(_consumer_info(oms, durable))
    assert info.delivered is not None
    return int(info.delivered.consumer_seq)


def caught_up(oms: Oms, durable: str) -> bool:
    """Nothing left to deliver and nothing delivered waits for its acknowledgement."""
    info = asyncio.run(_consumer_info(oms, durable))
    return (info.num_pending, info.num_ack_pending) == (0, 0)


# ---- orders, trades and what became of them ---------------------------------------------------


@dataclass(frozen=True)
class Filled:
    """A FILLED market order and its one trade, as the OMS stored them."""

    order: oms_pb2.Order
    trade_id: str
    position_id: str
    commission: Decimal
    realized_pnl: Decimal


def place_filled(oms: Oms, trader: Trader, count: int, **fields: Any) -> list[oms_pb2.Order]:
    fields.setdefault("quantity", QUANTITY)
    return [place_filled_order(oms, trader, **fields) for _ in range(count)]


def queued_batch(oms: Oms, trader: Trader) -> tuple[int, list[Filled]]:
    """BATCH filled orders whose envelopes are on the stream, queued for the (stopped) account
    service: how many messages its consumer had delivered before, and the orders' fills."""
    before = deliveries(oms, TRADES_CONSUMER)
    orders = place_filled(oms, trader, BATCH)
    eventually(lambda: unsent_outbox(oms.stack) == 0, 20, "the envelopes on the stream")
    return before, filled(oms, orders)


def filled(oms: Oms, orders: Sequence[oms_pb2.Order]) -> list[Filled]:
    """The orders with their trades (one each: a market order in market execution fills at
    once, whole)."""
    rows = oms.rows(
        "SELECT order_id::text, id::text, position_id::text, commission, realized_pnl"
        " FROM oms.trades WHERE order_id = ANY(%s::uuid[])",
        [o.id for o in orders],
    )
    by_order: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_order.setdefault(row[0], []).append(row)
    result = []
    for order in orders:
        (row,) = by_order.get(order.id, [])
        result.append(Filled(order, row[1], row[2], D(row[3]), D(row[4])))
    return result


@dataclass(frozen=True)
class Published:
    """One message of the OMS stream, opened."""

    msg_id: str
    envelope_id: str
    events: tuple[Event, ...]

    def decoded(self) -> list[tuple[str, Any]]:
        return [
            (e.subject, _DECODERS[e.subject].FromString(e.data))
            for e in self.events
            if e.subject in _DECODERS
        ]

    def trade_ids(self) -> list[str]:
        return [m.trade.id for s, m in self.decoded() if s == TRADES_SUBJECT]


def published(oms: Oms, subject: str = "oms.>") -> list[Published]:
    """Every message of the OMS stream on `subject` (its headline), opened, in stream order."""
    messages = asyncio.run(stream_messages(oms.stack, "OMS", subject))
    return [Published(m.msg_id, m.envelope_id, m.events) for m in messages]


def fill_envelopes(oms: Oms, fills: Sequence[Filled]) -> dict[str, Published]:
    """Per trade, THE message of the OMS stream holding it, after checking that it is the only
    one, that it is headlined `oms.trade.executed`, is an envelope keeping its contract, whose
    id is its `Nats-Msg-Id`, and holds the order's change: its order events (versions 1 to n,
    the last FILLED), the trade and the position event."""
    everything = published(oms)
    headlined = {m.envelope_id for m in published(oms, TRADES_SUBJECT)}
    found = {}
    for fill in fills:
        # Fails if the fill went out twice under two ids (a relay re-sealing what it retries),
        # or never.
        holding = [m for m in everything if fill.trade_id in m.trade_ids()]
        assert len(holding) == 1, (fill.order.id, [m.envelope_id for m in holding])
        (message,) = holding
        assert message.envelope_id in headlined, (fill.order.id, message.events)
        assert message.msg_id == message.envelope_id
        open_envelope(_payload(oms, message.envelope_id), check=True)
        decoded = message.decoded()
        order_events = [(s, m.metadata.aggregate_version) for s, m in decoded if _of(m, fill)]
        assert [v for _, v in order_events] == list(range(1, fill.order.version + 1))
        assert order_events[-1][0] == "oms.order.filled"
        assert message.trade_ids() == [fill.trade_id]
        positions = [m.position.id for s, m in decoded if s.startswith("oms.position.")]
        assert positions == [fill.position_id]
        # No other message carries any event of the order (a change is one envelope).
        others = [m for m in everything if m is not message and _mentions(m, fill)]
        assert others == [], (fill.order.id, [m.envelope_id for m in others])
        found[fill.trade_id] = message
    return found


def _of(event: Any, fill: Filled) -> bool:
    order = getattr(event, "order", None)
    return order is not None and order.id == fill.order.id


def _mentions(message: Published, fill: Filled) -> bool:
    return any(
        _of(m, fill) or (s == TRADES_SUBJECT and m.trade.order_id == fill.order.id)
        for s, m in message.decoded()
    )


def _payload(oms: Oms, envelope_id: str) -> bytes:
    """The envelope as its outbox row holds it (what was published)."""
    rows = oms.rows("SELECT payload FROM oms.outbox WHERE event_id = %s", envelope_id)
    assert len(rows) == 1, envelope_id
    return bytes(rows[0][0])


def inbox_rows(oms: Oms, schema: str, envelope_ids: Sequence[str]) -> dict[str, int]:
    """Per envelope id, its rows in `<schema>.inbox` (claimed under the headline subject)."""
    counted = dict.fromkeys(envelope_ids, 0)
    for event_id, subject in oms.rows(
        f"SELECT event_id::text, subject FROM {schema}.inbox WHERE event_id::text = ANY(%s)",
        list(envelope_ids),
    ):
        assert subject == TRADES_SUBJECT
        counted[event_id] += 1
    return counted


def ledger_entries(oms: Oms, trade_ids: Sequence[str]) -> dict[str, list[tuple[str, Decimal]]]:
    """Per trade, the ledger entries referencing it: (reason, amount), in posting order."""
    entries: dict[str, list[tuple[str, Decimal]]] = {t: [] for t in trade_ids}
    for reference, reason, amount in oms.rows(
        "SELECT reference_id, reason, amount FROM account.ledger_entries"
        " WHERE reference_type = 'trade' AND reference_id = ANY(%s) ORDER BY sequence",
        list(trade_ids),
    ):
        entries[reference].append((reason, D(amount)))
    return entries


def expected_entries(fill: Filled) -> list[tuple[str, Decimal]]:
    """What the account service books for a trade (services/account/trading.py): its realized
    P&L if any, then its commission as a debit."""
    booked = [("REALIZED_PNL", fill.realized_pnl)] if fill.realized_pnl else []
    return [*booked, ("COMMISSION", -fill.commission)]


def booked(oms: Oms, fills: Sequence[Filled]) -> set[str]:
    """The trades the account service has booked (`account.trade_bookings`, written with the
    postings)."""
    rows = oms.rows(
        "SELECT trade_id::text FROM account.trade_bookings WHERE trade_id = ANY(%s::uuid[])",
        [f.trade_id for f in fills],
    )
    return {r[0] for r in rows}


def copied_by_risk(oms: Oms, fills: Sequence[Filled]) -> set[str]:
    """The trades risk has copied from their envelopes (a row may exist before, made by the
    ledger entry booking the trade's commission: `executed` tells the trade's own)."""
    rows = oms.rows(
        "SELECT trade_id::text FROM risk.trades WHERE trade_id = ANY(%s::uuid[]) AND executed",
        [f.trade_id for f in fills],
    )
    return {r[0] for r in rows}


def bookings_run(oms: Oms, fills: Sequence[Filled]) -> dict[str, int]:
    """Per trade, how often the account service's booking handler ran past its de-duplication,
    from the log line it writes then ("trade booked"; the log is appended across restarts).
    The ledger's own key makes a second run post nothing, so this is what shows a consumer
    applying an envelope twice."""
    counted = {f.trade_id: 0 for f in fills}
    entry = component(oms.running, "account")
    for line in Path(entry.log).read_text(errors="replace").splitlines():
        if '"trade booked"' not in line:
            continue
        record = json.loads(line)
        if record.get("message") == "trade booked" and record.get("trade_id") in counted:
            counted[record["trade_id"]] += 1
    return counted


def settled(oms: Oms, fills: Sequence[Filled]) -> bool:
    """Every trade booked, and risk has seen each trade and its commission's booking."""
    if booked(oms, fills) != {f.trade_id for f in fills}:
        return False
    rows = oms.rows(
        "SELECT count(*) FROM risk.trades WHERE trade_id = ANY(%s::uuid[])"
        " AND executed AND commission_booked",
        [f.trade_id for f in fills],
    )
    return int(rows[0][0]) == len(fills) and unsent_outbox(oms.stack) == 0


def assert_applied_once(oms: Oms, trader: Trader, fills: Sequence[Filled]) -> dict[str, str]:
    """Each fill published once and applied once by the account service and by risk; returns
    the envelope id per trade."""
    eventually(lambda: settled(oms, fills), REDELIVERY_SECONDS, "every trade booked and copied")
    envelopes = fill_envelopes(oms, fills)
    ids = [envelopes[f.trade_id].envelope_id for f in fills]
    # One claim per consumer and envelope: none means the envelope was never claimed (or claimed
    # under another id); the primary key allows no second row, so a second claim is the one the
    # consumer must skip.
    assert inbox_rows(oms, "account", ids) == dict.fromkeys(ids, 1)
    assert inbox_rows(oms, "risk", ids) == dict.fromkeys(ids, 1)
    # The ledger: the trade's postings once each (a booking lost by a kill leaves none).
    entries = ledger_entries(oms, [f.trade_id for f in fills])
    assert entries == {f.trade_id: expected_entries(f) for f in fills}
    bookings = oms.rows(
        "SELECT trade_id::text, order_id::text FROM account.trade_bookings"
        " WHERE trade_id = ANY(%s::uuid[])",
        [f.trade_id for f in fills],
    )
    assert sorted(bookings) == sorted((f.trade_id, f.order.id) for f in fills)
    assert bookings_run(oms, fills) == {f.trade_id: 1 for f in fills}
    cached, total, _ = oms.stack.balance(trader.account_id)
    assert cached == total  # the cached balance moved exactly by the entries
    # Risk's copies: the trade with its amounts, and the position at the OMS's version.
    copies = oms.rows(
        "SELECT trade_id::text, order_id::text, quantity, commission, realized_pnl"
        " FROM risk.trades WHERE trade_id = ANY(%s::uuid[])",
        [f.trade_id for f in fills],
    )
    assert sorted((r[0], r[1], D(r[2]), D(r[3]), D(r[4])) for r in copies) == sorted(
        (f.trade_id, f.order.id, D(f.order.quantity), f.commission, f.realized_pnl) for f in fills
    )
    position_ids = sorted({f.position_id for f in fills})
    at_oms = oms.rows(
        "SELECT id::text, version FROM oms.positions WHERE id = ANY(%s::uuid[]) ORDER BY id",
        position_ids,
    )
    at_risk = oms.rows(
        "SELECT position_id::text, version FROM risk.positions"
        " WHERE position_id = ANY(%s::uuid[]) ORDER BY position_id",
        position_ids,
    )
    assert at_risk == at_oms
    return {f.trade_id: envelopes[f.trade_id].envelope_id for f in fills}


# ---- the normal path --------------------------------------------------------------------------


def test_each_fill_is_one_envelope_published_once_claimed_once_and_booked_once(
    oms: Oms, commission_group: str
) -> None:
    trader = new_trader(oms, commission_group)
    # Opened, increased, reduced: a COMMISSION entry each, and the reduction's realized P&L.
    orders = place_filled(oms, trader, 2, quantity="0.20")
    orders += place_filled(oms, trader, 1, side=types_pb2.SIDE_SELL, quantity="0.10")

    fills = filled(oms, orders)
    assert all(f.commission > 0 for f in fills)
    envelopes = assert_applied_once(oms, trader, fills)

    assert len(set(envelopes.values())) == len(fills)  # a change each, an envelope each
    # The outbox row of each is marked sent once the relay published it.
    rows = oms.rows(
        "SELECT count(*) FROM oms.outbox WHERE event_id = ANY(%s::uuid[]) AND sent_at IS NOT NULL",
        list(envelopes.values()),
    )
    assert rows == [(len(fills),)]


# ---- the OMS killed between its commit and the publication ------------------------------------


def unsent_envelopes(oms: Oms, orders: Sequence[oms_pb2.Order]) -> dict[str, str]:
    """Per order, the id of the unsent outbox row holding its trade."""
    wanted = {o.id for o in orders}
    found = {}
    for event_id, payload in oms.rows(
        "SELECT event_id::text, payload FROM oms.outbox WHERE sent_at IS NULL"
    ):
        envelope_id, events = open_envelope(bytes(payload))
        message = Published("", envelope_id, tuple(events))
        for subject, event in message.decoded():
            if subject == TRADES_SUBJECT and event.trade.order_id in wanted:
                found[event.trade.order_id] = event_id
    return found


def test_envelopes_committed_but_unpublished_when_the_oms_is_killed_go_out_once_after_restart(
    oms: Oms, commission_group: str
) -> None:
    trader = new_trader(oms, commission_group)

    # NATS stops answering: the OMS commits and answers, but its relay's hand-off gets no
    # acknowledgement, so the rows stay unsent; then the OMS dies with them unsent.
    with frozen(oms.running, "nats"):
        orders = place_filled(oms, trader, 3)
        unsent = unsent_envelopes(oms, orders)
        assert set(unsent) == {o.id for o in orders}
        kill_oms(oms)
    assert unsent_envelopes(oms, orders) == unsent
    start_oms(oms, trader)

    # The restarted OMS's relay publishes the rows it finds unsent; JetStream's duplicate window
    # would hide a second publication under the same id from the stream, so the consumers'
    # inboxes and the ledger are checked too (assert_applied_once).
    envelopes = assert_applied_once(oms, trader, filled(oms, orders))
    # The very envelopes that were committed went out (not copies re-sealed under new ids).
    assert {f.order.id: envelopes[f.trade_id] for f in filled(oms, orders)} == unsent
    rows = oms.rows(
        "SELECT count(*) FROM oms.outbox WHERE event_id = ANY(%s::uuid[]) AND sent_at IS NULL",
        list(unsent.values()),
    )
    assert rows == [(0,)]


# ---- a consumer killed mid-batch --------------------------------------------------------------


def test_the_account_service_killed_applying_a_batch_books_each_trade_once_after_restart(
    oms: Oms, commission_group: str
) -> None:
    """Killed before its batch commits: the batch's claims and postings die with it. A consumer
    that committed its inbox claims apart from (before) the postings would lose these trades."""
    trader = new_trader(oms, commission_group)
    with frozen(oms.running, "account") as thaw:
        before, fills = queued_batch(oms, trader)
        # The account service resumes, takes the queued envelopes and applies them in one
        # transaction, which waits at the account's balance row this connection locks.
        with psycopg.connect(oms.stack.database_url) as hold:
            hold.execute(
                "SELECT 1 FROM account.balances WHERE account_id = %s FOR UPDATE",
                (trader.account_id,),
            )
            thaw()
            eventually(
                lambda: blocked_by(oms, "account", hold.info.backend_pid),
                20,
                "the account service applying the batch",
            )
            kill(oms.running, "account")
            hold.rollback()
    eventually(lambda: backends(oms, "account") == 0, 20, "the killed service's connections")
    assert booked(oms, fills) == set()  # its transaction rolled back with its connection

    restore(oms.running)

    # What was delivered to the killed process comes again after the ack wait, and is applied.
    eventually(lambda: caught_up(oms, TRADES_CONSUMER), REDELIVERY_SECONDS, "redelivered")
    assert deliveries(oms, TRADES_CONSUMER) - before > BATCH  # at least one of them twice
    assert_applied_once(oms, trader, fills)


def test_a_batch_committed_but_unacknowledged_when_the_account_service_dies_is_not_booked_twice(
    oms: Oms, commission_group: str
) -> None:
    """Killed after its batch committed, before it acknowledged the messages: JetStream delivers
    them again, and the inbox must skip every one (a consumer that de-duplicated nothing would
    run its bookings again; here the ledger's own key would still refuse a second posting, the
    inbox rows and the redelivery count show the skip)."""
    trader = new_trader(oms, commission_group)
    with frozen(oms.running, "account") as thaw:
        before, fills = queued_batch(oms, trader)
        with commits_held(oms):
            thaw()
            eventually(lambda: committing_a_booking(oms), 20, "the account service committing")
            kill(oms.running, "account")
        # Released: the dead process's commit completes; it never acknowledged the messages.
    eventually(lambda: backends(oms, "account") == 0, 20, "the killed service's connections")
    committed = booked(oms, fills)
    assert committed, "the killed process's batch committed"

    restore(oms.running)

    # Each committed envelope is delivered again after the ack wait: to the killed process and
    # after the restart, where its inbox row makes the consumer skip it.
    eventually(lambda: caught_up(oms, TRADES_CONSUMER), REDELIVERY_SECONDS, "redelivered")
    assert deliveries(oms, TRADES_CONSUMER) - before >= BATCH + len(committed)
    assert_applied_once(oms, trader, fills)


def test_risk_killed_applying_a_batch_keeps_one_copy_of_each_trade_after_restart(
    oms: Oms, commission_group: str
) -> None:
    """risk-trading killed before its batch commits (held at the position's row; risk keeps
    answering pre-trade checks from memory, so orders are placed meanwhile): the copies are
    made once after the restart, none lost."""
    trader = new_trader(oms, commission_group)
    (first,) = filled(oms, place_filled(oms, trader, 1))
    eventually(lambda: copied_by_risk(oms, [first]), 20, "risk's copy of the first trade")
    with psycopg.connect(oms.stack.database_url) as hold:
        hold.execute(
            "SELECT 1 FROM risk.positions WHERE position_id = %s FOR UPDATE", (first.position_id,)
        )
        before = deliveries(oms, RISK_TRADING)
        orders = place_filled(oms, trader, BATCH)
        eventually(
            lambda: blocked_by(oms, "risk", hold.info.backend_pid),
            20,
            "risk applying the batch",
        )
        kill(oms.running, "risk")
        hold.rollback()
    eventually(lambda: backends(oms, "risk") == 0, 20, "the killed service's connections")
    fills = filled(oms, orders)
    assert copied_by_risk(oms, fills) == set()

    restore(oms.running)

    eventually(lambda: caught_up(oms, RISK_TRADING), REDELIVERY_SECONDS, "redelivered")
    assert deliveries(oms, RISK_TRADING) - before > BATCH  # at least one of them twice
    assert_applied_once(oms, trader, [first, *fills])

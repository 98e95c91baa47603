"""The fault campaign's reasoning without a stack: which faults, what clients saw, and what the
reconciliation calls lost, doubled or unbalanced (bench/faults.py, bench/faults_check.py)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections import Counter
from decimal import Decimal

import pytest

from bench.faults import Fault
from bench.faults import _lock_name
from bench.faults import client_view
from bench.faults import default_faults
from bench.faults import process_tree
from bench.faults_check import Reconciliation
from bench.faults_check import _check_events
from bench.faults_check import _check_money
from bench.faults_check import _check_orders
from bench.faults_check import _check_trades
from bench.faults_check import _Outbox
from bench.faults_load import OrderRecord
from stack.state import ComponentState
from stack.state import Endpoints
from stack.state import StackState
from stack.state import VaultInfo
from tradingmesh.common.v1.events_pb2 import EnvelopedEvent
from tradingmesh.common.v1.events_pb2 import EventEnvelope

D = Decimal
A = "00000000-0000-0000-0000-00000000000a"


def record(cid: str, status: str, order_id: str = "", sent: float = 100.0) -> OrderRecord:
    r = OrderRecord(cid, A, "standard", True, first_sent=sent)
    r.answered_at = sent + 0.1
    r.status = status
    r.order_id = order_id
    return r


def order_row(
    order_id: str, cid: str, status: str, qty: str = "0.01", filled: str = "0.01"
) -> tuple[str, ...] | tuple[object, ...]:
    return (order_id, A, cid, status, D(qty), D(filled), "UNSPECIFIED", "CLIENT")


def test_the_default_faults_are_every_service_instance_then_the_infrastructure() -> None:
    names = ["openbao", "postgres", "nats", "oms", "oms-2", "risk", "envoy", "lp-alpha"]
    state = StackState(
        "s",
        17000,
        "/tmp",
        VaultInfo("", ""),
        Endpoints("", "", "", ""),
        components=tuple(ComponentState(n, "", 1, 1, True, "") for n in names),
    )
    labels = [f.label for f in default_faults(state)]
    assert labels[:3] == ["oms SIGKILL", "oms-2 SIGKILL", "risk SIGKILL"]
    assert labels[3:] == [
        "nats SIGKILL",
        "redis SIGKILL",
        "postgres SIGKILL",
        "postgres SIGSTOP",
        "envoy SIGKILL",
        "lp-alpha SIGKILL",
    ]


def test_faults_parse_with_kill_by_default() -> None:
    assert Fault.parse("oms") == Fault("oms", "kill")
    assert Fault.parse("postgres:pause") == Fault("postgres", "pause")
    with pytest.raises(ValueError, match="kill or pause"):
        Fault.parse("postgres:drop")


def test_an_order_told_filled_must_be_stored_filled_and_nothing_unasked_exists() -> None:
    found = Reconciliation()
    records = [
        record("c1", "FILLED", "o1"),
        record("c2", "FILLED", "o2"),  # stored REJECTED: lost
        record("c3", "WORKING", "o3"),  # later FILLED: fine
        record("c4", "WORKING", "o4"),  # later REJECTED: lost too (issue 18)
        record("c5", "FILLED", "o5"),  # not stored: lost
        record("c6", "RPC INVALID_ARGUMENT"),  # no order told
    ]
    rows = [
        order_row("o1", "c1", "FILLED"),
        order_row("o2", "c2", "REJECTED"),
        order_row("o3", "c3", "FILLED"),
        order_row("o4", "c4", "REJECTED"),
        order_row("o9", "x9", "FILLED"),  # nobody asked for it
    ]
    _check_orders(found, records, rows)
    assert found.orders_told == 5
    assert found.count("lost") == 2
    assert found.count("acked_then_rejected") == 1
    assert found.count("unasked") == 1
    assert found.lost == 3
    assert found.doubled == 1


def test_trades_beyond_the_fill_and_positions_off_their_trades_are_found() -> None:
    found = Reconciliation()
    orders = [order_row("o1", "c1", "FILLED"), order_row("o2", "c2", "FILLED")]
    trade = ("t1", "o1", A, "BUY", D("0.01"), D("1.1"), D("0"), D("0"), "p1", "OPEN")
    twice = ("t2", "o2", A, "SELL", D("0.01"), D("1.1"), D("0"), D("0"), "p1", "CLOSE")
    again = ("t3", "o2", A, "SELL", D("0.01"), D("1.1"), D("0"), D("0"), "p1", "CLOSE")
    closed = ("p1", A, "BUY", "CLOSED", D("0"), D("0"), D("0"))
    _check_trades(found, orders, [trade, twice], [closed])
    assert found.clean
    _check_trades(found, orders, [trade, twice, again], [closed])
    assert found.count("doubled") == 1  # o2 traded 0.02 of 0.01
    assert found.count("positions_off") == 1  # p1 is closed but its trades sum to -0.01


def test_balances_and_bookings_are_checked_against_the_ledger_and_the_trades() -> None:
    found = Reconciliation()
    trades = [
        ("t1", "o1", A, "SELL", D("0.01"), D("1.1"), D("0.04"), D("1.50"), "p1", "CLOSE"),
        ("t2", "o2", A, "BUY", D("0.01"), D("1.1"), D("0.04"), D("0"), "p2", "OPEN"),
    ]
    postings = [
        ("t1", "REALIZED_PNL", D("1.50")),
        ("t1", "COMMISSION", D("-0.04")),
        ("t1", "COMMISSION", D("-0.04")),  # twice
        ("t9", "COMMISSION", D("-0.04")),  # no such trade
    ]
    balances = [(A, D("100.00"), 3, D("100.00"), 3, 3), (A, D("99.00"), 3, D("100.00"), 3, 3)]
    _check_money(found, trades, balances, postings)
    assert found.count("unbalanced") == 1
    assert found.count("misbooked") == 1
    assert found.count("unbooked") == 1  # t2's commission
    assert found.count("posting_no_trade") == 1


def _envelope(subject: str) -> tuple[str, bytes]:
    envelope_id = str(uuid.uuid4())
    event = EnvelopedEvent(subject=subject, payload=b"")
    return envelope_id, EventEnvelope(envelope_id=envelope_id, events=[event]).SerializeToString()


def test_each_outbox_row_is_once_in_its_stream_and_in_the_inboxes_that_claim_it() -> None:
    one, payload_one = _envelope("oms.trade.executed")
    two, payload_two = _envelope("oms.trade.executed")
    three, payload_three = _envelope("oms.trade.executed")
    outbox = _Outbox(
        rows={
            "oms": [
                (one, "oms.trade.executed", True, payload_one),
                (two, "oms.trade.executed", True, payload_two),
                (three, "oms.trade.executed", False, payload_three),
            ]
        },
        inboxes={"account": {one, two}, "risk": {one, two}, "notification": {one, two}},
    )
    found = Reconciliation()
    _check_events(found, outbox, Counter({one: 1, two: 2}))
    assert found.count("doubled_in_stream") == 1
    assert found.count("unsent") == 1
    assert found.count("missing_in_stream") == 1
    # account-trades, risk-trading and notification-oms each claim the trade.
    assert found.count("inbox_missing") == 3


def test_the_clients_view_of_a_fault() -> None:
    calm = record("c1", "FILLED", "o1", sent=90.0)
    hit = record("c2", "FILLED", "o2", sent=100.5)
    hit.errors = [(101.0, "UNAVAILABLE"), (102.0, "UNAVAILABLE")]
    hit.answered_at = 104.0
    rejected = record("c3", "REJECTED", "o3", sent=101.0)
    view = client_view([calm, hit, rejected], 100.0, 110.0, 5.0)
    assert view["orders_sent"] == 2
    assert view["failed_attempts"] == {"UNAVAILABLE": 2}
    assert view["failed_answers"] == 1
    assert view["worst_latency_seconds"] == 3.5
    assert view["clients_failing_seconds"] == 2.0


def test_a_process_tree_holds_the_children_that_left_the_group() -> None:
    # PostgreSQL's backends call setsid(): a child in a session of its own is still found.
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        tree = process_tree(os.getpid())
        assert tree[0] == os.getpid()
        assert child.pid in tree
    finally:
        child.kill()
        child.wait()


def test_advisory_lock_keys_read_as_the_services_name_them() -> None:
    assert _lock_name(int.from_bytes(b"oms-trig", "big")) == "oms-trig"
    assert _lock_name(-42) == "-42"

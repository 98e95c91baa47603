"""STP hedge orders across restarts, ours and the LP's (issue #18, "Degrade, don't stop";
ADR 0007, "The OMS's FIX sessions"):

- A hedge order committed NEW but not sent when the OMS died is asked about at the LP's logon
  after the restart; the LP does not know it ("unknown order": it never arrived), so it is sent
  then, under the same ClOrdID, and its client order FILLS (it used to be REJECTED /
  LP_UNAVAILABLE 30 s after the logon: the client paid for our restart).
- An LP simulator keeps its book across its own restart, as a real LP does: an order it filled
  but never reported before it was killed is still known afterwards, and the OMS's status
  request fills the client order from it, once; nothing is sent twice.

Holds are deterministic, as in test_stp_durability.py: the desk's worker is held by locking a
hedge order's row while its report waits to be applied.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from services.oms.domain.positions import Side
from services.oms.stp.hedges import HedgeRow
from services.oms.stp.hedges import HedgeStatus
from simulators.lp.control import ControlClient
from tests.integration.support.components import kill
from tests.integration.support.components import kill_oms
from tests.integration.support.components import restore
from tests.integration.support.components import start_oms
from tests.integration.support.orders import Oms
from tests.integration.support.orders import place
from tests.integration.support.stp import ALPHA
from tests.integration.support.stp import assert_filled_once
from tests.integration.support.stp import await_pinned_price
from tests.integration.support.stp import hedge_fills
from tests.integration.support.stp import hedges_of
from tests.integration.support.stp import lp_order_reports
from tests.integration.support.stp import sent_hedge
from tests.integration.support.stp import stored_reports
from tests.integration.support.stp import stp_trader
from tests.integration.support.waiting import eventually
from tradingmesh.common.v1 import trading_pb2

S = trading_pb2
D = Decimal


def insert_new_hedge(oms: Oms, order_id: str, quantity: Decimal) -> str:
    """What a window's close commits for one buy order before the hedge is sent: a NEW hedge
    order at lp-alpha linked to the order (pro-stp: no markup)."""
    now = datetime.now(UTC)
    hedge = HedgeRow(
        id=str(uuid.uuid4()),
        symbol="EURUSD",
        side=Side.BUY,
        quantity=quantity,
        gross_buy_quantity=quantity,
        gross_sell_quantity=D(0),
        liquidity_provider_id="lp-alpha",
        status=HedgeStatus.NEW,
        created_at=now,
        updated_at=now,
        version=1,
        raw_bid=D(ALPHA[0]),
        raw_ask=D(ALPHA[1]),
    )
    columns = [c.strip() for c in HedgeRow.COLUMNS.split(",")]
    with psycopg.connect(oms.stack.database_url) as conn:
        conn.execute(
            f"INSERT INTO oms.hedge_orders ({', '.join(columns)})"
            f" VALUES ({', '.join(f'%({c})s' for c in columns)})",
            hedge.params(),
        )
        conn.execute(
            "INSERT INTO oms.hedge_order_orders (hedge_order_id, order_id, bid_markup,"
            " ask_markup) VALUES (%s, %s, 0, 0)",
            (hedge.id, order_id),
        )
    return hedge.id


def test_a_hedge_committed_but_not_sent_when_the_oms_died_is_sent_after_the_restart(
    oms: Oms,
    stp_lps: dict[str, ControlClient],
) -> None:
    trader = stp_trader(oms)
    await_pinned_price(oms, trader)
    stp_lps["lp-alpha"].set_fill_delay(3000)

    first = place(oms, trader, quantity="0.50")
    first_hedge = sent_hedge(oms, first.id)["id"]
    with psycopg.connect(oms.stack.database_url) as hold:
        # The desk's worker stops at the first hedge's report (it locks the row first) ...
        hold.execute("SELECT 1 FROM oms.hedge_orders WHERE id = %s FOR UPDATE", (first_hedge,))
        eventually(
            lambda: any(r["kind"] == "FILL" for r in stored_reports(oms, first_hedge)),
            20,
            "the first hedge's fill stored, its apply waiting",
        )
        # ... so the second order's window closes behind it, and the OMS dies before.
        second = place(oms, trader, quantity="0.30")
        assert second.status == S.ORDER_STATUS_WORKING
        time.sleep(0.5)
        assert hedges_of(oms, [second.id]) == []
        kill_oms(oms)
        hold.rollback()
    # What the close would have committed just before the kill: its hedge order, NEW, unsent.
    stp_lps["lp-alpha"].set_fill_delay(2)
    hedge_id = insert_new_hedge(oms, second.id, D("0.30"))

    start_oms(oms, trader)

    assert_filled_once(oms, trader, first.id, "0.5", "1.1001")
    hedge = assert_filled_once(oms, trader, second.id, "0.3", "1.1001")
    assert hedge["id"] == hedge_id  # the same ClOrdID, sent once after the LP said unknown
    reports = lp_order_reports(oms, hedge_id)
    assert [r[150] for r in reports if r[150] != "I"] == ["0", "F"], reports
    asked = [r for r in reports if r[150] == "I"]
    assert [(r[39], r.get(103)) for r in asked][:1] == [("8", "5")]  # unknown: never arrived


def test_an_lp_keeps_its_book_across_its_restart_and_the_order_fills_once(
    oms: Oms,
    stp_lps: dict[str, ControlClient],
) -> None:
    trader = stp_trader(oms)
    await_pinned_price(oms, trader)
    stp_lps["lp-alpha"].silence(orders=1)  # it fills the next order but never reports it

    placed = place(oms, trader, quantity="0.40")
    hedge_id = sent_hedge(oms, placed.id)["id"]

    def booked() -> list[dict[str, Any]]:
        return stp_lps["lp-alpha"].fills(client="TRADINGMESH-OMS", client_order_id=hedge_id)

    (filled,) = eventually(booked, 10, "the LP filled the hedge order")
    assert (D(filled["quantity"]), filled["fills"]) == (D("0.4"), 1)

    # The LP dies before anyone asks, and comes back.
    kill(oms.running, "lp-alpha")
    restore(oms.running)
    stp_lps["lp-alpha"].pin("EURUSD", *ALPHA)

    # The OMS's status request finds the order in the LP's book: filled once, from its answer.
    hedge = assert_filled_once(oms, trader, placed.id, "0.4", "1.1001")
    assert hedge["id"] == hedge_id
    assert hedge_fills(oms, hedge_id) == [("status:2:0.4", D("0.4"), D("1.1001"))]
    (after,) = booked()
    assert (D(after["quantity"]), after["fills"]) == (D("0.4"), 1)
    answers = lp_order_reports(oms, hedge_id)
    assert {(a[150], a[39]) for a in answers} == {("I", "2")}, answers  # no second order


def test_the_first_stp_order_after_an_oms_restart_fills(
    oms: Oms,
    stp_lps: dict[str, ControlClient],
) -> None:
    trader = stp_trader(oms)
    await_pinned_price(oms, trader)

    kill_oms(oms)
    start_oms(oms, trader)  # as soon as it answers: its order sessions may not be up yet

    placed = place(oms, trader, quantity="0.20")
    assert placed.status == S.ORDER_STATUS_WORKING
    assert_filled_once(oms, trader, placed.id, "0.2", "1.1001")

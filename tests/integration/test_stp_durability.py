"""STP execution reports that must not be lost, and hedge orders the provider does not answer,
against the real stack (ADR 0007, "The OMS's FIX sessions"; SPEC: killing a service mid-flow
loses no acknowledged order and fills nothing twice).

- A report stored by the OMS (`oms.lp_execution_reports`) but not yet applied when the OMS is
  killed is applied once after the restart; the LP will never resend it (QuickFIX had counted
  it received).
- A report the OMS cannot store is not counted received: the OMS drops the session and the LP
  resends it after the reconnect.
- A hedge order whose reports the LP never sent is filled from the LP's answer to an
  OrderStatusRequest; one the LP never answers at all is reported of unknown fate and left open.

Deterministic holds, no sleeps on timing: the apply of a report is held by locking its hedge
order's row from the test's own connection (the OMS stores the report in another table, which
that lock does not touch); storing is held by locking `oms.lp_execution_reports` against writes.
Traders are in the seeded "pro-stp" group; lp-alpha quotes the best price on both sides, so
every hedge order goes there.
"""

from __future__ import annotations

import re
import urllib.request
from decimal import Decimal
from typing import Any

import psycopg

from simulators.lp.control import ControlClient
from tests.integration.support.components import kill_oms
from tests.integration.support.components import start_oms
from tests.integration.support.orders import Oms
from tests.integration.support.orders import place
from tests.integration.support.stp import D
from tests.integration.support.stp import S
from tests.integration.support.stp import assert_filled_once
from tests.integration.support.stp import await_pinned_price
from tests.integration.support.stp import get_order
from tests.integration.support.stp import hedge_fills
from tests.integration.support.stp import hedges_of
from tests.integration.support.stp import lp_order_reports
from tests.integration.support.stp import sent_hedge
from tests.integration.support.stp import stored_reports
from tests.integration.support.stp import stp_trader
from tests.integration.support.stp import trades
from tests.integration.support.waiting import eventually
from tradingmesh.common.v1 import types_pb2


def metric(oms: Oms, name: str, lp: str | None = None) -> Decimal:
    """A sample of the OMS's /metrics (0 when it has none yet), summed over its instances
    (`--replicas`, ADR 0017: the STP desk runs on whichever leads)."""
    total = D(0)
    for instance in range(1, oms.running.state.replicas + 1):
        url = f"http://127.0.0.1:{oms.ports.service_metrics('oms', instance)}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        labels = "" if lp is None else f'{{lp="{lp}"}}'
        found = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
        total += D(found.group(1)) if found else D(0)
    return total


def test_a_fill_stored_but_not_applied_when_the_oms_is_killed_is_applied_once_after_restart(
    oms: Oms, stp_lps: dict[str, ControlClient]
) -> None:
    trader = stp_trader(oms)
    await_pinned_price(oms, trader)
    stp_lps["lp-alpha"].set_fill_delay(4000)  # the reports come 4 s after the order

    placed = place(oms, trader, quantity="0.50")
    assert placed.status == S.ORDER_STATUS_WORKING
    hedge_id = sent_hedge(oms, placed.id)["id"]

    # Hold the apply: the desk's report job locks the hedge order's row first.
    with psycopg.connect(oms.stack.database_url) as hold:
        (status,) = hold.execute(
            "SELECT status FROM oms.hedge_orders WHERE id = %s FOR UPDATE", (hedge_id,)
        ).fetchone() or (None,)
        assert status == "SENT"  # no report applied yet

        # The LP's acknowledgement and fill reach the OMS and are stored, not applied.
        def stored() -> list[dict[str, Any]] | None:
            found = stored_reports(oms, hedge_id)
            return found if any(r["kind"] == "FILL" for r in found) else None

        reports = eventually(stored, 20, "the LP's reports stored by the OMS")
        assert [r["kind"] for r in reports] == ["ACKNOWLEDGED", "FILL"]
        assert not any(r["applied"] for r in reports)
        kill_oms(oms)
        hold.rollback()

    # The LP will not resend: QuickFIX had counted both received before the kill.
    (fill,) = [r for r in reports if r["kind"] == "FILL"]
    start_oms(oms, trader)

    hedge = assert_filled_once(oms, trader, placed.id, "0.5", "1.1001")
    assert hedge["id"] == hedge_id
    assert hedge_fills(oms, hedge_id) == [(fill["exec_id"], D("0.5"), D("1.1001"))]
    assert all(r["applied"] for r in stored_reports(oms, hedge_id))
    assert [r["key"] for r in stored_reports(oms, hedge_id)] == [r["key"] for r in reports]
    # The LP sent its fill once, under that ExecID.
    lp_fills = [r for r in lp_order_reports(oms, hedge_id) if r[150] == "F"]
    assert [r[17] for r in lp_fills] == [fill["exec_id"]]


def test_a_report_the_oms_cannot_store_is_not_taken_and_the_lp_resends_it(
    oms: Oms, stp_lps: dict[str, ControlClient]
) -> None:
    trader = stp_trader(oms)
    await_pinned_price(oms, trader)
    stp_lps["lp-alpha"].set_fill_delay(2000)
    refused_before = metric(oms, "tradingmesh_oms_lp_reports_not_stored_total", "lp-alpha")

    placed = place(oms, trader, quantity="0.30")
    hedge_id = sent_hedge(oms, placed.id)["id"]

    # No writes to the journal: storing waits out its 5 s statement timeout and fails.
    with psycopg.connect(oms.stack.database_url) as hold:
        hold.execute("LOCK TABLE oms.lp_execution_reports IN EXCLUSIVE MODE")
        eventually(
            lambda: (
                metric(oms, "tradingmesh_oms_lp_reports_not_stored_total", "lp-alpha")
                > refused_before
            ),
            30,
            "the OMS refusing a report it could not store",
        )
        assert get_order(oms, trader, placed.id).status == S.ORDER_STATUS_WORKING
        assert hedges_of(oms, [placed.id])[-1]["status"] == "SENT"
        hold.rollback()

    # After the reconnect the LP resends the reports from the refused one on: the fill arrives
    # with the ExecID the LP gave it, and counts once.
    hedge = assert_filled_once(oms, trader, placed.id, "0.3", "1.1001")
    lp_fills = [r for r in lp_order_reports(oms, hedge["id"]) if r[150] == "F"]
    assert len(lp_fills) == 1
    assert hedge_fills(oms, hedge["id"]) == [(lp_fills[0][17], D("0.3"), D("1.1001"))]
    keys = [r["key"] for r in stored_reports(oms, hedge_id)]
    assert keys[:2] == [r[17] for r in lp_order_reports(oms, hedge["id"]) if r[150] in "0F"]
    eventually(lambda: all(r["applied"] for r in stored_reports(oms, hedge_id)), 10, "all applied")


def test_a_hedge_whose_reports_the_lp_never_sent_is_filled_from_its_order_status(
    oms: Oms, stp_lps: dict[str, ControlClient]
) -> None:
    trader = stp_trader(oms)
    await_pinned_price(oms, trader)
    asked_before = metric(oms, "tradingmesh_oms_hedge_status_requests_total", "lp-alpha")
    stp_lps["lp-alpha"].silence(orders=1)  # it fills the next order but never reports it

    placed = place(oms, trader, quantity="0.40", side=types_pb2.SIDE_BUY)
    hedge_id = sent_hedge(oms, placed.id)["id"]
    assert lp_order_reports(oms, hedge_id) == []  # the LP sent nothing for it

    # 10 s without a report: the OMS asks; the LP answers filled, 0.4 at 1.1001.
    hedge = assert_filled_once(oms, trader, placed.id, "0.4", "1.1001")
    assert hedge["id"] == hedge_id
    assert hedge_fills(oms, hedge_id) == [("status:2:0.4", D("0.4"), D("1.1001"))]
    answers = lp_order_reports(oms, hedge_id)
    assert answers, "the LP answered a status request"
    assert {(a[150], a[39], a[17], D(a[14])) for a in answers} == {("I", "2", "0", D("0.4"))}
    assert metric(oms, "tradingmesh_oms_hedge_status_requests_total", "lp-alpha") > asked_before


def test_a_hedge_the_lp_never_answers_is_reported_unknown_and_left_open(
    oms: Oms, stp_lps: dict[str, ControlClient]
) -> None:
    trader = stp_trader(oms)
    await_pinned_price(oms, trader)
    stp_lps["lp-alpha"].silence(orders=1, status_requests=1000)

    placed = place(oms, trader, quantity="0.20")
    hedge_id = sent_hedge(oms, placed.id)["id"]
    assert lp_order_reports(oms, hedge_id) == []

    # 60 s on, still nothing: the alert is raised, and nothing is invented.
    eventually(
        lambda: metric(oms, "tradingmesh_oms_hedge_orders_unknown") >= 1,
        90,
        "the hedge order reported of unknown fate",
    )
    assert hedges_of(oms, [placed.id])[-1]["status"] == "SENT"
    order = get_order(oms, trader, placed.id)
    assert (order.status, D(order.filled_quantity)) == (S.ORDER_STATUS_WORKING, D(0))
    assert trades(oms, trader, placed.id) == []
    assert metric(oms, "tradingmesh_oms_hedge_status_requests_total", "lp-alpha") >= 1

    # The LP answers again: the next status request settles it, and the alert clears.
    stp_lps["lp-alpha"].silence(status_requests=0)
    assert_filled_once(oms, trader, placed.id, "0.2", "1.1001")
    eventually(
        lambda: metric(oms, "tradingmesh_oms_hedge_orders_unknown") == 0,
        20,
        "the alert cleared",
    )

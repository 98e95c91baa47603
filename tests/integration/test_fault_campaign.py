"""The fault campaign's short version (issue 18; the full one is bench/faults.py): under a
steady order load from traders of its own, the OMS and then NATS are killed with SIGKILL and
brought back with `up`; after each, the reconciliation finds nothing lost, doubled or
unbalanced, and the stack is healthy again."""

from __future__ import annotations

from bench.faults import Fault
from bench.faults import Options
from bench.faults import format_table
from bench.faults import run_campaign
from bench.faults import verdict
from tests.integration.conftest import SETUP_BUDGET
from tests.integration.conftest import RunningStack

FAULTS = (Fault("oms"), Fault("nats"))
OPTIONS = Options(
    rate=10.0,
    traders=4,
    warmup=2.0,
    before=1.0,
    down=1.0,
    settle=3.0,
    reconcile_timeout=30.0,
    up_budget=SETUP_BUDGET,
)


def test_killing_the_oms_and_nats_under_load_loses_doubles_and_unbalances_nothing(
    running_stack: RunningStack,
) -> None:
    summary = run_campaign(running_stack.state, FAULTS, OPTIONS)
    rows = summary["rows"]
    print("\n".join(["", *format_table(rows)]))
    assert [row["fault"] for row in rows] == ["none (warm-up)", *(f.label for f in FAULTS)]
    for row in rows[1:]:
        assert not row["up_error"], row
        assert row["unhealthy_after"] == [], row
    totals = verdict(rows)
    findings = rows[-1]["reconciliation"]["findings"]
    assert totals["lost"] == 0, findings
    assert totals["doubled"] == 0, findings
    assert totals["unbalanced"] == 0, findings
    assert summary["unanswered_at_end"] == 0
    # Every order the load sent was answered, and the reconciliation saw them all.
    last = rows[-1]["reconciliation"]
    assert last["unanswered"] == 0
    assert last["orders_told"] > 0
    assert last["trades"] > 0

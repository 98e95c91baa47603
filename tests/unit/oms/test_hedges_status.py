"""Hedge orders the provider does not answer (ADR 0007): when the STP desk asks for their
status, when their fate is reported unknown, and what an Order Status answer does to them."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from services.oms.stp.config import StpConfig
from services.oms.stp.hedges import HedgeRow
from services.oms.stp.hedges import HedgeStatus
from services.oms.stp.hedges import chase
from services.oms.stp.hedges import fill_counted
from services.oms.stp.hedges import never_received
from services.oms.stp.hedges import on_report
from services.oms.stp.hedges import status_steps
from services.oms.stp.lp_orders import ExecutionReport
from services.oms.stp.lp_orders import ReportKind
from services.platform.settings import SettingsError
from tests.unit.oms import builders as builders
from tests.unit.oms.builders import HEDGE_ID
from tests.unit.oms.builders import NOW

D = Decimal
STATUS_AFTER = timedelta(seconds=10)
UNKNOWN_AFTER = timedelta(seconds=60)


def hedge(status: HedgeStatus = HedgeStatus.SENT, **changes: object) -> HedgeRow:
    """The builders' hedge order, bought in full (1.20, nothing sold)."""
    return builders.hedge(
        status, **{"gross_buy_quantity": D("1.20"), "gross_sell_quantity": D("0"), **changes}
    )


def status(
    ord_status: str, cumulative: str = "0", average: str | None = None, **more: str
) -> ExecutionReport:
    """An answer to an OrderStatusRequest (ExecType I, ExecID 0)."""
    return ExecutionReport(
        lp="lp-alpha",
        hedge_order_id=HEDGE_ID,
        lp_order_id=f"lp-alpha-{HEDGE_ID}",
        execution_id="0",
        kind=ReportKind.STATUS,
        last_quantity=D(0),
        last_price=None,
        cumulative_quantity=D(cumulative),
        text=more.get("text", ""),
        received_at=NOW + timedelta(seconds=11),
        order_status=ord_status,
        average_price=None if average is None else D(average),
        reject_reason=more.get("reject_reason", ""),
    )


def apply_all(row: HedgeRow, steps: list[ExecutionReport]) -> HedgeRow:
    for step in steps:
        after = on_report(row, step, NOW + timedelta(seconds=11))
        row = after if after is not None else row
    return row


# ---- when to ask, when to alert ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quiet", "asked_ago", "ask"),
    [
        (timedelta(seconds=9), None, False),  # not quiet long enough
        (timedelta(seconds=10), None, True),
        (timedelta(seconds=30), timedelta(seconds=4), False),  # asked 4 s ago
        (timedelta(seconds=30), timedelta(seconds=10), True),  # asked 10 s ago: again
    ],
)
def test_a_hedge_at_the_provider_is_asked_about_once_quiet_for_the_status_delay(
    quiet: timedelta, asked_ago: timedelta | None, ask: bool
) -> None:
    now = NOW + quiet
    asked_at = None if asked_ago is None else now - asked_ago

    decision = chase(hedge(HedgeStatus.WORKING), asked_at, now, STATUS_AFTER, UNKNOWN_AFTER)

    assert decision.ask is ask
    assert decision.unknown is False


def test_a_change_restarts_the_quiet_time() -> None:
    changed = hedge(HedgeStatus.PARTIALLY_FILLED, updated_at=NOW + timedelta(seconds=25))

    decision = chase(changed, None, NOW + timedelta(seconds=30), STATUS_AFTER, UNKNOWN_AFTER)

    assert decision.ask is False


def test_a_hedge_still_open_past_the_limit_is_of_unknown_fate_and_still_asked_about() -> None:
    old = hedge(HedgeStatus.SENT)
    now = NOW + timedelta(seconds=61)

    decision = chase(old, now - timedelta(seconds=12), now, STATUS_AFTER, UNKNOWN_AFTER)

    assert (decision.ask, decision.unknown) == (True, True)


@pytest.mark.parametrize(
    "status_",
    [HedgeStatus.NEW, HedgeStatus.FILLED, HedgeStatus.CANCELLED, HedgeStatus.REJECTED],
)
def test_a_hedge_never_sent_or_ended_is_not_chased(status_: HedgeStatus) -> None:
    decision = chase(hedge(status_), None, NOW + timedelta(minutes=5), STATUS_AFTER, UNKNOWN_AFTER)

    assert (decision.ask, decision.unknown) == (False, False)


# ---- what an answer does -------------------------------------------------------------------------


def test_a_filled_answer_for_a_hedge_that_heard_nothing_fills_it_at_the_providers_average() -> None:
    answer = status("2", "1.2", "1.1001")

    steps = status_steps(hedge(), answer)
    after = apply_all(hedge(), steps)

    (fill,) = steps
    assert fill.kind is ReportKind.FILL
    assert (fill.last_quantity, fill.last_price) == (D("1.2"), D("1.1001"))
    assert fill.execution_id == "status:2:1.2"  # the same answer again fills nothing more
    assert (after.status, after.filled_quantity, after.average_price) == (
        HedgeStatus.FILLED,
        D("1.2"),
        D("1.1001"),
    )


def test_a_cancelled_answer_fills_what_was_missed_then_ends_the_hedge_cancelled() -> None:
    partly = hedge(HedgeStatus.PARTIALLY_FILLED, filled_quantity=D("0.5"), average_price=D("1.1"))
    # The provider filled 0.5 at 1.1 (heard) and 0.3 at 1.1008 (missed): 0.8 at 1.1003.
    answer = status("4", "0.8", "1.1003")

    steps = status_steps(partly, answer)
    after = apply_all(partly, steps)

    assert [s.kind for s in steps] == [ReportKind.FILL, ReportKind.CANCELLED]
    assert (steps[0].last_quantity, steps[0].last_price) == (D("0.3"), D("1.1008"))
    assert (after.status, after.filled_quantity, after.average_price) == (
        HedgeStatus.CANCELLED,
        D("0.8"),
        D("1.1003"),
    )
    assert "cancelled" in after.status_message


def test_an_answer_with_nothing_new_and_the_order_still_pending_only_acknowledges_it() -> None:
    steps = status_steps(hedge(), status("A"))
    after = apply_all(hedge(), steps)

    assert [s.kind for s in steps] == [ReportKind.ACKNOWLEDGED]
    assert after.status is HedgeStatus.WORKING


def test_an_order_the_provider_does_not_know_never_arrived_and_is_rejected_lp_unavailable() -> None:
    answer = status("8", reject_reason="5", text="unknown order")

    after = apply_all(hedge(), status_steps(hedge(), answer))

    assert after.status is HedgeStatus.REJECTED
    assert after.status_reason == "LP_UNAVAILABLE"
    assert "never received it" in after.status_message
    assert after.filled_quantity == 0


def test_a_rejection_the_provider_explains_stays_lp_rejected() -> None:
    answer = status("8", text="order too large")

    after = apply_all(hedge(), status_steps(hedge(), answer))

    assert (after.status, after.status_reason) == (HedgeStatus.REJECTED, "LP_REJECTED")
    assert after.status_message == "order too large"


def test_an_answer_with_fills_but_no_average_price_is_refused() -> None:
    with pytest.raises(ValueError, match="without an average price"):
        status_steps(hedge(), status("2", "1.2"))


def test_a_fill_report_whose_total_the_hedge_already_has_was_counted_by_the_answer() -> None:
    caught_up = hedge(HedgeStatus.FILLED, filled_quantity=D("1.2"), average_price=D("1.1001"))
    late = ExecutionReport(
        lp="lp-alpha",
        hedge_order_id=HEDGE_ID,
        lp_order_id="",
        execution_id="lp-alpha-r1-x7",
        kind=ReportKind.FILL,
        last_quantity=D("0.7"),
        last_price=D("1.1001"),
        cumulative_quantity=D("1.2"),
        text="",
        received_at=NOW,
    )

    assert fill_counted(caught_up, late) is True
    assert (
        fill_counted(hedge(HedgeStatus.PARTIALLY_FILLED, filled_quantity=D("0.5")), late) is False
    )


# ---- the settings --------------------------------------------------------------------------------


def test_the_status_and_unknown_delays_are_10_and_60_s_unless_configured(tmp_path: Path) -> None:
    default = StpConfig.from_env({"TM_DATA_DIR": str(tmp_path)})
    configured = StpConfig.from_env(
        {
            "TM_DATA_DIR": str(tmp_path),
            "TM_OMS_HEDGE_STATUS_AFTER_S": "3",
            "TM_OMS_HEDGE_UNKNOWN_AFTER_S": "20",
        }
    )

    assert (default.status_after, default.unknown_after) == (STATUS_AFTER, UNKNOWN_AFTER)
    assert default.chase_every == timedelta(seconds=2)
    assert (configured.status_after, configured.unknown_after) == (
        timedelta(seconds=3),
        timedelta(seconds=20),
    )
    assert configured.chase_every == timedelta(seconds=1)  # never more often than each second


@pytest.mark.parametrize(
    ("status_after", "unknown_after"),
    [("0", "60"), ("1.5", "60"), ("x", "60"), ("10", "10"), ("30", "20"), ("10", "86401")],
)
def test_bad_status_delays_stop_the_service(status_after: str, unknown_after: str) -> None:
    with pytest.raises(SettingsError, match="TM_OMS_"):
        StpConfig.from_env(
            {
                "TM_DATA_DIR": "/tmp",
                "TM_OMS_HEDGE_STATUS_AFTER_S": status_after,
                "TM_OMS_HEDGE_UNKNOWN_AFTER_S": unknown_after,
            }
        )


def test_a_new_hedge_made_before_a_restart_is_chased_like_a_sent_one() -> None:
    made = hedge(HedgeStatus.NEW)
    later = NOW + timedelta(seconds=70)

    assert not chase(made, None, later, STATUS_AFTER, UNKNOWN_AFTER).ask
    decision = chase(made, None, later, STATUS_AFTER, UNKNOWN_AFTER, maybe_sent=True)
    assert (decision.ask, decision.unknown) == (True, True)


@pytest.mark.parametrize("status_", [HedgeStatus.NEW, HedgeStatus.SENT])
def test_unknown_order_for_a_hedge_never_acknowledged_means_never_received(
    status_: HedgeStatus,
) -> None:
    answer = status("8", reject_reason="5", text="unknown order")
    (step,) = status_steps(hedge(status_), answer)

    assert never_received(hedge(status_), answer)
    assert never_received(hedge(status_), step)  # the REJECTED step it stands for


def test_unknown_order_for_an_acknowledged_or_filled_hedge_is_not_a_resend() -> None:
    answer = status("8", reject_reason="5", text="unknown order")

    assert not never_received(hedge(HedgeStatus.WORKING), answer)
    assert not never_received(hedge(HedgeStatus.SENT, filled_quantity=D("0.1")), answer)
    assert not never_received(hedge(HedgeStatus.SENT), status("8", text="order too large"))

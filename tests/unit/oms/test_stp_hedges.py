"""A hedge order's life from the provider's execution reports (ADR 0007), and its events."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from services.oms.store.events import system_actor
from services.oms.stp.hedges import HedgeStatus
from services.oms.stp.hedges import hedge_event
from services.oms.stp.hedges import is_uuid
from services.oms.stp.hedges import on_report
from services.oms.stp.hedges import on_sent
from services.oms.stp.hedges import rejected
from services.oms.stp.lp_orders import ExecutionReport
from services.oms.stp.lp_orders import ReportKind
from services.platform.bus import encode_event
from tests.unit.oms.builders import HEDGE_ID
from tests.unit.oms.builders import NOW
from tests.unit.oms.builders import hedge
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.oms.v1 import oms_events_pb2 as ev
from tradingmesh.oms.v1 import oms_pb2

D = Decimal
LATER = NOW + timedelta(milliseconds=40)
ORDERS = ["6f1c1f0e-6b8e-4f5e-8f5c-1a2b3c4d5e6f", "7a2d2f1e-7c9f-4a6e-9a6d-2b3c4d5e6f70"]
ACTOR = system_actor("oms-stp")


def report(
    kind: ReportKind, quantity: str = "0", price: str | None = None, **more: str
) -> ExecutionReport:
    return ExecutionReport(
        lp="lp-alpha",
        hedge_order_id=HEDGE_ID,
        lp_order_id=more.get("lp_order_id", f"lp-alpha-{HEDGE_ID}"),
        execution_id=more.get("execution_id", "lp-alpha-x1"),
        kind=kind,
        last_quantity=D(quantity),
        last_price=None if price is None else D(price),
        cumulative_quantity=D(quantity),
        text=more.get("text", ""),
        received_at=LATER,
    )


def test_a_stored_hedge_becomes_sent_once() -> None:
    sent = on_sent(hedge(HedgeStatus.NEW), LATER)

    assert sent is not None
    assert (sent.status, sent.version, sent.updated_at) == (HedgeStatus.SENT, 3, LATER)
    assert on_sent(hedge(HedgeStatus.WORKING), LATER) is None  # a report came first


def test_the_providers_acknowledgement_makes_it_working_and_records_its_order_id() -> None:
    after = on_report(hedge(), report(ReportKind.ACKNOWLEDGED), LATER)

    assert after is not None
    assert (after.status, after.lp_order_id, after.version) == (
        HedgeStatus.WORKING,
        f"lp-alpha-{HEDGE_ID}",
        3,
    )


def test_fills_accumulate_to_filled_with_the_quantity_weighted_average_price() -> None:
    first = on_report(hedge(HedgeStatus.WORKING), report(ReportKind.FILL, "1.00", "1.10010"), LATER)
    assert first is not None
    assert (first.status, first.filled_quantity, first.average_price) == (
        HedgeStatus.PARTIALLY_FILLED,
        D("1.00"),
        D("1.10010"),
    )

    second = on_report(first, report(ReportKind.FILL, "0.20", "1.10040"), LATER)

    assert second is not None
    assert (second.status, second.filled_quantity) == (HedgeStatus.FILLED, D("1.20"))
    assert second.average_price == D("1.10015")  # (1.0 x 1.10010 + 0.2 x 1.10040) / 1.2
    assert second.version == first.version + 1


def test_the_unfilled_rest_cancelled_by_the_provider_ends_it_cancelled() -> None:
    partly = hedge(HedgeStatus.PARTIALLY_FILLED, filled_quantity=D("1"), average_price=D("1.1"))

    after = on_report(partly, report(ReportKind.CANCELLED, text="0.2 lots not filled"), LATER)

    assert after is not None
    assert (after.status, after.filled_quantity, after.status_message) == (
        HedgeStatus.CANCELLED,
        D("1"),
        "0.2 lots not filled",
    )


def test_the_providers_rejection_ends_it_rejected_with_lp_rejected_and_its_text() -> None:
    after = on_report(hedge(), report(ReportKind.REJECTED, text="quantity above 50 lots"), LATER)

    assert after is not None
    assert (after.status, after.status_reason, after.status_message) == (
        HedgeStatus.REJECTED,
        "LP_REJECTED",
        "quantity above 50 lots",
    )


def test_a_hedge_that_could_not_be_sent_is_rejected_for_lp_unavailable_once() -> None:
    refused = rejected(
        hedge(HedgeStatus.NEW), ErrorReason.ERROR_REASON_LP_UNAVAILABLE, "no session", LATER
    )

    assert refused is not None
    assert (refused.status, refused.status_reason) == (HedgeStatus.REJECTED, "LP_UNAVAILABLE")
    assert rejected(refused, ErrorReason.ERROR_REASON_LP_UNAVAILABLE, "again", LATER) is None


@pytest.mark.parametrize(
    "kind", [ReportKind.ACKNOWLEDGED, ReportKind.CANCELLED, ReportKind.REJECTED, ReportKind.OTHER]
)
def test_after_the_end_only_a_fill_changes_anything(kind: ReportKind) -> None:
    ended = hedge(HedgeStatus.CANCELLED, filled_quantity=D("1"), average_price=D("1.1"))

    assert on_report(ended, report(kind), LATER) is None


def test_a_late_fill_after_the_end_is_counted_but_keeps_the_status() -> None:
    ended = hedge(HedgeStatus.REJECTED, status_reason="LP_UNAVAILABLE")

    after = on_report(ended, report(ReportKind.FILL, "0.5", "1.1002"), LATER)

    assert after is not None
    assert (after.status, after.filled_quantity) == (HedgeStatus.REJECTED, D("0.5"))


def test_an_acknowledgement_after_a_fill_changes_nothing() -> None:
    partly = hedge(HedgeStatus.PARTIALLY_FILLED, filled_quantity=D("1"), average_price=D("1.1"))

    assert on_report(partly, report(ReportKind.ACKNOWLEDGED), LATER) is None


def test_a_fill_beyond_the_hedges_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        on_report(hedge(), report(ReportKind.FILL, "1.5", "1.1"), LATER)


# -- events ----------------------------------------------------------------------------------------


def test_a_fill_publishes_hedge_order_filled_with_the_fill_and_it_meets_its_contract() -> None:
    before = hedge(HedgeStatus.WORKING)
    fill = report(ReportKind.FILL, "1.20", "1.10012", execution_id="lp-alpha-x7")
    after = on_report(before, fill, LATER)
    assert after is not None

    found = hedge_event(before, after, ORDERS, ACTOR, fill)

    assert found is not None
    subject, message = found
    assert subject == "oms.hedge_order.filled"
    assert isinstance(message, ev.HedgeOrderFilled)
    assert (message.fill_quantity, message.fill_price, message.lp_execution_id) == (
        "1.2",
        "1.10012",
        "lp-alpha-x7",
    )
    assert message.hedge_order.status == oms_pb2.HEDGE_ORDER_STATUS_FILLED
    assert list(message.hedge_order.order_ids) == ORDERS
    assert message.metadata.aggregate_version == after.version
    encode_event(message)  # raises if the event breaks its contract


@pytest.mark.parametrize(
    ("before", "after", "subject"),
    [
        (HedgeStatus.NEW, HedgeStatus.SENT, "oms.hedge_order.sent"),
        (HedgeStatus.PARTIALLY_FILLED, HedgeStatus.CANCELLED, "oms.hedge_order.cancelled"),
        (HedgeStatus.SENT, HedgeStatus.REJECTED, "oms.hedge_order.rejected"),
    ],
)
def test_status_changes_publish_their_events(
    before: HedgeStatus, after: HedgeStatus, subject: str
) -> None:
    changed = hedge(after, version=3, status_reason="LP_REJECTED", status_message="no")

    found = hedge_event(hedge(before), changed, ORDERS, ACTOR)

    assert found is not None
    assert found[0] == subject
    encode_event(found[1])


def test_the_acknowledgement_publishes_nothing() -> None:
    assert hedge_event(hedge(), hedge(HedgeStatus.WORKING, version=3), ORDERS, ACTOR) is None


def test_the_hedge_order_message_carries_what_staff_see() -> None:
    message = hedge(
        HedgeStatus.PARTIALLY_FILLED, filled_quantity=D("0.5"), average_price=D("1.10012")
    ).to_proto(ORDERS)

    assert (message.quantity, message.gross_buy_quantity, message.gross_sell_quantity) == (
        "1.2",
        "1.5",
        "0.3",
    )
    assert (message.filled_quantity, message.average_price) == ("0.5", "1.10012")
    assert message.fix_client_order_id == HEDGE_ID
    assert message.side == 1  # SIDE_BUY


def test_only_a_uuid_can_be_a_hedge_orders_client_order_id() -> None:
    assert is_uuid(HEDGE_ID)
    assert not is_uuid("QA-123")

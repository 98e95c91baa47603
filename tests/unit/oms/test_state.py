"""The order status machine: every (status, event) pair, against the contract."""

from __future__ import annotations

import re
from decimal import Decimal
from itertools import product
from pathlib import Path

import grpc
import pytest

from services.oms.domain.state import OPEN_STATUSES
from services.oms.domain.state import PLACING_STATUSES
from services.oms.domain.state import TERMINAL_STATUSES
from services.oms.domain.state import TRANSITIONS
from services.oms.domain.state import Fill
from services.oms.domain.state import OrderEvent
from services.oms.domain.state import OrderState
from services.oms.domain.state import OrderStatus
from services.oms.domain.state import TransitionRefusedError
from services.oms.domain.state import apply
from services.oms.domain.state import resolve
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.oms.v1 import oms_pb2

REPO = Path(__file__).resolve().parents[3]
S = OrderStatus
E = OrderEvent

# The allowed pairs, restated by hand from the contract (common/v1/trading.proto OrderStatus and
# oms/v1/oms.proto OrderEventType), for an order of 1.00 lot with nothing filled (0.40 filled
# when PARTIALLY_FILLED, all of it when FILLED). Every other pair must be refused.
EXPECTED: dict[tuple[OrderStatus, OrderEvent], OrderStatus] = {
    (S.NEW, E.SUBMITTED): S.PENDING,
    (S.NEW, E.REJECTED): S.REJECTED,
    (S.PENDING, E.ACCEPTED): S.ACCEPTED,
    (S.PENDING, E.REJECTED): S.REJECTED,
    (S.ACCEPTED, E.ACTIVATED): S.WORKING,
    (S.ACCEPTED, E.PARTIALLY_FILLED): S.PARTIALLY_FILLED,
    (S.ACCEPTED, E.FILLED): S.FILLED,
    (S.ACCEPTED, E.REJECTED): S.REJECTED,
    (S.WORKING, E.TRIGGERED): S.WORKING,
    (S.WORKING, E.PARTIALLY_FILLED): S.PARTIALLY_FILLED,
    (S.WORKING, E.FILLED): S.FILLED,
    (S.WORKING, E.CANCEL_REQUESTED): S.PENDING_CANCEL,
    (S.WORKING, E.CANCELLED): S.CANCELLED,
    (S.WORKING, E.AMEND_REQUESTED): S.PENDING_AMEND,
    (S.WORKING, E.AMENDED): S.WORKING,
    (S.WORKING, E.EXPIRED): S.EXPIRED,
    (S.WORKING, E.REJECTED): S.REJECTED,
    (S.PARTIALLY_FILLED, E.PARTIALLY_FILLED): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.FILLED): S.FILLED,
    (S.PARTIALLY_FILLED, E.CANCEL_REQUESTED): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, E.CANCELLED): S.CANCELLED,
    (S.PARTIALLY_FILLED, E.AMEND_REQUESTED): S.PENDING_AMEND,
    (S.PARTIALLY_FILLED, E.AMENDED): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.EXPIRED): S.EXPIRED,
    (S.PENDING_AMEND, E.AMENDED): S.WORKING,  # nothing filled; PARTIALLY_FILLED otherwise
    (S.PENDING_AMEND, E.AMEND_REJECTED): S.WORKING,  # likewise
    (S.PENDING_AMEND, E.PARTIALLY_FILLED): S.PENDING_AMEND,
    (S.PENDING_AMEND, E.FILLED): S.FILLED,
    (S.PENDING_AMEND, E.CANCEL_REQUESTED): S.PENDING_CANCEL,
    (S.PENDING_AMEND, E.CANCELLED): S.CANCELLED,
    (S.PENDING_AMEND, E.EXPIRED): S.EXPIRED,
    (S.PENDING_CANCEL, E.CANCELLED): S.CANCELLED,
    (S.PENDING_CANCEL, E.CANCEL_REJECTED): S.WORKING,  # likewise
    (S.PENDING_CANCEL, E.PARTIALLY_FILLED): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.FILLED): S.FILLED,
    (S.PENDING_CANCEL, E.EXPIRED): S.EXPIRED,
}

RESUMING = [
    (S.PENDING_AMEND, E.AMENDED),
    (S.PENDING_AMEND, E.AMEND_REJECTED),
    (S.PENDING_CANCEL, E.CANCEL_REJECTED),
]

QUANTITY = Decimal("1.00")


def order_in(status: OrderStatus, filled: Decimal | None = None) -> OrderState:
    if filled is None:
        filled = {S.PARTIALLY_FILLED: Decimal("0.40"), S.FILLED: QUANTITY}.get(status, Decimal(0))
    return OrderState(status, QUANTITY, filled)


def event_for(event: OrderEvent, order: OrderState) -> OrderEvent | Fill:
    """The fill kinds as fills: the whole remaining quantity, or less than it."""
    remaining = order.remaining_quantity
    if event is E.FILLED:
        return Fill(remaining if remaining > 0 else Decimal("0.10"))
    if event is E.PARTIALLY_FILLED:
        return Fill(remaining / 2 if remaining > 0 else Decimal("0.10"))
    return event


@pytest.mark.parametrize(
    ("status", "event"),
    list(product(OrderStatus, OrderEvent)),
    ids=[f"{s}-{e}" for s, e in product(OrderStatus, OrderEvent)],
)
def test_every_status_and_event_pair_moves_as_the_contract_says_or_is_refused(
    status: OrderStatus, event: OrderEvent
) -> None:
    order = order_in(status)
    expected = EXPECTED.get((status, event))

    if expected is not None:
        assert apply(order, event_for(event, order)) is expected
    else:
        with pytest.raises(TransitionRefusedError) as refused:
            apply(order, event_for(event, order))
        assert refused.value.reason == ErrorReason.ERROR_REASON_INVALID_ORDER_STATE
        assert refused.value.status == grpc.StatusCode.FAILED_PRECONDITION
        assert refused.value.order_status is status


def test_the_table_holds_exactly_the_expected_pairs() -> None:
    assert set(TRANSITIONS) == set(EXPECTED)
    assert len(TRANSITIONS) == 36


def _contract_transitions() -> set[tuple[OrderStatus, OrderStatus]]:
    """The "Allowed transitions" block of OrderStatus's comment in trading.proto."""
    text = (REPO / "proto/tradingmesh/common/v1/trading.proto").read_text()
    block = text.split("// Allowed transitions (any other transition is refused by the OMS):")[1]
    block = block.split("//   FILLED, CANCELLED, REJECTED, EXPIRED: terminal")[0]
    joined = re.sub(r"\n//\s+\|", " |", block)  # continuation lines start with "|"
    pairs: set[tuple[OrderStatus, OrderStatus]] = set()
    for line in joined.splitlines():
        match = re.fullmatch(r"//\s+([A-Z_]+)\s+->\s+(.+)", line.strip())
        if match:
            source = OrderStatus(match[1])
            pairs |= {(source, OrderStatus(t.strip())) for t in match[2].split("|")}
    return pairs


def test_the_table_moves_between_exactly_the_statuses_the_contract_lists() -> None:
    contract = _contract_transitions()
    # NEW 2, PENDING 2, ACCEPTED 4, WORKING 7, PARTIALLY_FILLED 6, PENDING_AMEND 6,
    # PENDING_CANCEL 5 targets: the parse found the whole block.
    assert len(contract) == 32
    reached: set[tuple[OrderStatus, OrderStatus]] = set()
    for status, event in TRANSITIONS:
        # A pending request may be on an order with or without fills; the others have one state.
        pending = status in (S.PENDING_AMEND, S.PENDING_CANCEL)
        for filled in (Decimal(0), Decimal("0.40")) if pending else (None,):
            order = order_in(status, filled)
            reached.add((status, apply(order, event_for(event, order))))

    # Every status change the table makes is in the contract, and every one listed is made.
    assert {p for p in reached if p[0] != p[1]} == {p for p in contract if p[0] != p[1]}
    # The only self-transition the contract lists (a further partial fill) is in the table;
    # the table's other ones are the contract's status-keeping changes.
    assert {p for p in contract if p[0] == p[1]} == {(S.PARTIALLY_FILLED, S.PARTIALLY_FILLED)}
    assert {p for p in reached if p[0] == p[1]} == {
        (S.WORKING, S.WORKING),  # TRIGGERED, AMENDED at once
        (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED),  # a further partial fill, AMENDED at once
        (S.PENDING_AMEND, S.PENDING_AMEND),  # a fill while the amend is pending
        (S.PENDING_CANCEL, S.PENDING_CANCEL),  # a fill while the cancel is pending
    }


@pytest.mark.parametrize(("status", "event"), RESUMING)
def test_a_pending_request_that_ends_returns_to_partially_filled_once_part_is_filled(
    status: OrderStatus, event: OrderEvent
) -> None:
    assert apply(order_in(status, Decimal("0.40")), event) is S.PARTIALLY_FILLED
    assert apply(order_in(status, Decimal(0)), event) is S.WORKING


@pytest.mark.parametrize("status", [S.PENDING_CANCEL, S.PENDING_AMEND])
def test_a_fill_while_a_request_is_pending_keeps_the_status_unless_it_completes_the_order(
    status: OrderStatus,
) -> None:
    order = order_in(status, Decimal("0.40"))  # 0.60 remaining

    assert resolve(order, Fill(Decimal("0.59"))) is E.PARTIALLY_FILLED
    assert apply(order, Fill(Decimal("0.59"))) is status
    assert resolve(order, Fill(Decimal("0.60"))) is E.FILLED
    assert apply(order, Fill(Decimal("0.60"))) is S.FILLED


def test_the_fill_quantity_decides_between_partially_filled_and_filled() -> None:
    order = OrderState(S.WORKING, Decimal("0.30"))

    # 0.1 + 0.2 is exactly 0.3 in Decimal: the second fill completes the order.
    assert apply(order, Fill(Decimal("0.1"))) is S.PARTIALLY_FILLED
    after_first = OrderState(S.PARTIALLY_FILLED, Decimal("0.30"), Decimal("0.1"))
    assert after_first.remaining_quantity == Decimal("0.2")
    assert apply(after_first, Fill(Decimal("0.2"))) is S.FILLED


def test_a_fill_above_the_remaining_quantity_is_refused() -> None:
    order = order_in(S.PARTIALLY_FILLED)  # 0.60 remaining

    with pytest.raises(TransitionRefusedError, match=r"0\.61 exceeds the remaining 0\.60"):
        apply(order, Fill(Decimal("0.61")))


def test_a_fill_is_applied_with_its_quantity_never_as_a_bare_event() -> None:
    with pytest.raises(TypeError):
        apply(order_in(S.WORKING), E.FILLED)
    with pytest.raises(TypeError):
        apply(order_in(S.WORKING), E.PARTIALLY_FILLED)


def test_an_order_is_created_new_and_created_is_never_applied() -> None:
    order = OrderState.new(Decimal("2.5"))

    assert order.status is S.NEW
    assert order.remaining_quantity == Decimal("2.5")
    assert all(event is not E.CREATED for _, event in TRANSITIONS)


def test_terminal_statuses_have_no_way_out_and_open_ones_do() -> None:
    sources = {status for status, _ in TRANSITIONS}

    assert {S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED} == TERMINAL_STATUSES
    assert sources == OPEN_STATUSES


def test_the_placing_statuses_are_the_open_ones_no_cancel_leaves() -> None:
    cancels = (E.CANCELLED, E.CANCEL_REQUESTED)
    uncancellable = {s for s in OPEN_STATUSES if all((s, e) not in TRANSITIONS for e in cancels)}

    assert uncancellable == PLACING_STATUSES


def test_the_refusal_names_the_status_and_the_event() -> None:
    with pytest.raises(TransitionRefusedError) as refused:
        apply(order_in(S.FILLED), E.CANCELLED)

    assert refused.value.metadata == {"status": "FILLED", "event": "CANCELLED"}
    assert str(refused.value) == "an order in status FILLED does not allow CANCELLED"


@pytest.mark.parametrize(
    ("quantity", "filled"),
    [(Decimal(0), Decimal(0)), (Decimal("1"), Decimal("1.01")), (Decimal("1"), Decimal(-1))],
)
def test_an_impossible_order_state_is_a_bug(quantity: Decimal, filled: Decimal) -> None:
    with pytest.raises(ValueError, match=r"quantity"):
        OrderState(S.WORKING, quantity, filled)


def test_every_proto_order_status_maps_to_one_of_ours_and_back() -> None:
    values = [
        v for v in trading_pb2.OrderStatus.values() if v != trading_pb2.ORDER_STATUS_UNSPECIFIED
    ]

    assert {OrderStatus.from_proto(v) for v in values} == set(OrderStatus)
    assert all(OrderStatus.from_proto(v).to_proto() == v for v in values)
    with pytest.raises(ValueError, match="UNSPECIFIED"):
        OrderStatus.from_proto(trading_pb2.ORDER_STATUS_UNSPECIFIED)


def test_every_proto_order_event_type_but_snapshot_maps_to_one_of_ours_and_back() -> None:
    not_changes = {oms_pb2.ORDER_EVENT_TYPE_UNSPECIFIED, oms_pb2.ORDER_EVENT_TYPE_SNAPSHOT}
    values = [v for v in oms_pb2.OrderEventType.values() if v not in not_changes]

    assert {OrderEvent.from_proto(v) for v in values} == set(OrderEvent)
    assert all(OrderEvent.from_proto(v).to_proto() == v for v in values)
    for value in not_changes:
        with pytest.raises(ValueError, match="does not change an order"):
            OrderEvent.from_proto(value)

"""The trigger rules for STP limit and stop-limit orders (ADR 0007 "Working orders"): which
orders the index holds, the pause while a hedge order is at the provider and after one that
left the order working, and how long that pause is."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.oms.domain.positions import Side
from services.oms.domain.state import OrderStatus
from services.oms.domain.triggers import FIRST_RETRY
from services.oms.domain.triggers import LAST_RETRY
from services.oms.domain.triggers import Kind
from services.oms.domain.triggers import OrderKind
from services.oms.domain.triggers import TriggerIndex
from services.oms.domain.triggers import WorkingOrder
from services.oms.domain.triggers import retry_pause
from services.oms.model import ExecutionMode
from services.oms.model import OrderRow
from services.oms.model import OrderType
from services.oms.stp.desk import LimitListener
from services.oms.stp.desk import LimitSettled
from services.oms.triggers.engine import IN_FLIGHT
from services.oms.triggers.engine import TriggerEngine
from services.oms.triggers.engine import working_order_of
from tests.unit.oms import builders

D = Decimal
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
GROUP = "g1"


def stored(
    order_type: OrderType = OrderType.LIMIT,
    status: OrderStatus = OrderStatus.WORKING,
    *,
    mode: ExecutionMode = ExecutionMode.STP,
    filled: str = "0",
    triggered: bool = False,
    version: int = 4,
) -> OrderRow:
    return builders.order(
        id="o1",
        account_id="a1",
        type=order_type,
        status=status,
        filled_quantity=D(filled),
        created_at=NOW,
        updated_at=NOW,
        version=version,
        stop_price=D("1.10100") if order_type is not OrderType.LIMIT else None,
        execution_mode=mode,
        trigger_time=NOW if triggered else None,
    )


def entry(order_id: str = "o1", version: int = 4) -> WorkingOrder:
    return WorkingOrder(
        order_id, "a1", GROUP, "EURUSD", Side.BUY, OrderKind.LIMIT, version, D("1.10000")
    )


# -- which orders the price can trigger ------------------------------------------------------------


@pytest.mark.parametrize(
    ("order_type", "kind"),
    [(OrderType.LIMIT, OrderKind.LIMIT), (OrderType.STOP_LIMIT, OrderKind.STOP_LIMIT)],
)
def test_working_stp_limit_and_stop_limit_orders_are_in_the_index(
    order_type: OrderType, kind: OrderKind
) -> None:
    found = working_order_of(stored(order_type), GROUP)
    assert found is not None
    assert (found.kind, found.price) == (kind, D("1.10000"))


def test_a_partly_filled_stp_limit_order_stays_in_the_index() -> None:
    order = stored(status=OrderStatus.PARTIALLY_FILLED, filled="0.4")
    assert working_order_of(order, GROUP) is not None
    triggered = stored(
        OrderType.STOP_LIMIT, OrderStatus.PARTIALLY_FILLED, filled="0.4", triggered=True
    )
    found = working_order_of(triggered, GROUP)
    assert found is not None
    assert found.triggered


@pytest.mark.parametrize(
    "order",
    [
        stored(status=OrderStatus.PENDING_CANCEL),
        stored(status=OrderStatus.PENDING_AMEND),
        stored(status=OrderStatus.FILLED, filled="1"),
        stored(mode=ExecutionMode.MARKET, status=OrderStatus.PARTIALLY_FILLED, filled="0.4"),
        stored(OrderType.STOP, OrderStatus.WORKING, triggered=True),
        stored(OrderType.MARKET),
    ],
    ids=["pending-cancel", "pending-amend", "filled", "partly-filled-non-stp", "stop", "market"],
)
def test_other_orders_are_not_in_the_index(order: OrderRow) -> None:
    assert working_order_of(order, GROUP) is None


# -- pauses ----------------------------------------------------------------------------------------


def test_a_paused_order_is_not_hit_until_its_pause_is_over() -> None:
    index = TriggerIndex()
    index.put_order(entry())
    index.pause("o1", NOW + timedelta(seconds=2))

    def hit(at: datetime | None) -> list[str]:
        return [h.id for h in index.hits(GROUP, "EURUSD", D("1.09990"), D("1.09995"), at)]

    assert hit(NOW) == []
    assert hit(NOW + timedelta(seconds=1.9)) == []
    assert hit(None) == []  # without a time a pause holds
    assert hit(NOW + timedelta(seconds=2)) == ["o1"]
    index.resume("o1")
    assert hit(None) == ["o1"]


def test_a_pause_outlives_a_newer_copy_of_the_order_but_not_its_removal() -> None:
    index = TriggerIndex()
    index.put_order(entry(version=4))
    index.pause("o1", NOW + timedelta(seconds=5))
    index.put_order(entry(version=5))  # e.g. its partial fill's event
    assert index.paused_until("o1") == NOW + timedelta(seconds=5)
    index.discard_order("o1")
    assert index.paused_until("o1") is None
    assert index.pauses == {}


def test_other_orders_are_hit_while_one_is_paused() -> None:
    index = TriggerIndex()
    index.put_order(entry("o1"))
    index.put_order(entry("o2"))
    index.pause("o1", NOW + timedelta(seconds=5))
    hits = list(index.hits(GROUP, "EURUSD", D("1.09990"), D("1.09995"), NOW))
    assert [(h.id, h.kind) for h in hits] == [("o2", Kind.LIMIT)]


@pytest.mark.parametrize(
    ("unfilled", "pause"),
    [(0, 1), (1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (60, 30)],
)
def test_the_retry_pause_doubles_with_each_unfilled_attempt_up_to_a_limit(
    unfilled: int, pause: int
) -> None:
    assert retry_pause(unfilled) == timedelta(seconds=pause)
    assert FIRST_RETRY <= retry_pause(unfilled) <= LAST_RETRY


def test_a_negative_attempt_count_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        retry_pause(-1)


# -- the engine's side of the desk's word ----------------------------------------------------------


class _Desk:
    def __init__(self) -> None:
        self.listeners: list[LimitListener] = []

    async def take(self, order: OrderRow, account: Any) -> None:
        return None

    async def attempt_limit(self, order: OrderRow, account: Any) -> None:
        return None

    def listen_limits(self, listener: LimitListener) -> None:
        self.listeners.append(listener)


class _Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def engine() -> tuple[TriggerEngine, _Desk, _Clock]:
    desk, clock = _Desk(), _Clock()
    found = TriggerEngine(
        None,  # type: ignore[arg-type]  # the desk's word needs no database or quotes
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,
        desk,
        clock=clock,
    )
    found.leading = True
    return found, desk, clock


def test_the_engine_listens_to_the_desk() -> None:
    found, desk, _ = engine()
    assert desk.listeners == [found.limit_done]


def test_a_limit_order_whose_price_was_not_there_at_the_desk_is_armed_at_once() -> None:
    found, _, _ = engine()
    found.index.put_order(entry())
    found.index.pause("o1", NOW + IN_FLIGHT)  # handed to the desk
    found.limit_done(LimitSettled(stored(), GROUP, None))
    assert found.index.paused_until("o1") is None
    assert found.index.order("o1") is not None


def test_a_hedge_that_filled_nothing_pauses_the_order_longer_each_time() -> None:
    found, _, clock = engine()
    pauses = []
    for _ in range(3):
        found.limit_done(LimitSettled(stored(), GROUP, D(0)))
        until = found.index.paused_until("o1")
        assert until is not None
        pauses.append(until - clock.now)
    assert pauses == [timedelta(seconds=2), timedelta(seconds=4), timedelta(seconds=8)]
    partly = stored(status=OrderStatus.PARTIALLY_FILLED, filled="0.3", version=5)
    found.limit_done(LimitSettled(partly, GROUP, D("0.3")))
    assert found.index.paused_until("o1") == clock.now + FIRST_RETRY  # a fill starts again


def test_an_order_the_hedge_ended_leaves_the_index() -> None:
    found, _, _ = engine()
    found.index.put_order(entry())
    filled = replace(stored(), status=OrderStatus.FILLED, filled_quantity=D(1), version=6)
    found.limit_done(LimitSettled(filled, GROUP, D(1)))
    assert found.index.order("o1") is None


def test_a_follower_ignores_the_desks_word() -> None:
    found, _, _ = engine()
    found.leading = False
    found.limit_done(LimitSettled(stored(), GROUP, D(0)))
    assert found.index.order("o1") is None

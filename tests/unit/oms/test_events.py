"""Order events: one per change, valid against their contract, and read back as OrderUpdates."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

import pytest

from services.oms.domain.state import OrderEvent
from services.oms.store.events import ORDER_EVENTS
from services.oms.store.events import actor_of
from services.oms.store.events import metadata
from services.oms.store.events import order_event
from services.oms.store.events import order_subject
from services.oms.store.events import order_update_of
from services.oms.store.events import system_actor
from services.platform.bus import encode_event
from services.platform.identity import Caller
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.types_pb2 import ActorKind
from tradingmesh.oms.v1 import oms_pb2

T = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ID = "0c9d3c2e-0b0b-4a5e-9d55-0f3b2f3f4a12"
ACCOUNT = "7b1c1a4e-9a0f-4c57-8f7e-7f6d3d0e2b11"


def an_order(status: trading_pb2.OrderStatus.ValueType) -> oms_pb2.Order:
    return oms_pb2.Order(
        id=ID,
        account_id=ACCOUNT,
        client_order_id="c-1",
        symbol="EURUSD",
        side=types_pb2.SIDE_BUY,
        type=trading_pb2.ORDER_TYPE_MARKET,
        time_in_force=trading_pb2.TIME_IN_FORCE_IOC,
        status=status,
        quantity="1",
        filled_quantity="1",
        remaining_quantity="0",
        commission="0.00",
        version=5,
    )


def a_trade() -> oms_pb2.Trade:
    return oms_pb2.Trade(
        id=ID,
        order_id=ID,
        client_order_id="c-1",
        account_id=ACCOUNT,
        symbol="EURUSD",
        side=types_pb2.SIDE_BUY,
        quantity="1",
        price="1.1",
        commission="0.00",
        realized_pnl="0.00",
        position_id=ID,
    )


@pytest.mark.parametrize("event", list(OrderEvent))
def test_every_order_event_has_a_subject_and_a_valid_message(event: OrderEvent) -> None:
    assert event in ORDER_EVENTS
    message = order_event(
        event,
        metadata(system_actor(), 5, T),
        an_order(trading_pb2.ORDER_STATUS_FILLED),
        trading_pb2.ORDER_STATUS_WORKING,
        trade=a_trade(),
        trigger_price="1.1",
        changed_fields=["price"],
    )
    payload, headers = encode_event(message)  # raises if the event breaks its contract
    assert headers["Nats-Msg-Id"]
    update = order_update_of(order_subject(event), payload)
    assert update is not None
    assert update.event_type == event.to_proto()
    assert update.order.id == ID
    assert update.previous_status == trading_pb2.ORDER_STATUS_WORKING
    assert update.HasField("trade") == (event in (OrderEvent.FILLED, OrderEvent.PARTIALLY_FILLED))


def test_subjects_are_the_event_names_in_lower_case() -> None:
    assert order_subject(OrderEvent.PARTIALLY_FILLED) == "oms.order.partially_filled"
    assert order_subject(OrderEvent.CANCEL_REQUESTED) == "oms.order.cancel_requested"


def test_a_refused_cancel_carries_its_reason() -> None:
    message = order_event(
        OrderEvent.CANCEL_REJECTED,
        metadata(system_actor(), 5, T),
        an_order(trading_pb2.ORDER_STATUS_WORKING),
        trading_pb2.ORDER_STATUS_PENDING_CANCEL,
        reason=ErrorReason.ERROR_REASON_LP_REJECTED,
        message="too late",
    )
    update = order_update_of("oms.order.cancel_rejected", message.SerializeToString())
    assert update is not None
    assert update.reason == ErrorReason.ERROR_REASON_LP_REJECTED
    assert update.message == "too late"


def test_other_subjects_and_garbage_are_not_updates() -> None:
    assert order_update_of("oms.trade.executed", b"") is None
    assert order_update_of("oms.order.filled", b"\xff\xff\xff") is None


def test_the_actor_of_each_kind_of_caller() -> None:
    def caller(**fields: object) -> Caller:
        values: dict[str, object] = {
            "subject": "",
            "roles": frozenset(),
            "account_ids": frozenset(),
            "api_key_id": None,
            "request_id": "r",
        }
        values.update(fields)
        return Caller(**values)  # type: ignore[arg-type]

    assert actor_of(caller()).kind == ActorKind.ACTOR_KIND_SYSTEM
    assert actor_of(caller(subject="u", roles=frozenset({"trader"}))).kind == (
        ActorKind.ACTOR_KIND_USER
    )
    assert actor_of(caller(subject="s", roles=frozenset({"dealer"}))).kind == (
        ActorKind.ACTOR_KIND_OPERATOR
    )
    key = actor_of(caller(subject="u", api_key_id="k"))
    assert (key.kind, key.id) == (ActorKind.ACTOR_KIND_API_KEY, "k")


def test_metadata_carries_the_version_and_time() -> None:
    meta = metadata(system_actor("risk"), 9, T, correlation_id="x" * 200)
    assert meta.aggregate_version == 9
    assert meta.producer == "oms"
    assert meta.occurred_at.ToDatetime(UTC) == T
    assert len(meta.correlation_id) == 128
    assert meta.actor.id == "risk"

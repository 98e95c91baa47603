"""The OMS's events (oms_events.proto): built here, written to the outbox by the repository.

Every order change makes exactly one event `oms.order.<event>` (the OrderEventType name in
lower case), carrying the order after the change and its status before; a fill also makes
`oms.trade.executed` and one of `oms.position.opened`, `.changed`, `.closed`. The events of one
committed change travel as ONE envelope (ADR 0009), headlined by its trade if it has one, else
by its last order event, else by its position or hedge order event (`HEADLINE_KINDS`).
StreamOrderUpdates reads the order events back into OrderUpdates (`order_update_of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import DecodeError
from google.protobuf.message import Message

from services.oms.domain.state import OrderEvent
from services.platform import access
from services.platform.identity import Caller
from services.platform.outbox import event_metadata
from services.platform.outbox import headline_kinds
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.events_pb2 import EventMetadata
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.common.v1.types_pb2 import ActorKind
from tradingmesh.oms.v1 import oms_events_pb2 as ev
from tradingmesh.oms.v1 import oms_pb2

__all__ = [
    "HEADLINE_KINDS",
    "ORDER_EVENTS",
    "PRODUCER",
    "actor_of",
    "metadata",
    "order_event",
    "order_subject",
    "order_update_of",
    "system_actor",
]

PRODUCER: Final = "oms"
HEADLINE_KINDS: Final = ("oms.trade.", "oms.order.", "oms.position.", "oms.hedge_order.")
headline_kinds(PRODUCER, HEADLINE_KINDS)

ORDER_EVENTS: Final[dict[OrderEvent, type[Message]]] = {
    OrderEvent.CREATED: ev.OrderCreated,
    OrderEvent.SUBMITTED: ev.OrderSubmitted,
    OrderEvent.ACCEPTED: ev.OrderAccepted,
    OrderEvent.ACTIVATED: ev.OrderActivated,
    OrderEvent.TRIGGERED: ev.OrderTriggered,
    OrderEvent.PARTIALLY_FILLED: ev.OrderPartiallyFilled,
    OrderEvent.FILLED: ev.OrderFilled,
    OrderEvent.CANCEL_REQUESTED: ev.OrderCancelRequested,
    OrderEvent.CANCELLED: ev.OrderCancelled,
    OrderEvent.CANCEL_REJECTED: ev.OrderCancelRejected,
    OrderEvent.AMEND_REQUESTED: ev.OrderAmendRequested,
    OrderEvent.AMENDED: ev.OrderAmended,
    OrderEvent.AMEND_REJECTED: ev.OrderAmendRejected,
    OrderEvent.REJECTED: ev.OrderRejected,
    OrderEvent.EXPIRED: ev.OrderExpired,
}
_BY_SUBJECT: Final = {f"oms.order.{e.value.lower()}": (e, k) for e, k in ORDER_EVENTS.items()}


def order_subject(event: OrderEvent) -> str:
    return f"oms.order.{event.value.lower()}"


def system_actor(component: str = PRODUCER) -> Actor:
    return Actor(kind=ActorKind.ACTOR_KIND_SYSTEM, id=component)


def actor_of(caller: Caller | None) -> Actor:
    """Who a caller is in the audit log and the events (`access.actor_of`); the OMS itself
    (SYSTEM) for a call without a user."""
    return access.actor_of(caller, PRODUCER)


def metadata(
    actor: Actor, version: int, at: datetime, *, correlation_id: str = "", causation_id: str = ""
) -> EventMetadata:
    return event_metadata(
        PRODUCER,
        actor,
        at,
        version=version,
        correlation_id=correlation_id,
        causation_id=causation_id,
    )


def order_event(
    event: OrderEvent,
    meta: EventMetadata,
    order: oms_pb2.Order,
    previous_status: trading_pb2.OrderStatus.ValueType,
    *,
    trade: oms_pb2.Trade | None = None,
    trigger_price: str = "",
    changed_fields: Sequence[str] = (),
    reason: ErrorReason.ValueType = ErrorReason.ERROR_REASON_UNSPECIFIED,
    message: str = "",
) -> Message:
    """The event message of one order change."""
    kind = ORDER_EVENTS[event]
    built = kind(metadata=meta, order=order, previous_status=previous_status)
    if isinstance(built, ev.OrderPartiallyFilled | ev.OrderFilled):
        assert trade is not None, "a fill event carries its trade"
        built.trade.CopyFrom(trade)
    elif isinstance(built, ev.OrderTriggered):
        built.trigger_price = trigger_price
    elif isinstance(built, ev.OrderAmended):
        built.changed_fields.CopyFrom(FieldMask(paths=list(changed_fields)))
    elif isinstance(built, ev.OrderCancelRejected | ev.OrderAmendRejected):
        built.reason = reason
        built.message = message[:500]
    return built


def order_update_of(subject: str, data: bytes) -> oms_pb2.OrderUpdate | None:
    """The OrderUpdate an `oms.order.*` event stands for; None for another subject or a message
    that is not the subject's event."""
    known = _BY_SUBJECT.get(subject)
    if known is None:
        return None
    event, kind = known
    try:
        message = kind.FromString(data)
    except DecodeError:
        return None
    update = oms_pb2.OrderUpdate(
        event_type=event.to_proto(),
        order=message.order,  # type: ignore[attr-defined]
        previous_status=message.previous_status,  # type: ignore[attr-defined]
    )
    if isinstance(message, ev.OrderPartiallyFilled | ev.OrderFilled):
        update.trade.CopyFrom(message.trade)
    if isinstance(message, ev.OrderCancelRejected | ev.OrderAmendRejected):
        update.reason = message.reason
        update.message = message.message
    return update

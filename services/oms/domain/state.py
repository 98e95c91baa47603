"""The order status machine (ADR 0007): one table of (status, event) -> status, and `apply`.

The table is the contract's (`common/v1/trading.proto`, OrderStatus): its allowed transitions,
plus the changes that keep the status, which the contract records and publishes like transitions
(a stop order triggering stays WORKING, an amend applied at once keeps WORKING or
PARTIALLY_FILLED, a fill while a cancel or amend is pending keeps PENDING_CANCEL or
PENDING_AMEND unless it completes the order). Every pair not in the table is refused.

The events are the contract's `OrderEventType` values (oms/v1/oms.proto) that change an order;
each is also the event the change publishes (oms.order.<event>). A fill is applied as
`Fill(quantity)`: whether it is PARTIALLY_FILLED or FILLED is decided by the order's remaining
quantity, never by the caller.

`apply` is the only way to a new status. The caller (the order repository) applies the event,
writes the order, its audit row and its outbox row in one transaction, and only then answers.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Final
from typing import Self
from typing import cast

from services.platform.enums import ProtoEnum
from services.platform.errors import DomainError
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.trading.money import exact_difference

__all__ = [
    "OPEN_STATUSES",
    "PLACING_STATUSES",
    "RESUME",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "WORKING_STATUSES",
    "Fill",
    "OrderEvent",
    "OrderState",
    "OrderStatus",
    "Resume",
    "TransitionRefusedError",
    "apply",
    "resolve",
]


class OrderStatus(ProtoEnum, proto=trading_pb2.OrderStatus, prefix="ORDER_STATUS_"):
    """An order's status; the stored text is the contract's OrderStatus name without its
    prefix."""

    NEW = "NEW"
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    WORKING = "WORKING"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    PENDING_CANCEL = "PENDING_CANCEL"
    PENDING_AMEND = "PENDING_AMEND"

    def to_proto(self) -> trading_pb2.OrderStatus.ValueType:
        return cast(trading_pb2.OrderStatus.ValueType, super().to_proto())


class OrderEvent(ProtoEnum, proto=oms_pb2.OrderEventType, prefix="ORDER_EVENT_TYPE_"):
    """What happens to an order: the contract's OrderEventType values that change one.

    SNAPSHOT is left out (it reports a state, it changes nothing). CREATED makes an order in
    status NEW and is never applied to an existing one.
    """

    CREATED = "CREATED"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    ACTIVATED = "ACTIVATED"
    TRIGGERED = "TRIGGERED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    CANCELLED = "CANCELLED"
    CANCEL_REJECTED = "CANCEL_REJECTED"
    AMEND_REQUESTED = "AMEND_REQUESTED"
    AMENDED = "AMENDED"
    AMEND_REJECTED = "AMEND_REJECTED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    def to_proto(self) -> oms_pb2.OrderEventType.ValueType:
        return cast(oms_pb2.OrderEventType.ValueType, super().to_proto())

    @classmethod
    def from_proto(cls, value: int) -> Self:
        """The event of a proto value; ValueError for UNSPECIFIED and SNAPSHOT."""
        if value in _NOT_CHANGES:
            raise ValueError(f"{cls._proto.Name(value)} does not change an order")
        return super().from_proto(value)


_NOT_CHANGES: Final = frozenset(
    {oms_pb2.ORDER_EVENT_TYPE_UNSPECIFIED, oms_pb2.ORDER_EVENT_TYPE_SNAPSHOT}
)


class Resume(enum.Enum):
    """A table target that depends on the fills: back to WORKING when nothing is filled, to
    PARTIALLY_FILLED when part is (the contract's "back to WORKING or PARTIALLY_FILLED" after a
    pending amend or cancel ends without ending the order)."""

    WORKING_OR_PARTIALLY_FILLED = "WORKING_OR_PARTIALLY_FILLED"


RESUME: Final = Resume.WORKING_OR_PARTIALLY_FILLED

_S = OrderStatus
_E = OrderEvent

TRANSITIONS: Final[Mapping[tuple[OrderStatus, OrderEvent], OrderStatus | Resume]] = (
    MappingProxyType(
        {
            # Entry and the pre-trade check. NEW -> REJECTED: the check could not be reached
            # (DEPENDENCY_UNAVAILABLE); PENDING -> REJECTED: the check refused the order.
            (_S.NEW, _E.SUBMITTED): _S.PENDING,
            (_S.NEW, _E.REJECTED): _S.REJECTED,
            (_S.PENDING, _E.ACCEPTED): _S.ACCEPTED,
            (_S.PENDING, _E.REJECTED): _S.REJECTED,
            # Accepted: a market order executes at once (an IOC that fills only part goes to
            # PARTIALLY_FILLED and its rest is then CANCELLED with NO_LIQUIDITY); an order that
            # waits for its price or an LP goes live. REJECTED: requote, no liquidity with
            # nothing filled, no LP session.
            (_S.ACCEPTED, _E.ACTIVATED): _S.WORKING,
            (_S.ACCEPTED, _E.PARTIALLY_FILLED): _S.PARTIALLY_FILLED,
            (_S.ACCEPTED, _E.FILLED): _S.FILLED,
            (_S.ACCEPTED, _E.REJECTED): _S.REJECTED,
            # Working.
            (_S.WORKING, _E.TRIGGERED): _S.WORKING,  # status kept; trigger_time is set
            (_S.WORKING, _E.PARTIALLY_FILLED): _S.PARTIALLY_FILLED,
            (_S.WORKING, _E.FILLED): _S.FILLED,
            (_S.WORKING, _E.CANCEL_REQUESTED): _S.PENDING_CANCEL,  # only while an LP holds it
            (_S.WORKING, _E.CANCELLED): _S.CANCELLED,
            (_S.WORKING, _E.AMEND_REQUESTED): _S.PENDING_AMEND,  # only while an LP holds it
            (_S.WORKING, _E.AMENDED): _S.WORKING,  # amended at once by the platform; kept
            (_S.WORKING, _E.EXPIRED): _S.EXPIRED,
            # Nothing is filled yet: an LP refused the STP order, or the risk check refused a
            # triggered limit or stop order.
            (_S.WORKING, _E.REJECTED): _S.REJECTED,
            # Partially filled: never REJECTED (something is filled; the rest is CANCELLED).
            (_S.PARTIALLY_FILLED, _E.PARTIALLY_FILLED): _S.PARTIALLY_FILLED,
            (_S.PARTIALLY_FILLED, _E.FILLED): _S.FILLED,
            (_S.PARTIALLY_FILLED, _E.CANCEL_REQUESTED): _S.PENDING_CANCEL,
            (_S.PARTIALLY_FILLED, _E.CANCELLED): _S.CANCELLED,
            (_S.PARTIALLY_FILLED, _E.AMEND_REQUESTED): _S.PENDING_AMEND,
            (_S.PARTIALLY_FILLED, _E.AMENDED): _S.PARTIALLY_FILLED,  # amended at once; kept
            (_S.PARTIALLY_FILLED, _E.EXPIRED): _S.EXPIRED,
            # Pending amend: the LP's answer, or a fill or the session's end first.
            (_S.PENDING_AMEND, _E.AMENDED): RESUME,  # with the new values
            (_S.PENDING_AMEND, _E.AMEND_REJECTED): RESUME,  # with the old values
            (_S.PENDING_AMEND, _E.PARTIALLY_FILLED): _S.PENDING_AMEND,  # kept; filled grows
            (_S.PENDING_AMEND, _E.FILLED): _S.FILLED,
            (_S.PENDING_AMEND, _E.CANCEL_REQUESTED): _S.PENDING_CANCEL,
            (_S.PENDING_AMEND, _E.CANCELLED): _S.CANCELLED,
            (_S.PENDING_AMEND, _E.EXPIRED): _S.EXPIRED,
            # Pending cancel: the LP's answer, or a fill that wins the race, or the session's end.
            (_S.PENDING_CANCEL, _E.CANCELLED): _S.CANCELLED,
            (_S.PENDING_CANCEL, _E.CANCEL_REJECTED): RESUME,
            (_S.PENDING_CANCEL, _E.PARTIALLY_FILLED): _S.PENDING_CANCEL,  # kept; filled grows
            (_S.PENDING_CANCEL, _E.FILLED): _S.FILLED,
            (_S.PENDING_CANCEL, _E.EXPIRED): _S.EXPIRED,
            # FILLED, CANCELLED, REJECTED and EXPIRED are terminal: no pair starts there.
            # CREATED starts no pair either: it makes a NEW order (OrderState.new).
        }
    )
)

TERMINAL_STATUSES: Final = frozenset({_S.FILLED, _S.CANCELLED, _S.REJECTED, _S.EXPIRED})
OPEN_STATUSES: Final = frozenset(OrderStatus) - TERMINAL_STATUSES
"""What ListOrders' open_only means: every status but the terminal ones."""
PLACING_STATUSES: Final = frozenset({_S.NEW, _S.PENDING, _S.ACCEPTED})
"""An order its placement has not settled yet (checks, execution): not yet cancellable."""
WORKING_STATUSES: Final = frozenset({_S.WORKING, _S.PARTIALLY_FILLED})
"""An order at work with a rest to execute: one that may be amended, triggered, filled or
hedged further (not one waiting for the LP's word on a cancel or an amend)."""


@dataclass(frozen=True)
class OrderState:
    """What the status machine needs of an order: its status and quantities, in lots."""

    status: OrderStatus
    quantity: Decimal
    filled_quantity: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if not self.quantity > 0:
            raise ValueError(f"an order's quantity is positive, not {self.quantity}")
        if not Decimal(0) <= self.filled_quantity <= self.quantity:
            raise ValueError(
                f"filled quantity {self.filled_quantity} is not within 0..{self.quantity}"
            )

    @classmethod
    def new(cls, quantity: Decimal) -> OrderState:
        """An order just CREATED."""
        return cls(OrderStatus.NEW, quantity)

    @property
    def remaining_quantity(self) -> Decimal:
        """The unfilled quantity (the wire shows "0" for a terminal order; this does not)."""
        return exact_difference(self.quantity, self.filled_quantity)


@dataclass(frozen=True)
class Fill:
    """A fill of `quantity` lots; PARTIALLY_FILLED or FILLED depending on the order."""

    quantity: Decimal

    def __post_init__(self) -> None:
        if not self.quantity > 0:
            raise ValueError(f"a fill's quantity is positive, not {self.quantity}")


class TransitionRefusedError(DomainError):
    """The order's status does not allow the event (FAILED_PRECONDITION, INVALID_ORDER_STATE)."""

    def __init__(self, status: OrderStatus, event: OrderEvent, detail: str = "") -> None:
        message = f"an order in status {status} does not allow {event}"
        super().__init__(
            ErrorReason.ERROR_REASON_INVALID_ORDER_STATE,
            f"{message}: {detail}" if detail else message,
            metadata={"status": status.value, "event": event.value},
        )
        self.order_status = status
        self.event = event


def resolve(order: OrderState, event: OrderEvent | Fill) -> OrderEvent:
    """The event that `event` is for `order`: a fill of the whole remaining quantity (or more,
    which `apply` refuses) is FILLED, a smaller one PARTIALLY_FILLED. That is the event the
    change publishes."""
    if isinstance(event, Fill):
        if event.quantity >= order.remaining_quantity:
            return OrderEvent.FILLED
        return OrderEvent.PARTIALLY_FILLED
    if event in (OrderEvent.FILLED, OrderEvent.PARTIALLY_FILLED):
        raise TypeError("a fill is applied as Fill(quantity), so its quantity decides its event")
    return event


def apply(order: OrderState, event: OrderEvent | Fill) -> OrderStatus:
    """The status `order` moves to on `event`, or TransitionRefusedError.

    For a fill, the caller adds the fill's quantity to filled_quantity; the status returned is
    already that of the order after the fill.
    """
    kind = resolve(order, event)
    target = TRANSITIONS.get((order.status, kind))
    if target is None:
        raise TransitionRefusedError(order.status, kind)
    if isinstance(event, Fill) and event.quantity > order.remaining_quantity:
        raise TransitionRefusedError(
            order.status,
            kind,
            f"a fill of {event.quantity} exceeds the remaining {order.remaining_quantity}",
        )
    if isinstance(target, Resume):
        return OrderStatus.PARTIALLY_FILLED if order.filled_quantity > 0 else OrderStatus.WORKING
    return target

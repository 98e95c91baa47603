"""The cancel of an open order, by its client (OrderService.CancelOrder) or by an operator
(OrderAdminService.CancelOrderAsOperator), in the caller's account change.

Orders held by the platform are cancelled at once; an STP order whose hedge order is at a
liquidity provider is only asked to cancel (PENDING_CANCEL): the hedge's outcome decides, when
the STP desk allocates it (ADR 0007).
"""

from __future__ import annotations

from services.oms.domain.state import PLACING_STATUSES
from services.oms.domain.state import TERMINAL_STATUSES
from services.oms.domain.state import OrderEvent
from services.oms.domain.state import OrderStatus
from services.oms.model import OrderRow
from services.oms.store import hedges as hedge_store
from services.oms.store.changes import AccountChange
from services.oms.store.changes import order_of
from services.platform.errors import DomainError
from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = ["cancel_order"]

_R = ErrorReason


async def cancel_order(
    change: AccountChange, order_id: str, reason: str, *, status_message: str = ""
) -> OrderRow:
    """Cancels an open order of `change`'s account (written when the change's block ends): at
    once (CANCELLED) when the platform holds it, PENDING_CANCEL while its hedge order is at a
    liquidity provider; an order already CANCELLED or PENDING_CANCEL is returned unchanged
    (CancelOrder is idempotent)."""
    order = await order_of(change.session, change.account.account_id, order_id, lock=True)
    if order.status in (OrderStatus.CANCELLED, OrderStatus.PENDING_CANCEL):
        return order
    _require_cancellable(order)
    changes = {"status_message": status_message[:500]} if status_message else None
    event = (
        OrderEvent.CANCEL_REQUESTED
        if await hedge_store.in_flight(change.session, order.id)
        else OrderEvent.CANCELLED
    )
    return await change.apply(order, event, reason, changes=changes)


def _require_cancellable(order: OrderRow) -> None:
    if order.status in PLACING_STATUSES:
        raise DomainError(
            _R.ERROR_REASON_INVALID_ORDER_STATE,
            f"order {order.id} is still being placed; retry in a moment",
            metadata={"order_id": order.id, "status": order.status.value},
        )
    if order.status in TERMINAL_STATUSES:
        raise DomainError(
            _R.ERROR_REASON_INVALID_ORDER_STATE,
            f"order {order.id} is {order.status.value.lower()} and cannot be cancelled",
            metadata={"order_id": order.id, "status": order.status.value},
        )

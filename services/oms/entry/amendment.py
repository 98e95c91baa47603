"""A client's amend of a working order (OrderService.AmendOrder): what the request changes, and
the checks it must pass.

Only a working limit, stop or stop-limit order is amended (a market order never is); an STP
limit order whose hedge order is at a liquidity provider cannot be amended until its hedge
order is back: INVALID_ORDER_STATE.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from services.oms.domain.state import WORKING_STATUSES
from services.oms.domain.validation import check_price
from services.oms.domain.validation import check_quantity
from services.oms.domain.validation import check_stops
from services.oms.model import OrderRow
from services.oms.model import OrderType
from services.oms.store.changes import concurrent_modification
from services.platform.errors import DomainError
from services.platform.errors import field_error
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.oms.v1 import order_service_pb2

__all__ = ["amended_order", "check_amend_rules", "check_version"]

_R = ErrorReason


def check_version(order: OrderRow, request: order_service_pb2.AmendOrderRequest) -> None:
    if request.HasField("expected_version") and request.expected_version != order.version:
        raise concurrent_modification("order", order.id)


def _invalid_fields(message: str, field: str, problem: str) -> DomainError:
    return field_error(_R.ERROR_REASON_INVALID_ORDER_FIELDS, field, problem, message)


def amended_order(
    order: OrderRow, request: order_service_pb2.AmendOrderRequest
) -> tuple[OrderRow, list[str]]:
    """The order with the request's values, and the names of the fields that change; refuses
    an amend the order's state or type does not allow."""
    if order.status not in WORKING_STATUSES:
        raise DomainError(
            _R.ERROR_REASON_INVALID_ORDER_STATE,
            f"order {order.id} is {order.status.value.lower()}: only a working order is amended",
            metadata={"order_id": order.id, "status": order.status.value},
        )
    if order.type is OrderType.MARKET:
        raise DomainError(
            _R.ERROR_REASON_INVALID_ORDER_STATE,
            "a market order cannot be amended",
            metadata={"order_id": order.id},
        )
    values: dict[str, Any] = {}
    if request.HasField("price"):
        if order.type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            raise _invalid_fields("a stop order has no price", "price", "not for a stop order")
        values["price"] = Decimal(request.price)
    if request.HasField("stop_price"):
        if order.type not in (OrderType.STOP, OrderType.STOP_LIMIT):
            raise _invalid_fields(
                "a limit order has no stop_price", "stop_price", "not for a limit order"
            )
        if order.type is OrderType.STOP_LIMIT and order.trigger_time is not None:
            raise DomainError(
                _R.ERROR_REASON_INVALID_ORDER_STATE,
                "the stop-limit order already triggered: its stop_price cannot change",
                metadata={"order_id": order.id},
            )
        values["stop_price"] = Decimal(request.stop_price)
    if request.HasField("quantity"):
        quantity = Decimal(request.quantity)
        if quantity <= order.filled_quantity:
            raise _invalid_fields(
                f"quantity {quantity} is not above the filled {order.filled_quantity}",
                "quantity",
                "must be above filled_quantity",
            )
        values["quantity"] = quantity
    if request.HasField("stop_loss"):
        values["stop_loss"] = Decimal(request.stop_loss)
    elif request.clear_stop_loss:
        values["stop_loss"] = None
    if request.HasField("take_profit"):
        values["take_profit"] = Decimal(request.take_profit)
    elif request.clear_take_profit:
        values["take_profit"] = None
    changed = [name for name, value in values.items() if getattr(order, name) != value]
    amended = replace(order, **{name: values[name] for name in changed})
    return amended, changed


def check_amend_rules(
    amended: OrderRow, request: order_service_pb2.AmendOrderRequest, rules: Any
) -> None:
    if request.HasField("quantity"):
        check_quantity(amended.quantity, rules)
    for name in ("price", "stop_price", "stop_loss", "take_profit"):
        if request.HasField(name):
            check_price(Decimal(getattr(request, name)), rules, name)
    reference = amended.price or amended.stop_price
    if reference is not None and (amended.stop_loss or amended.take_profit):
        check_stops(amended.side, reference, amended.stop_loss, amended.take_profit)

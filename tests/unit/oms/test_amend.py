"""AmendOrder's decisions before anything is written: what changes, what is refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from datetime import datetime
from decimal import Decimal

import pytest

from services.oms.domain.state import OrderStatus
from services.oms.entry.amendment import amended_order
from services.oms.model import OrderRow
from services.oms.model import OrderType
from services.platform.errors import DomainError
from tests.unit.oms import builders
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.oms.v1 import order_service_pb2

D = Decimal
T = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ID = "0c9d3c2e-0b0b-4a5e-9d55-0f3b2f3f4a12"

LIMIT = builders.order(
    id=ID,
    account_id=ID,
    quantity=D("1"),
    created_at=T,
    updated_at=T,
    price=D("1.09"),
    stop_loss=D("1.05"),
)


def amend(**fields: object) -> order_service_pb2.AmendOrderRequest:
    return order_service_pb2.AmendOrderRequest(account_id=ID, order_id=ID, **fields)  # type: ignore[arg-type]


def refused(order: OrderRow, request: order_service_pb2.AmendOrderRequest) -> int:
    with pytest.raises(DomainError) as error:
        amended_order(order, request)
    return error.value.reason


def test_only_the_fields_that_change_are_reported() -> None:
    result, changed = amended_order(LIMIT, amend(price="1.08", quantity="1.0", stop_loss="1.05"))
    assert changed == ["price"]
    assert result.price == D("1.08")
    assert result.quantity == D("1")


def test_an_amend_to_the_same_values_changes_nothing() -> None:
    result, changed = amended_order(LIMIT, amend(price="1.090"))
    assert changed == []
    assert result == LIMIT


def test_clearing_a_stop_loss() -> None:
    result, changed = amended_order(LIMIT, amend(clear_stop_loss=True, take_profit="1.2"))
    assert set(changed) == {"stop_loss", "take_profit"}
    assert result.stop_loss is None
    assert result.take_profit == D("1.2")


@pytest.mark.parametrize(
    "status",
    [OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.PENDING_CANCEL, OrderStatus.REJECTED],
)
def test_only_a_working_order_is_amended(status: OrderStatus) -> None:
    assert refused(replace(LIMIT, status=status), amend(price="1.08")) == (
        ErrorReason.ERROR_REASON_INVALID_ORDER_STATE
    )


def test_fields_that_do_not_apply_to_the_type_are_refused() -> None:
    assert refused(LIMIT, amend(stop_price="1.1")) == ErrorReason.ERROR_REASON_INVALID_ORDER_FIELDS
    stop = replace(LIMIT, type=OrderType.STOP, price=None, stop_price=D("1.2"))
    assert refused(stop, amend(price="1.1")) == ErrorReason.ERROR_REASON_INVALID_ORDER_FIELDS


def test_a_triggered_stop_limits_stop_price_is_fixed() -> None:
    triggered = replace(LIMIT, type=OrderType.STOP_LIMIT, stop_price=D("1.1"), trigger_time=T)
    assert (
        refused(triggered, amend(stop_price="1.2")) == ErrorReason.ERROR_REASON_INVALID_ORDER_STATE
    )
    _, changed = amended_order(triggered, amend(price="1.1"))
    assert changed == ["price"]


def test_the_quantity_must_stay_above_what_is_filled() -> None:
    partly = replace(LIMIT, status=OrderStatus.PARTIALLY_FILLED, filled_quantity=D("0.4"))
    assert refused(partly, amend(quantity="0.4")) == ErrorReason.ERROR_REASON_INVALID_ORDER_FIELDS
    result, _ = amended_order(partly, amend(quantity="0.5"))
    assert result.quantity == D("0.5")


def test_a_market_order_is_never_amended() -> None:
    market = replace(LIMIT, type=OrderType.MARKET, price=None)
    assert refused(market, amend(quantity="2")) == ErrorReason.ERROR_REASON_INVALID_ORDER_STATE

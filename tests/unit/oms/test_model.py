"""Rows of the oms schema as the contract's messages: exact decimal strings, enums by name."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from decimal import Decimal

import pytest

from services.oms.api.formats import FORMATS
from services.oms.api.formats import Scale
from services.oms.api.formats import with_places
from services.oms.domain.positions import Side
from services.oms.domain.state import OrderStatus
from services.oms.model import ExecutionMode
from services.oms.model import OrderOrigin
from services.oms.model import OrderRow
from services.oms.model import PositionRow
from services.oms.model import TradeRow
from services.oms.model import TradingTerms
from tests.unit.oms import builders
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.oms.v1 import oms_pb2

D = Decimal
T = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ID = "0c9d3c2e-0b0b-4a5e-9d55-0f3b2f3f4a12"
ACCOUNT = "7b1c1a4e-9a0f-4c57-8f7e-7f6d3d0e2b11"


def order(**changes: object) -> OrderRow:
    """A partly filled order as read back from its row (12 decimal places)."""
    values: dict[str, object] = {
        "id": ID,
        "account_id": ACCOUNT,
        "status": OrderStatus.PARTIALLY_FILLED,
        "quantity": D("1.000000000000"),
        "created_at": T,
        "updated_at": T,
        "version": 4,
        "filled_quantity": D("0.400000000000"),
        "price": D("1.100000000000"),
        "commission": D("1.4"),
        "execution_mode": ExecutionMode.MARKET,
    }
    return builders.order(**{**values, **changes})


def test_an_open_order_as_the_contract_shows_it() -> None:
    message = order().to_proto("USD")
    assert message.status == trading_pb2.ORDER_STATUS_PARTIALLY_FILLED
    assert message.type == trading_pb2.ORDER_TYPE_LIMIT
    assert message.side == types_pb2.SIDE_BUY
    assert (message.quantity, message.filled_quantity, message.remaining_quantity) == (
        "1",
        "0.4",
        "0.6",
    )
    assert message.price == "1.1"
    assert message.stop_price == ""
    assert message.commission == "1.40"
    assert message.execution_mode == types_pb2.EXECUTION_MODE_MARKET
    assert message.status_reason == ErrorReason.ERROR_REASON_UNSPECIFIED
    assert message.version == 4
    assert message.create_time.ToDatetime(UTC) == T
    assert not message.HasField("trigger_time")


def test_a_terminal_order_has_nothing_remaining() -> None:
    cancelled = order(status=OrderStatus.CANCELLED, status_reason="NO_LIQUIDITY")
    message = cancelled.to_proto("USD")
    assert message.remaining_quantity == "0"
    assert message.status_reason == ErrorReason.ERROR_REASON_NO_LIQUIDITY


def test_an_order_before_acceptance_has_no_execution_mode() -> None:
    assert order(execution_mode=None).to_proto("USD").execution_mode == (
        types_pb2.EXECUTION_MODE_UNSPECIFIED
    )


def test_a_closed_position_holds_no_margin() -> None:
    position = PositionRow(
        id=ID,
        account_id=ACCOUNT,
        symbol="EURUSD",
        netting=True,
        side=Side.SELL,
        quantity=D("0"),
        open_price=D("1.1"),
        open_order_id=ID,
        open_time=T,
        update_time=T,
        version=3,
        realized_pnl=D("-12.3"),
        used_margin=D("11"),
        close_time=T,
    )
    message = position.to_proto("USD")
    assert message.status == oms_pb2.POSITION_STATUS_CLOSED
    assert message.used_margin == "0.00"
    assert message.realized_pnl == "-12.30"
    assert message.quantity == "0"
    assert position.status == "CLOSED"


def test_a_trade_as_the_contract_shows_it() -> None:
    trade = TradeRow(
        id=ID,
        order_id=ID,
        client_order_id="c-1",
        account_id=ACCOUNT,
        symbol="EURUSD",
        side=Side.SELL,
        quantity=D("0.5"),
        price=D("1.10000"),
        commission=D("1.75"),
        realized_pnl=D("25"),
        currency="USD",
        position_id=ID,
        position_effect="REDUCE",
        origin=OrderOrigin.STOP_OUT,
        fill_time=T,
    )
    message = trade.to_proto()
    assert message.position_effect == trading_pb2.POSITION_EFFECT_REDUCE
    assert message.origin == trading_pb2.ORDER_ORIGIN_STOP_OUT
    assert (message.price, message.commission, message.realized_pnl) == ("1.1", "1.75", "25.00")
    assert not message.hedge_order_id


def test_instrument_settings_override_the_groups_terms() -> None:
    row = {
        "g_group_id": ACCOUNT,
        "g_execution_mode": "MARKET",
        "g_commission_per_lot": D("3"),
        "g_max_deviation_points": 20,
        "g_leverage": 100,
        "gi_enabled": True,
        "gi_execution_mode": "INSTANT",
        "gi_commission_per_lot": None,
        "gi_max_deviation_points": 5,
        "gi_margin_rate": D("0.05"),
    }
    terms = TradingTerms.from_row(row)
    assert terms.execution_mode is ExecutionMode.INSTANT
    assert terms.commission_per_lot == D("3")
    assert terms.max_deviation_points == 5
    assert terms.margin_rate == D("0.05")
    missing = TradingTerms.from_row({**row, "gi_enabled": None, "gi_execution_mode": None})
    assert not missing.enabled
    assert missing.execution_mode is ExecutionMode.MARKET


def test_quantities_and_prices_are_written_at_the_instruments_scale() -> None:
    FORMATS.put("FMTTEST", Scale.of(5, D("0.01")))
    row = order(
        symbol="FMTTEST",
        quantity=D("0.100000000000"),
        filled_quantity=D("0"),
        status=OrderStatus.WORKING,
        price=D("1.100100000000"),
        average_fill_price=D("1.100125"),
    )
    message = row.to_proto("USD")
    assert (message.quantity, message.filled_quantity, message.remaining_quantity) == (
        "0.10",
        "0",
        "0.10",
    )
    assert message.price == "1.10010"
    assert message.average_fill_price == "1.100125"  # more decimals than digits: all kept


@pytest.mark.parametrize(
    ("lot_step", "places"), [(D("0.01"), 2), (D("0.10"), 1), (D("1"), 0), (D("1E+1"), 0)]
)
def test_a_lot_steps_decimals(lot_step: Decimal, places: int) -> None:
    assert Scale.of(2, lot_step).quantity_places == places


def test_with_places_never_rounds() -> None:
    assert with_places(D("1.123456"), 2) == "1.123456"
    assert with_places(D("100"), 2) == "100.00"
    assert with_places(D("0E-12"), 2) == "0"

"""Rows of the other services' tables as reporting's wire records (reporting.proto).

The store hands decimals over as text: without trailing zeros (PostgreSQL's `trim_scale`, as the
CSV exports write them and as `plain_decimal` does), so a record and its CSV row are equal text
for text; ledger amounts with the currency's decimals. Statement totals are money, rounded to
the account currency by the statement's arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, Final

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.engine import Row

from tradingmesh.common.v1 import errors_pb2, ledger_pb2, trading_pb2, types_pb2
from tradingmesh.exact import plain_decimal
from tradingmesh.reporting.v1 import reporting_pb2

__all__ = ["ledger_line", "order_record", "timestamp", "trade_record"]


def timestamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def from_us(us: int) -> Timestamp:
    """A Timestamp from microseconds since the epoch (the store's `*_us` columns)."""
    return Timestamp(seconds=us // 1_000_000, nanos=us % 1_000_000 * 1000)


_SIDES: Final = {"BUY": types_pb2.SIDE_BUY, "SELL": types_pb2.SIDE_SELL}


def side(name: str) -> types_pb2.Side.ValueType:
    return _SIDES[name]


@cache
def _values(enum: Any, prefix: str) -> dict[str, int]:
    """An enum's values by their name without the prefix ("FILLED" -> ORDER_STATUS_FILLED)."""
    return {name.removeprefix(f"{prefix}_"): value for name, value in enum.items()}


def enum_value(enum: Any, prefix: str, name: str | None) -> Any:
    """The value named `name` (a database spelling, e.g. "FILLED"), UNSPECIFIED if unknown."""
    return _values(enum, prefix).get(name or "UNSPECIFIED", 0)


def trade_record(
    row: Row[Any], swaps: Mapping[str, Decimal] | None = None
) -> reporting_pb2.TradeRecord:
    """A fill; `swaps` (position id -> swap booked before the fill's end of period) puts the
    position's swap on the fill that closed it (CLOSE or REVERSE)."""
    swap = Decimal(0)
    if swaps is not None and row.position_effect in ("CLOSE", "REVERSE"):
        swap = swaps.get(row.position_id, Decimal(0))
    return reporting_pb2.TradeRecord(
        trade_id=row.trade_id,
        order_id=row.order_id,
        client_order_id=row.client_order_id,
        account_id=row.account_id,
        symbol=row.symbol,
        side=side(row.side),
        quantity=row.quantity,
        price=row.price,
        commission=row.commission,
        realized_pnl=row.realized_pnl,
        position_id=row.position_id,
        position_effect=enum_value(
            trading_pb2.PositionEffect, "POSITION_EFFECT", row.position_effect
        ),
        origin=enum_value(trading_pb2.OrderOrigin, "ORDER_ORIGIN", row.origin),
        fill_time=from_us(row.fill_us),
        swap=plain_decimal(swap),
    )


def order_record(row: Row[Any]) -> reporting_pb2.OrderRecord:
    return reporting_pb2.OrderRecord(
        order_id=row.order_id,
        client_order_id=row.client_order_id,
        account_id=row.account_id,
        symbol=row.symbol,
        side=side(row.side),
        type=enum_value(trading_pb2.OrderType, "ORDER_TYPE", row.type),
        time_in_force=enum_value(trading_pb2.TimeInForce, "TIME_IN_FORCE", row.time_in_force),
        status=enum_value(trading_pb2.OrderStatus, "ORDER_STATUS", row.status),
        status_reason=enum_value(errors_pb2.ErrorReason, "ERROR_REASON", row.status_reason),
        status_message=row.status_message,
        quantity=row.quantity,
        filled_quantity=row.filled_quantity,
        price=row.price or "",
        stop_price=row.stop_price or "",
        average_fill_price=row.average_fill_price or "",
        stop_loss=row.stop_loss or "",
        take_profit=row.take_profit or "",
        position_id=row.position_id or "",
        execution_mode=enum_value(types_pb2.ExecutionMode, "EXECUTION_MODE", row.execution_mode),
        commission=row.commission,
        origin=enum_value(trading_pb2.OrderOrigin, "ORDER_ORIGIN", row.origin),
        create_time=from_us(row.create_us),
        update_time=from_us(row.update_us),
    )


def ledger_line(row: Row[Any]) -> reporting_pb2.StatementLedgerLine:
    return reporting_pb2.StatementLedgerLine(
        ledger_entry_id=row.id,
        sequence=int(row.sequence),
        reason=enum_value(ledger_pb2.LedgerEntryReason, "LEDGER_ENTRY_REASON", row.reason),
        amount=row.amount,
        balance_after=row.balance_after,
        description=row.description,
        order_id=row.order_id or "",
        trade_id=row.trade_id or "",
        position_id=row.position_id or "",
        create_time=from_us(row.created_us),
    )

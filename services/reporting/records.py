"""Rows of the other services' tables as reporting's wire records (reporting.proto).

Decimals are written exactly and without trailing zeros (`csvrows.plain`), as the CSV exports
write them, so a record and its CSV row are equal text for text; statement totals are money,
rounded to the account currency by the statement's arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.engine import Row

from services.reporting.domain.csvrows import plain
from tradingmesh.common.v1 import errors_pb2, ledger_pb2, trading_pb2, types_pb2
from tradingmesh.reporting.v1 import reporting_pb2

__all__ = ["ledger_line", "order_record", "timestamp", "trade_record"]


def timestamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def _optional(value: Any) -> str:
    return "" if value is None else plain(Decimal(value))


def side(name: str) -> types_pb2.Side.ValueType:
    return types_pb2.Side.Value(f"SIDE_{name}")


def _enum_or_unspecified(enum: Any, prefix: str, name: str | None) -> Any:
    try:
        return enum.Value(f"{prefix}_{name}") if name else enum.Value(f"{prefix}_UNSPECIFIED")
    except ValueError:
        return enum.Value(f"{prefix}_UNSPECIFIED")


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
        quantity=plain(Decimal(row.quantity)),
        price=plain(Decimal(row.price)),
        commission=plain(Decimal(row.commission)),
        realized_pnl=plain(Decimal(row.realized_pnl)),
        position_id=row.position_id,
        position_effect=_enum_or_unspecified(
            trading_pb2.PositionEffect, "POSITION_EFFECT", row.position_effect
        ),
        origin=_enum_or_unspecified(trading_pb2.OrderOrigin, "ORDER_ORIGIN", row.origin),
        fill_time=timestamp(row.fill_time),
        swap=plain(swap),
    )


def order_record(row: Row[Any]) -> reporting_pb2.OrderRecord:
    return reporting_pb2.OrderRecord(
        order_id=row.order_id,
        client_order_id=row.client_order_id,
        account_id=row.account_id,
        symbol=row.symbol,
        side=side(row.side),
        type=_enum_or_unspecified(trading_pb2.OrderType, "ORDER_TYPE", row.type),
        time_in_force=_enum_or_unspecified(
            trading_pb2.TimeInForce, "TIME_IN_FORCE", row.time_in_force
        ),
        status=_enum_or_unspecified(trading_pb2.OrderStatus, "ORDER_STATUS", row.status),
        status_reason=_enum_or_unspecified(
            errors_pb2.ErrorReason, "ERROR_REASON", row.status_reason
        ),
        status_message=row.status_message,
        quantity=plain(Decimal(row.quantity)),
        filled_quantity=plain(Decimal(row.filled_quantity)),
        price=_optional(row.price),
        stop_price=_optional(row.stop_price),
        average_fill_price=_optional(row.average_fill_price),
        stop_loss=_optional(row.stop_loss),
        take_profit=_optional(row.take_profit),
        position_id=row.position_id or "",
        execution_mode=_enum_or_unspecified(
            types_pb2.ExecutionMode, "EXECUTION_MODE", row.execution_mode
        ),
        commission=plain(Decimal(row.commission)),
        origin=_enum_or_unspecified(trading_pb2.OrderOrigin, "ORDER_ORIGIN", row.origin),
        create_time=timestamp(row.created_at),
        update_time=timestamp(row.updated_at),
    )


def ledger_line(row: Row[Any]) -> reporting_pb2.StatementLedgerLine:
    return reporting_pb2.StatementLedgerLine(
        ledger_entry_id=row.id,
        sequence=int(row.sequence),
        reason=_enum_or_unspecified(
            ledger_pb2.LedgerEntryReason, "LEDGER_ENTRY_REASON", row.reason
        ),
        amount=plain(Decimal(row.amount)),
        balance_after=plain(Decimal(row.balance_after)),
        description=row.description,
        order_id=row.order_id or "",
        trade_id=row.trade_id or "",
        position_id=row.position_id or "",
        create_time=timestamp(row.created_at),
    )

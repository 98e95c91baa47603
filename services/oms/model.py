"""What the OMS holds, as typed values: its reference copies, orders, positions and trades.

Rows of the oms schema (migration 0008) become these frozen dataclasses, and these become the
contract's messages (`to_proto`). Stored enums are the contract's value names without their
prefix ("BUY", "WORKING", "INSUFFICIENT_MARGIN"); amounts are exact `Decimal`s, written on the
wire as plain decimal strings (money in the account currency's minor unit, "12.50").
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from typing import ClassVar
from typing import Final

from google.protobuf.timestamp_pb2 import Timestamp

from services.oms.api.formats import FORMATS
from services.oms.columns import from_columns
from services.oms.columns import to_columns
from services.oms.domain.positions import PositionMode
from services.oms.domain.positions import Side
from services.oms.domain.state import TERMINAL_STATUSES
from services.oms.domain.state import OrderState
from services.oms.domain.state import OrderStatus
from services.oms.domain.validation import InstrumentRules
from services.platform import schedule
from services.platform.copies import InstrumentTerms
from services.platform.enums import ProtoEnum
from services.platform.enums import enum_name
from services.platform.schedule import Session
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.trading.money import money_text

__all__ = [
    "Account",
    "AccountStatus",
    "ExecutionMode",
    "Instrument",
    "OrderOrigin",
    "OrderRow",
    "OrderType",
    "PositionRow",
    "TimeInForce",
    "TradeRow",
    "TradingTerms",
    "reason_name",
    "reason_value",
]

_ZERO: Final = Decimal(0)


# -- enums stored by name -------------------------------------------------------------------------


class OrderType(ProtoEnum, proto=trading_pb2.OrderType, prefix="ORDER_TYPE_"):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(ProtoEnum, proto=trading_pb2.TimeInForce, prefix="TIME_IN_FORCE_"):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    DAY = "DAY"

    @classmethod
    def default_for(cls, order_type: OrderType) -> TimeInForce:
        """The contract's default: IOC for a market order, GTC for the others."""
        return cls.IOC if order_type is OrderType.MARKET else cls.GTC


class OrderOrigin(ProtoEnum, proto=trading_pb2.OrderOrigin, prefix="ORDER_ORIGIN_"):
    CLIENT = "CLIENT"
    OPERATOR = "OPERATOR"
    STOP_LOSS = "STOP_LOSS"
    TAKE_PROFIT = "TAKE_PROFIT"
    STOP_OUT = "STOP_OUT"


class ExecutionMode(ProtoEnum, proto=types_pb2.ExecutionMode, prefix="EXECUTION_MODE_"):
    INSTANT = "INSTANT"
    MARKET = "MARKET"
    STP = "STP"


class AccountStatus(enum.StrEnum):
    """account/v1 TradingAccountStatus, by name."""

    ACTIVE = "ACTIVE"
    CLOSE_ONLY = "CLOSE_ONLY"
    DISABLED = "DISABLED"
    CLOSED = "CLOSED"


def reason_name(reason: ErrorReason.ValueType) -> str:
    """The stored form of an ErrorReason: "INSUFFICIENT_MARGIN"."""
    return enum_name(ErrorReason, reason)


def reason_value(name: str) -> ErrorReason.ValueType:
    return ErrorReason.Value(f"ERROR_REASON_{name}")


# -- wire forms of numbers and times ----------------------------------------------------------


def _timestamp(target: Timestamp, value: datetime | None) -> None:
    if value is not None:
        target.FromDatetime(value)


def _optional(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def _json_ready(columns: Mapping[str, Any], leave_out: str = "") -> dict[str, Any]:
    """A row's columns as the audit log keeps them: decimals as text, times in ISO 8601."""
    return {
        key: (
            str(value)
            if isinstance(value, Decimal)
            else value.isoformat()
            if isinstance(value, datetime)
            else value
        )
        for key, value in columns.items()
        if key != leave_out
    }


# -- reference copies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """The OMS's copy of a trading account."""

    account_id: str
    user_id: str
    group_id: str
    currency: str
    status: AccountStatus
    position_mode: PositionMode

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Account:
        return from_columns(cls, row, currency=str(row["currency"]).strip())


@dataclass(frozen=True)
class Instrument(InstrumentTerms):
    """The OMS's copy of an instrument (`feeds/reference.py` stores `copies.InstrumentCopy`):
    its terms and sessions, what order entry, fills and expiry need."""

    sessions: tuple[Session, ...] = ()

    COLUMNS: ClassVar[str] = (
        "symbol, base_currency, quote_currency, digits, tick_size, contract_size, min_lot,"
        " max_lot, lot_step, margin_rate, sessions"
    )

    @property
    def point(self) -> Decimal:
        """One point: 10^-digits (max_deviation_points counts these)."""
        return Decimal(1).scaleb(-self.digits)

    @property
    def rules(self) -> InstrumentRules:
        return InstrumentRules(
            symbol=self.symbol,
            digits=self.digits,
            tick_size=self.tick_size,
            lot_step=self.lot_step,
            min_lot=self.min_lot,
            max_lot=self.max_lot,
        )

    @classmethod
    def from_row(cls, row: Mapping[Any, Any], prefix: str = "") -> Instrument:
        return from_columns(
            cls,
            row,
            prefix,
            base_currency=str(row[f"{prefix}base_currency"]).strip(),
            quote_currency=str(row[f"{prefix}quote_currency"]).strip(),
            sessions=schedule.from_json(row[f"{prefix}sessions"]),
        )


@dataclass(frozen=True)
class TradingTerms:
    """One group's conditions for one instrument, the instrument's settings over the group's
    defaults (GroupInstrumentSettings: an unset field falls back to the group)."""

    group_id: str
    enabled: bool
    execution_mode: ExecutionMode
    commission_per_lot: Decimal
    max_deviation_points: int
    leverage: int
    margin_rate: Decimal | None  # the group's instrument margin_rate; None: leverage rules

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> TradingTerms:
        """From a row joining oms.groups (g_*) and oms.group_instruments (gi_*, NULL when the
        group has no settings for the instrument)."""
        enabled = bool(row["gi_enabled"]) if row["gi_enabled"] is not None else False
        mode = row["gi_execution_mode"] or row["g_execution_mode"]
        commission = row["gi_commission_per_lot"]
        deviation = row["gi_max_deviation_points"]
        return cls(
            group_id=str(row["g_group_id"]),
            enabled=enabled,
            execution_mode=ExecutionMode(mode),
            commission_per_lot=Decimal(
                commission if commission is not None else row["g_commission_per_lot"]
            ),
            max_deviation_points=int(
                deviation if deviation is not None else row["g_max_deviation_points"]
            ),
            leverage=int(row["g_leverage"]),
            margin_rate=_optional(row["gi_margin_rate"]),
        )


# -- orders ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderRow:
    """An order as stored in oms.orders."""

    id: str
    account_id: str
    client_order_id: str
    request_fingerprint: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    status: OrderStatus
    quantity: Decimal
    origin: OrderOrigin
    created_at: datetime
    updated_at: datetime
    version: int
    filled_quantity: Decimal = _ZERO
    price: Decimal | None = None
    stop_price: Decimal | None = None
    requested_price: Decimal | None = None
    average_fill_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    position_id: str | None = None
    status_reason: str = "UNSPECIFIED"
    status_message: str = ""
    requote_price: Decimal | None = None
    execution_mode: ExecutionMode | None = None
    commission: Decimal = _ZERO
    trigger_time: datetime | None = None
    expire_time: datetime | None = None

    COLUMNS: ClassVar[str] = (
        "id, account_id, client_order_id, request_fingerprint, symbol, side, type,"
        " time_in_force, status, quantity, filled_quantity, price, stop_price, requested_price,"
        " average_fill_price, stop_loss, take_profit, position_id, status_reason, status_message,"
        " requote_price, execution_mode, commission, origin, created_at, updated_at,"
        " trigger_time, expire_time, version"
    )

    @property
    def state(self) -> OrderState:
        """What the status machine needs."""
        return OrderState(self.status, self.quantity, self.filled_quantity)

    @property
    def remaining_quantity(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL_STATUSES

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> OrderRow:
        return from_columns(cls, row)

    def params(self) -> dict[str, Any]:
        """The row's values, by column name, for INSERT and UPDATE."""
        return to_columns(self)

    def to_proto(self, currency: str) -> oms_pb2.Order:
        """The contract's Order; `currency` is the account's (commission's minor unit)."""
        order = oms_pb2.Order(
            id=self.id,
            account_id=self.account_id,
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side.to_proto(),
            type=self.type.to_proto(),  # type: ignore[arg-type]
            time_in_force=self.time_in_force.to_proto(),  # type: ignore[arg-type]
            status=self.status.to_proto(),
            quantity=FORMATS.quantity(self.symbol, self.quantity),
            filled_quantity=FORMATS.quantity(self.symbol, self.filled_quantity),
            remaining_quantity=FORMATS.quantity(
                self.symbol, self.remaining_quantity if self.is_open else _ZERO
            ),
            status_reason=reason_value(self.status_reason),
            status_message=self.status_message,
            commission=money_text(self.commission, currency),
            origin=self.origin.to_proto(),  # type: ignore[arg-type]
            version=self.version,
        )
        for name in (
            "price",
            "stop_price",
            "requested_price",
            "average_fill_price",
            "stop_loss",
            "take_profit",
            "requote_price",
        ):
            value = getattr(self, name)
            if value is not None:
                setattr(order, name, FORMATS.price(self.symbol, value))
        if self.position_id is not None:
            order.position_id = self.position_id
        if self.execution_mode is not None:
            order.execution_mode = self.execution_mode.to_proto()  # type: ignore[assignment]
        _timestamp(order.create_time, self.created_at)
        _timestamp(order.update_time, self.updated_at)
        _timestamp(order.trigger_time, self.trigger_time)
        _timestamp(order.expire_time, self.expire_time)
        return order

    def snapshot(self) -> dict[str, Any]:
        """The audit log's before/after form: every column but the fingerprint, JSON-ready."""
        return _json_ready(self.params(), leave_out="request_fingerprint")


# -- positions and trades --------------------------------------------------------------------------


@dataclass(frozen=True)
class PositionRow:
    """A position as stored in oms.positions."""

    id: str
    account_id: str
    symbol: str
    netting: bool
    side: Side
    quantity: Decimal
    open_price: Decimal
    open_order_id: str
    open_time: datetime
    update_time: datetime
    version: int
    realized_pnl: Decimal = _ZERO
    commission: Decimal = _ZERO
    swap: Decimal = _ZERO
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    used_margin: Decimal = _ZERO
    close_time: datetime | None = None

    COLUMNS: ClassVar[str] = (
        "id, account_id, symbol, netting, side, status, quantity, open_price, realized_pnl,"
        " commission, swap, stop_loss, take_profit, used_margin, open_order_id, open_time,"
        " update_time, close_time, version"
    )

    @property
    def is_open(self) -> bool:
        return self.quantity > 0

    @property
    def status(self) -> str:
        return "OPEN" if self.is_open else "CLOSED"

    @classmethod
    def from_row(cls, row: Mapping[Any, Any], prefix: str = "") -> PositionRow:
        return from_columns(cls, row, prefix)

    def params(self) -> dict[str, Any]:
        """The row's values, by column name, for INSERT and UPDATE."""
        return to_columns(self, status=self.status)

    def to_proto(self, currency: str) -> oms_pb2.Position:
        """The contract's Position, without a valuation (see valuation.Valuer)."""
        position = oms_pb2.Position(
            id=self.id,
            account_id=self.account_id,
            symbol=self.symbol,
            side=self.side.to_proto(),
            status=(
                oms_pb2.POSITION_STATUS_OPEN if self.is_open else oms_pb2.POSITION_STATUS_CLOSED
            ),
            quantity=FORMATS.quantity(self.symbol, self.quantity),
            open_price=FORMATS.price(self.symbol, self.open_price),
            unrealized_pnl=money_text(_ZERO, currency),
            realized_pnl=money_text(self.realized_pnl, currency),
            commission=money_text(self.commission, currency),
            swap=money_text(self.swap, currency),
            used_margin=money_text(self.used_margin if self.is_open else _ZERO, currency),
            open_order_id=self.open_order_id,
            version=self.version,
        )
        if self.stop_loss is not None:
            position.stop_loss = FORMATS.price(self.symbol, self.stop_loss)
        if self.take_profit is not None:
            position.take_profit = FORMATS.price(self.symbol, self.take_profit)
        _timestamp(position.open_time, self.open_time)
        _timestamp(position.update_time, self.update_time)
        _timestamp(position.close_time, self.close_time)
        return position

    def snapshot(self) -> dict[str, Any]:
        """The audit log's before/after form: every column, JSON-ready."""
        return _json_ready(self.params())


@dataclass(frozen=True)
class TradeRow:
    """A fill, as stored in oms.trades (immutable)."""

    id: str
    order_id: str
    client_order_id: str
    account_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    commission: Decimal
    realized_pnl: Decimal
    currency: str
    position_id: str
    position_effect: str
    origin: OrderOrigin
    fill_time: datetime
    hedge_order_id: str | None = None

    COLUMNS: ClassVar[str] = (
        "id, order_id, client_order_id, account_id, symbol, side, quantity, price, commission,"
        " realized_pnl, currency, position_id, position_effect, origin, hedge_order_id, fill_time"
    )

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> TradeRow:
        return from_columns(cls, row, currency=str(row["currency"]).strip())

    def params(self) -> dict[str, Any]:
        return to_columns(self)

    def to_proto(self) -> oms_pb2.Trade:
        trade = oms_pb2.Trade(
            id=self.id,
            order_id=self.order_id,
            client_order_id=self.client_order_id,
            account_id=self.account_id,
            symbol=self.symbol,
            side=self.side.to_proto(),
            quantity=FORMATS.quantity(self.symbol, self.quantity),
            price=FORMATS.price(self.symbol, self.price),
            commission=money_text(self.commission, self.currency),
            realized_pnl=money_text(self.realized_pnl, self.currency),
            position_id=self.position_id,
            position_effect=trading_pb2.PositionEffect.Value(
                f"POSITION_EFFECT_{self.position_effect}"
            ),
            origin=self.origin.to_proto(),  # type: ignore[arg-type]
        )
        if self.hedge_order_id is not None:
            trade.hedge_order_id = self.hedge_order_id
        trade.fill_time.FromDatetime(self.fill_time)
        return trade

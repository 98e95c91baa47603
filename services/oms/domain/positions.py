"""Fills applied to positions, in netting and hedging mode, and their P&L (ADR 0007).

Netting: one open position per account and instrument. A fill on its side increases it (new
quantity-weighted average price); on the other side it reduces it, closes it, or closes it and
opens the rest on the other side (REVERSE: same position id, new side, the fill's price).
Hedging: a fill without a position opens its own position; a fill that names a position
(Order.position_id) reduces or closes it and must be on the other side, at most its quantity.

P&L of a closed part: (close - open) x quantity x contract size for a long position, (open -
close) x ... for a short one, in the instrument's quote currency, converted to the account
currency, rounded once to its minor unit, half to even (`money`). A position's realized_pnl is
the sum of its fills' rounded amounts, so it equals what the ledger books. A long position is
valued at the bid (where it would close), a short one at the ask.

The average open price is the exact quantity-weighted average rounded half to even to 12
decimals (`money.PRICE_PLACES`); P&L is computed from that stored price, so a client can
recompute every amount from what it is shown. (The rounding moves a P&L by at most
0.5e-12 x quantity x contract size, far below a cent for any real position.)
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace
from decimal import Decimal
from typing import Final
from typing import cast

from services.platform.enums import PositionMode
from services.platform.enums import ProtoEnum
from services.platform.enums import Side
from services.platform.errors import DomainError
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.trading.margin import position_pnl
from tradingmesh.trading.money import IDENTITY
from tradingmesh.trading.money import Conversion
from tradingmesh.trading.money import average_price
from tradingmesh.trading.money import exact_difference
from tradingmesh.trading.money import exact_sum
from tradingmesh.trading.money import round_money

__all__ = [
    "Execution",
    "FillResult",
    "PnlTerms",
    "Position",
    "PositionEffect",
    "PositionMode",
    "Side",
    "apply_fill",
    "apply_hedging",
    "apply_netting",
    "close_price",
    "realized_pnl",
    "unrealized_pnl",
]

_ZERO: Final = Decimal(0)


class PositionEffect(ProtoEnum, proto=trading_pb2.PositionEffect, prefix="POSITION_EFFECT_"):
    """What a fill did to a position (common/v1 PositionEffect), as Trade.position_effect."""

    OPEN = "OPEN"
    INCREASE = "INCREASE"
    REDUCE = "REDUCE"
    CLOSE = "CLOSE"
    REVERSE = "REVERSE"  # netting only

    def to_proto(self) -> trading_pb2.PositionEffect.ValueType:
        return cast(trading_pb2.PositionEffect.ValueType, super().to_proto())


@dataclass(frozen=True)
class PnlTerms:
    """How a price difference becomes money on one account: the instrument's contract size
    (units per lot), the account currency, and the conversion from the instrument's quote
    currency to it."""

    contract_size: Decimal
    currency: str
    conversion: Conversion = IDENTITY

    def __post_init__(self) -> None:
        if not self.contract_size > 0:
            raise ValueError(f"a contract size is positive, not {self.contract_size}")


@dataclass(frozen=True)
class Position:
    """A position: open while quantity > 0. realized_pnl is in the account currency."""

    id: str
    side: Side
    quantity: Decimal
    open_price: Decimal
    realized_pnl: Decimal = _ZERO

    def __post_init__(self) -> None:
        if self.quantity < 0 or not self.open_price > 0:
            raise ValueError("a position's quantity is not negative and its open price positive")

    @property
    def is_open(self) -> bool:
        return self.quantity > 0


@dataclass(frozen=True)
class Execution:
    """One fill of an order, as it reaches the positions: side, lots, price."""

    side: Side
    quantity: Decimal
    price: Decimal

    def __post_init__(self) -> None:
        if not (self.quantity > 0 and self.price > 0):
            raise ValueError("a fill's quantity and price are positive")


@dataclass(frozen=True)
class FillResult:
    """What a fill did: the effect, the position after it (quantity 0 once closed), the P&L it
    realized (account currency, rounded; 0 for OPEN and INCREASE) and the quantity it closed."""

    effect: PositionEffect
    position: Position
    realized_pnl: Decimal
    closed_quantity: Decimal


def close_price(side: Side, bid: Decimal, ask: Decimal) -> Decimal:
    """Where a position of `side` closes: a long one sells at the bid, a short one buys at the
    ask."""
    return bid if side is Side.BUY else ask


def realized_pnl(
    side: Side, open_price: Decimal, close_at: Decimal, quantity: Decimal, terms: PnlTerms
) -> Decimal:
    """The P&L of closing `quantity` lots of a `side` position opened at `open_price` at
    `close_at`, in the account currency, rounded once (half to even)."""
    in_quote_currency = position_pnl(
        side is Side.BUY, open_price, close_at, quantity, terms.contract_size
    )
    return round_money(terms.conversion.to_account(in_quote_currency), terms.currency)


def unrealized_pnl(position: Position, bid: Decimal, ask: Decimal, terms: PnlTerms) -> Decimal:
    """The P&L of the open quantity if it closed now (long at the bid, short at the ask); 0 for
    a closed position."""
    if not position.is_open:
        return _ZERO
    return realized_pnl(
        position.side,
        position.open_price,
        close_price(position.side, bid, ask),
        position.quantity,
        terms,
    )


def apply_netting(
    position: Position | None, execution: Execution, terms: PnlTerms, *, new_position_id: str
) -> FillResult:
    """`execution` applied to the account's one position in the instrument (None or closed:
    none is open, the fill opens one with `new_position_id`)."""
    if position is None or not position.is_open:
        return _opened(new_position_id, execution)
    if execution.side is position.side:
        return _increased(position, execution)
    closed = min(execution.quantity, position.quantity)
    pnl = realized_pnl(position.side, position.open_price, execution.price, closed, terms)
    realized = exact_sum(position.realized_pnl, pnl)
    rest = exact_difference(position.quantity, execution.quantity)
    if rest > 0:
        after = replace(position, quantity=rest, realized_pnl=realized)
        return FillResult(PositionEffect.REDUCE, after, pnl, closed)
    if rest == 0:
        after = replace(position, quantity=_ZERO, realized_pnl=realized)
        return FillResult(PositionEffect.CLOSE, after, pnl, closed)
    # Closes the position and opens the rest on the other side, under the same id.
    reversed_position = Position(
        id=position.id,
        side=execution.side,
        quantity=rest.copy_negate(),
        open_price=execution.price,
        realized_pnl=realized,
    )
    return FillResult(PositionEffect.REVERSE, reversed_position, pnl, closed)


def apply_hedging(
    position: Position | None, execution: Execution, terms: PnlTerms, *, new_position_id: str
) -> FillResult:
    """`execution` applied in hedging mode: without a position it opens its own (with
    `new_position_id`); with one (the order's position_id) it reduces or closes it."""
    if position is None:
        return _opened(new_position_id, execution)
    if not position.is_open:
        raise DomainError(
            ErrorReason.ERROR_REASON_INVALID_ORDER_STATE,
            f"position {position.id} is closed",
            metadata={"position_id": position.id},
        )
    if execution.side is position.side:
        raise DomainError(
            ErrorReason.ERROR_REASON_INVALID_ORDER_FIELDS,
            f"an order that closes a {position.side} position is a {position.side.opposite}",
            metadata={"position_id": position.id},
            field_violations=[("position_id", "names a position on the order's own side")],
        )
    if execution.quantity > position.quantity:
        raise DomainError(
            ErrorReason.ERROR_REASON_QUANTITY_OUT_OF_RANGE,
            f"{execution.quantity} lots exceed the position's open {position.quantity}",
            metadata={"position_id": position.id, "open_quantity": str(position.quantity)},
            field_violations=[("quantity", "is above the position's open quantity")],
        )
    pnl = realized_pnl(
        position.side, position.open_price, execution.price, execution.quantity, terms
    )
    rest = exact_difference(position.quantity, execution.quantity)
    after = replace(position, quantity=rest, realized_pnl=exact_sum(position.realized_pnl, pnl))
    effect = PositionEffect.REDUCE if rest > 0 else PositionEffect.CLOSE
    return FillResult(effect, after, pnl, execution.quantity)


def apply_fill(
    mode: PositionMode,
    position: Position | None,
    execution: Execution,
    terms: PnlTerms,
    *,
    new_position_id: str,
) -> FillResult:
    """`execution` applied in the account's position mode (see apply_netting, apply_hedging)."""
    if mode is PositionMode.NETTING:
        return apply_netting(position, execution, terms, new_position_id=new_position_id)
    return apply_hedging(position, execution, terms, new_position_id=new_position_id)


def _opened(position_id: str, execution: Execution) -> FillResult:
    position = Position(position_id, execution.side, execution.quantity, execution.price)
    return FillResult(PositionEffect.OPEN, position, _ZERO, _ZERO)


def _increased(position: Position, execution: Execution) -> FillResult:
    after = replace(
        position,
        quantity=exact_sum(position.quantity, execution.quantity),
        open_price=average_price(
            position.quantity, position.open_price, execution.quantity, execution.price
        ),
    )
    return FillResult(PositionEffect.INCREASE, after, _ZERO, _ZERO)

"""Order-entry rules that need the instrument, so the contract's field rules cannot state them.

The contract already refuses, before a handler runs, a price on a market order, a missing limit
or stop price, a time in force the type does not allow, zero or negative quantities and
malformed decimals (PlaceOrderRequest's rules, INVALID_ARGUMENT). What is left needs the
instrument or the position and is checked here, each as ADR 0002 names it:

- quantity a multiple of the lot step (TOO_MANY_DECIMALS) and within min..max lot
  (QUANTITY_OUT_OF_RANGE); a closing quantity at most the position's (QUANTITY_OUT_OF_RANGE);
- a price with at most the instrument's digits, trailing zeros not counting, and a multiple of
  its tick size (TOO_MANY_DECIMALS: the contract has no reason of its own for the tick);
- stop-loss and take-profit on the right side of the reference price, at least the stop
  distance away (INVALID_STOPS). The contract mentions an instrument stop distance that
  Instrument does not carry yet; callers pass 0 until it does (ADR 0007, open points).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from services.oms.domain.positions import Side
from services.platform.errors import DomainError
from services.platform.errors import field_error
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.trading.money import exact_difference
from tradingmesh.trading.money import fits_places
from tradingmesh.trading.money import is_multiple

__all__ = [
    "InstrumentRules",
    "check_close_quantity",
    "check_price",
    "check_quantity",
    "check_stops",
]

_R = ErrorReason


@dataclass(frozen=True)
class InstrumentRules:
    """What order entry needs of an instrument (pricing/v1 Instrument)."""

    symbol: str
    digits: int
    tick_size: Decimal
    lot_step: Decimal
    min_lot: Decimal
    max_lot: Decimal


def check_quantity(quantity: Decimal, rules: InstrumentRules, field: str = "quantity") -> None:
    """A multiple of the lot step, then within the minimum and maximum lot."""
    if not is_multiple(quantity, rules.lot_step):
        problem = f"must be a multiple of the lot step {rules.lot_step}"
        raise field_error(
            _R.ERROR_REASON_TOO_MANY_DECIMALS,
            field,
            problem,
            f"{field} {quantity} {problem} of {rules.symbol}",
            {"symbol": rules.symbol, "lot_step": str(rules.lot_step)},
        )
    if not rules.min_lot <= quantity <= rules.max_lot:
        problem = f"must be within {rules.min_lot}..{rules.max_lot} lots"
        raise field_error(
            _R.ERROR_REASON_QUANTITY_OUT_OF_RANGE,
            field,
            problem,
            f"{field} {quantity} {problem} for {rules.symbol}",
            {"symbol": rules.symbol, "min_lot": str(rules.min_lot), "max_lot": str(rules.max_lot)},
        )


def check_close_quantity(
    quantity: Decimal, open_quantity: Decimal, field: str = "quantity"
) -> None:
    """A closing order closes at most the position's open quantity."""
    if quantity > open_quantity:
        problem = f"must be at most the position's open quantity {open_quantity}"
        raise field_error(
            _R.ERROR_REASON_QUANTITY_OUT_OF_RANGE,
            field,
            problem,
            f"{field} {quantity} {problem}",
            {"open_quantity": str(open_quantity)},
        )


def check_price(price: Decimal, rules: InstrumentRules, field: str) -> None:
    """At most the instrument's digits, and a whole number of ticks."""
    if not fits_places(price, rules.digits):
        problem = f"has more than the {rules.digits} decimals of {rules.symbol}"
    elif not is_multiple(price, rules.tick_size):
        problem = f"must be a multiple of the tick size {rules.tick_size} of {rules.symbol}"
    else:
        return
    raise field_error(
        _R.ERROR_REASON_TOO_MANY_DECIMALS,
        field,
        problem,
        f"{field} {price} {problem}",
        {"symbol": rules.symbol, "max_decimals": str(rules.digits)},
    )


def check_stops(
    side: Side,
    reference_price: Decimal,
    stop_loss: Decimal | None,
    take_profit: Decimal | None,
    min_distance: Decimal = Decimal(0),
) -> None:
    """Stops of a position on `side`: for a long one (BUY) the stop-loss below and the
    take-profit above `reference_price`, for a short one the other way, each at least
    `min_distance` away and never at it. The reference is the order's price (limit, stop, or
    the price the client saw) at entry, the position's closing price (bid for a long, ask for a
    short) when a position's stops change. Every violation is listed."""
    violations: list[tuple[str, str]] = []
    long = side is Side.BUY
    if stop_loss is not None:
        distance = _distance(stop_loss, reference_price, above=not long)
        if distance <= 0 or distance < min_distance:
            where = "below" if long else "above"
            violations.append(
                ("stop_loss", f"must be {where} {reference_price} by at least {min_distance}")
            )
    if take_profit is not None:
        distance = _distance(take_profit, reference_price, above=long)
        if distance <= 0 or distance < min_distance:
            where = "above" if long else "below"
            violations.append(
                ("take_profit", f"must be {where} {reference_price} by at least {min_distance}")
            )
    if violations:
        raise DomainError(
            _R.ERROR_REASON_INVALID_STOPS,
            "; ".join(f"{field} {problem}" for field, problem in violations),
            metadata={"reference_price": str(reference_price), "min_distance": str(min_distance)},
            field_violations=violations,
        )


def _distance(level: Decimal, reference: Decimal, *, above: bool) -> Decimal:
    """How far `level` is on the side it must be on: positive when right, else zero or less."""
    difference = exact_difference(level, reference)
    return difference if above else difference.copy_negate()

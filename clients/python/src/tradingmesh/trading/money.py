"""Money arithmetic of the trading core: exact products, one rounding rule, conversion.

The rule (ADR 0007): every amount that reaches a client, an event or the ledger (realized and
unrealized P&L, commission, margin) is computed exactly in the currency it arises in, converted
to the account currency, and rounded ONCE, at the end, to the account currency's minor unit with
ROUND_HALF_EVEN (banker's rounding: ties go to the even cent, so rounding errors over many fills
do not drift one way). Sums of such amounts (a position's realized P&L, equity, used margin) add
the rounded amounts, so a total always equals the sum of the entries the ledger holds.

Products are computed in a context that raises instead of rounding (`exact_product`), so a
quantity x contract size x price can never lose a digit silently. Only a division (a conversion
through an inversely quoted rate, an average price, a margin level) rounds, and it is computed
with 60 significant digits before the final rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN
from decimal import Context
from decimal import Decimal
from decimal import DivisionByZero
from decimal import Inexact
from decimal import InvalidOperation
from decimal import Overflow
from typing import Final

__all__ = [
    "IDENTITY",
    "PRICE_PLACES",
    "Conversion",
    "average_price",
    "commission",
    "divide",
    "exact_difference",
    "exact_product",
    "exact_sum",
    "fits_places",
    "is_multiple",
    "minor_unit",
    "money_text",
    "round_money",
]

PRICE_PLACES: Final = 12
"""Decimals kept for a computed price (an average open price): the wire's and NUMERIC(30, 12)'s
maximum."""

_PRECISION: Final = 60

# Multiplication of wire decimals (at most 30 digits each) is exact within 60 digits; trapping
# Inexact proves it for every call rather than assuming it.
_EXACT: Final = Context(
    prec=_PRECISION,
    rounding=ROUND_HALF_EVEN,
    traps=[Inexact, InvalidOperation, DivisionByZero, Overflow],
)
_DIVIDE: Final = Context(
    prec=_PRECISION,
    rounding=ROUND_HALF_EVEN,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)

# ISO 4217 minor units that are not 2; every other currency has 2.
_MINOR_UNITS: Final[dict[str, int]] = {
    "JPY": 0,
    "KRW": 0,
    "CLP": 0,
    "ISK": 0,
    "VND": 0,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
}


def minor_unit(currency: str) -> int:
    """How many decimals the currency's amounts have (2 for USD, 0 for JPY)."""
    return _MINOR_UNITS.get(currency, 2)


def exact_product(*factors: Decimal) -> Decimal:
    """The product of `factors`, exactly; raises `decimal.Inexact` rather than round."""
    result = Decimal(1)
    for factor in factors:
        result = _EXACT.multiply(result, factor)
    return result


def exact_sum(*terms: Decimal) -> Decimal:
    """The sum of `terms`, exactly (the default context would round beyond 28 digits)."""
    result = Decimal(0)
    for term in terms:
        result = _EXACT.add(result, term)
    return result


def exact_difference(minuend: Decimal, subtrahend: Decimal) -> Decimal:
    """`minuend - subtrahend`, exactly."""
    return _EXACT.subtract(minuend, subtrahend)


def divide(dividend: Decimal, divisor: Decimal) -> Decimal:
    """`dividend / divisor` to 60 significant digits (exact when the quotient terminates)."""
    return _DIVIDE.divide(dividend, divisor)


def average_price(
    quantity: Decimal, price: Decimal, added_quantity: Decimal, added_price: Decimal
) -> Decimal:
    """The quantity-weighted average of two prices (a position increased, a hedge order filled
    again), rounded half to even to `PRICE_PLACES` decimals, without trailing zeros."""
    total = exact_sum(exact_product(quantity, price), exact_product(added_quantity, added_price))
    average = divide(total, exact_sum(quantity, added_quantity))
    rounded = average.quantize(Decimal(1).scaleb(-PRICE_PLACES), rounding=ROUND_HALF_EVEN)
    # Without trailing zeros ("1.101000000000" -> "1.101"); normalize() alone would write a
    # whole 110 as 1.1E+2.
    if rounded == rounded.to_integral_value():
        return rounded.quantize(Decimal(1))
    return rounded.normalize()


def fits_places(value: Decimal, places: int) -> bool:
    """Whether `value` has at most `places` decimals once trailing zeros are dropped
    ("1.10000" fits 1 place)."""
    return value == value.quantize(Decimal(1).scaleb(-places), context=_DIVIDE)


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """Whether `value` is a whole multiple of `step` (> 0)."""
    quotient = divide(value, step)
    return quotient == quotient.to_integral_value()


def round_money(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded to the currency's minor unit, half to even; never "-0.00"."""
    exponent = Decimal(1).scaleb(-minor_unit(currency))
    rounded = amount.quantize(exponent, rounding=ROUND_HALF_EVEN, context=_DIVIDE)
    return rounded.copy_abs() if rounded.is_zero() else rounded


def money_text(amount: Decimal, currency: str) -> str:
    """`amount` as text with exactly its currency's minor unit: "2170.00", "-3.50", "1200" for
    JPY; "0.00", never "-0.00"."""
    return format(round_money(amount, currency), "f")


@dataclass(frozen=True)
class Conversion:
    """How an amount in an instrument's quote currency becomes an amount in the account currency.

    `rate` is the price of the conversion pair; `inverse` says the pair is quoted the other way:
    a JPY profit on a USD account converts through USDJPY, dividing by it; a GBP profit on a USD
    account through GBPUSD, multiplying. Which price of the pair is used is the caller's choice
    (ADR 0007: the mid of the account group's price at the fill or valuation).
    """

    rate: Decimal
    inverse: bool = False

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"a conversion rate is positive, not {self.rate}")

    def to_account(self, amount: Decimal) -> Decimal:
        """`amount` in the account currency, unrounded: exact, or to 60 significant digits when
        it cannot be (dividing by the rate; multiplying an amount that is itself a 60-digit
        quotient, such as a notional divided by a leverage of 30). The caller rounds it to the
        currency's minor unit, far above the 60th digit."""
        if self.inverse:
            return divide(amount, self.rate)
        return _DIVIDE.multiply(amount, self.rate)


IDENTITY: Final = Conversion(Decimal(1))
"""The conversion of an instrument quoted in the account currency (EURUSD on a USD account)."""


def commission(quantity: Decimal, per_lot: Decimal, currency: str) -> Decimal:
    """The commission of one fill: quantity x commission per lot (already in the account
    currency, the group's), rounded to the minor unit. Charged on every fill, opening and
    closing ("per lot per side", ClientGroup.commission_per_lot)."""
    if quantity <= 0 or per_lot < 0:
        raise ValueError("a fill's quantity is positive and a commission rate not negative")
    return round_money(exact_product(quantity, per_lot), currency)

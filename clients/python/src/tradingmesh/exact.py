"""Exact numbers on the wire, as Python `Decimal`.

tradingmesh never sends a price, quantity or amount as a float. Request and response fields carry
decimal strings ("1.08512", "-12.50"); the quote stream carries fixed-point integers (units and a
scale). These functions convert both ways without rounding: a value that cannot be represented
exactly raises `InexactValueError` instead of being rounded silently.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING
from typing import TypeVar
from typing import overload

if TYPE_CHECKING:
    from google.protobuf.message import Message

__all__ = [
    "MAX_FRACTION_DIGITS",
    "MAX_INTEGER_DIGITS",
    "InexactValueError",
    "InvalidDecimalError",
    "decimal_field",
    "format_decimal",
    "from_units",
    "optional_decimal",
    "parse_decimal",
    "plain_decimal",
    "to_units",
]

MAX_INTEGER_DIGITS = 18
"""At most this many digits before the point (the contracts' `decimal` rules)."""
MAX_FRACTION_DIGITS = 12
"""At most this many digits after the point (the contracts' `decimal` rules)."""

_WIRE_DECIMAL = re.compile(
    rf"-?[0-9]{{1,{MAX_INTEGER_DIGITS}}}(?:\.[0-9]{{1,{MAX_FRACTION_DIGITS}}})?", re.ASCII
)


class InvalidDecimalError(ValueError):
    """The text is not a decimal string as the contracts define it."""


class InexactValueError(ValueError):
    """The value cannot be put on the wire without rounding or overflow."""


def parse_decimal(text: str) -> Decimal:
    """Parses a wire decimal string ("1.25", "-0.5", "100") into an exact `Decimal`.

    The scale is kept: "1.10" becomes Decimal("1.10"). Exponents, signs other than a leading
    minus, spaces, "NaN" and "Infinity" are refused, as the servers refuse them.
    """
    if not isinstance(text, str) or _WIRE_DECIMAL.fullmatch(text) is None:
        raise InvalidDecimalError(
            f"{text!r} is not a decimal string such as '-12.50' (no exponent, at most "
            f"{MAX_INTEGER_DIGITS} integer and {MAX_FRACTION_DIGITS} fraction digits)"
        )
    return Decimal(text)


def optional_decimal(message: Message, field: str) -> Decimal | None:
    """A message's `optional string` decimal field, parsed (`parse_decimal`); None when it is
    unset. A malformed value raises `InvalidDecimalError` naming the field."""
    if not message.HasField(field):
        return None
    return _field(message, field)


_Default = TypeVar("_Default", Decimal, None)
_REQUIRED = object()


@overload
def decimal_field(message: Message, field: str) -> Decimal: ...
@overload
def decimal_field(message: Message, field: str, default: _Default) -> Decimal | _Default: ...
def decimal_field(message: Message, field: str, default: object = _REQUIRED) -> object:
    """A message's plain `string` decimal field, parsed (`parse_decimal`). Empty (proto3's unset
    string) gives `default`; without one, empty is malformed. A malformed value raises
    `InvalidDecimalError` naming the field."""
    if default is not _REQUIRED and not getattr(message, field):
        return default
    return _field(message, field)


def _field(message: Message, field: str) -> Decimal:
    try:
        return parse_decimal(getattr(message, field))
    except InvalidDecimalError as error:
        raise InvalidDecimalError(f"{field}: {error}") from None


def format_decimal(value: Decimal | int) -> str:
    """Formats an exact value as a wire decimal string, keeping its scale.

    Decimal("1.10") gives "1.10", Decimal("1E+2") gives "100", Decimal("-0.00") gives "0.00".
    Raises `InexactValueError` if the value is not finite or needs more digits than the wire
    allows (round it yourself first, with the rounding your business rule demands).
    """
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise TypeError(
            f"expected Decimal or int, got {type(value).__name__} (floats are never exact)"
        )
    number = Decimal(value)
    if not number.is_finite():
        raise InexactValueError(f"{number} is not a finite number")
    if number.is_zero():
        number = abs(number)  # no "-0" on the wire
    text = format(number, "f")
    if _WIRE_DECIMAL.fullmatch(text) is None:
        raise InexactValueError(
            f"{text} needs more than {MAX_INTEGER_DIGITS} integer or "
            f"{MAX_FRACTION_DIGITS} fraction digits"
        )
    return text


def plain_decimal(value: Decimal) -> str:
    """`value` without trailing zeros, never with an exponent or a minus on zero: Decimal("1.50")
    gives "1.5", Decimal("1E+2") "100", Decimal("-0.00") "0".

    The one rule for quantities, prices and levels written as text (messages, FIX fields, stored
    JSON, CSV). Unlike `format_decimal` it keeps every digit it is given (a computed rate may have
    more than the wire allows) and does not keep the scale; raises `InexactValueError` only for a
    value that is not finite.
    """
    if not value.is_finite():
        raise InexactValueError(f"{value} is not a finite number")
    if value.is_zero():
        return "0"
    return format(value.normalize(), "f")


def from_units(units: int, scale: int) -> Decimal:
    """The exact value of a fixed-point integer: units * 10^-scale (the quote stream's prices).

    from_units(108512, 5) == Decimal("1.08512").
    """
    if scale < 0:
        raise ValueError(f"scale must be >= 0, got {scale}")
    sign = 1 if units < 0 else 0
    digits = tuple(int(d) for d in str(abs(units)))
    return Decimal((sign, digits, -scale))


def to_units(value: Decimal, scale: int) -> int:
    """The fixed-point integer for a value at a scale: value * 10^scale, which must be whole.

    to_units(Decimal("1.0851"), 5) == 108510; Decimal("1.085123") at scale 5 raises.
    """
    if scale < 0:
        raise ValueError(f"scale must be >= 0, got {scale}")
    if not value.is_finite():
        raise InexactValueError(f"{value} is not a finite number")
    # Integer arithmetic on the decimal's digits: no context precision, so nothing can round.
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite values have an integer exponent
    magnitude = int("".join(map(str, digits)) or "0")
    shift = exponent + scale
    if shift >= 0:
        magnitude *= pow(10, shift)
    else:
        divisor: int = pow(10, -shift)
        magnitude, remainder = divmod(magnitude, divisor)
        if remainder:
            raise InexactValueError(f"{value} has more than {scale} decimal places")
    return -magnitude if sign else magnitude

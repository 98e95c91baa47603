"""How the OMS writes quantities and prices on the wire: at the instrument's scale.

A client sees an order of "0.10" lots at "1.10010", as it sent it and as pricing quotes it, not
"0.1" at "1.1001": quantities carry at least the decimals of the instrument's lot step, prices at
least its digits. A value with more decimals than that (an average price) keeps all it needs;
nothing is ever rounded here. The exact value is the same either way (PostgreSQL stores
NUMERIC(30, 12), which forgets the spelling).

The scales are reference data: loaded from `oms.instruments` at start and kept current by the
reference consumer when an instrument event arrives (`reference.py`). An instrument the process
does not know yet is written without trailing zeros.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from tradingmesh.exact import plain_decimal

__all__ = ["FORMATS", "Formats", "Scale", "with_places"]


def with_places(value: Decimal, places: int) -> str:
    """`value` with at least `places` decimals, and more only where it has them; zero is "0"
    (as the contract writes an empty quantity)."""
    text_value = plain_decimal(value)
    if places <= 0 or value.is_zero():
        return text_value
    whole, _, fraction = text_value.partition(".")
    return f"{whole}.{fraction.ljust(places, '0')}"


@dataclass(frozen=True)
class Scale:
    """An instrument's wire scale: its digits, and the decimals of its lot step."""

    price_places: int
    quantity_places: int

    @classmethod
    def of(cls, digits: int, lot_step: Decimal) -> Scale:
        exponent = lot_step.normalize().as_tuple().exponent
        places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        return cls(int(digits), places)


class Formats:
    """The scale of every instrument the process knows."""

    def __init__(self) -> None:
        self._scales: dict[str, Scale] = {}

    def put(self, symbol: str, scale: Scale) -> None:
        self._scales[symbol] = scale

    def price(self, symbol: str, value: Decimal) -> str:
        scale = self._scales.get(symbol)
        return with_places(value, scale.price_places) if scale else plain_decimal(value)

    def quantity(self, symbol: str, value: Decimal) -> str:
        scale = self._scales.get(symbol)
        return with_places(value, scale.quantity_places) if scale else plain_decimal(value)

    def load(self, scales: Iterable[tuple[str, int, Decimal]]) -> None:
        """Every instrument's scale from its (symbol, digits, lot step)."""
        for symbol, digits, lot_step in scales:
            self.put(symbol, Scale.of(digits, lot_step))


FORMATS: Final = Formats()
"""The process's scales (reference data, like the copies in PostgreSQL they come from)."""

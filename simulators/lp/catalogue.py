"""What an LP simulator quotes: the instruments, their reference mid prices and spreads.

An LP is outside the platform, so it has its own list rather than reading ours; the symbols are
those the demo broker lists (stack/seed.py). Prices are in points (the smallest price step,
10^-digits), so every price the simulator makes is an exact decimal.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Instrument:
    symbol: str
    digits: int
    reference_mid: Decimal
    spread_points: int  # a typical raw spread at a good LP
    volatility_points: int  # the largest move of the mid in one update
    quote_size: Decimal  # lots on each side of the book

    @property
    def point(self) -> Decimal:
        return Decimal(1).scaleb(-self.digits)

    def price(self, points: int) -> Decimal:
        """The price `points` points from zero, with exactly `digits` decimals."""
        return Decimal(points).scaleb(-self.digits)

    def points(self, price: Decimal) -> int:
        """The number of points in `price`; a price between points is an error."""
        scaled = price.scaleb(self.digits)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{price} has more than {self.digits} decimals for {self.symbol}")
        return int(scaled)


CATALOGUE: tuple[Instrument, ...] = (
    Instrument("EURUSD", 5, Decimal("1.08500"), 6, 3, Decimal("50")),
    Instrument("GBPUSD", 5, Decimal("1.27000"), 9, 4, Decimal("50")),
    Instrument("USDJPY", 3, Decimal("151.200"), 8, 4, Decimal("50")),
    Instrument("XAUUSD", 2, Decimal("2400.00"), 25, 15, Decimal("20")),
    Instrument("US500", 1, Decimal("5200.0"), 5, 3, Decimal("100")),
    Instrument("BTCUSD", 2, Decimal("65000.00"), 1500, 800, Decimal("5")),
)

BY_SYMBOL: dict[str, Instrument] = {i.symbol: i for i in CATALOGUE}

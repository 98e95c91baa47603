"""Swap (overnight financing) and the rollover calendar (ADR 0010): pure rules, no I/O.

- A trading day's rollover happens at the configured time in the configured time zone (the FX
  market's 17:00 New York by default), Monday to Friday; Saturday and Sunday have none. The
  rollover of a day charges every position opened before its instant and still open.
- A position's swap for one rollover: its side's rate (the group's terms for the instrument,
  else the instrument's), for `nights` nights (3 on the terms' triple-swap weekday, else 1):
  - POINTS: quantity x contract_size x rate x point (10^-digits) x nights;
  - PERCENT: quantity x contract_size x price x rate / 100 / 360 x nights, price being the
    position's closing price at the rollover (the bid for a long, the ask for a short);
  in the instrument's quote currency, converted to the account currency as P&L is (the mid of
  the group's price of the joining pair, `money.Conversion`) and rounded once to the currency's
  minor unit, half to even (`money.round_money`, ADR 0007's money rule). Positive credits the
  account, negative charges it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import time
from datetime import timedelta
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

from services.oms.domain.positions import Side
from tradingmesh.trading.money import IDENTITY
from tradingmesh.trading.money import Conversion
from tradingmesh.trading.money import divide
from tradingmesh.trading.money import exact_product
from tradingmesh.trading.money import round_money

__all__ = [
    "DAYS_PER_YEAR",
    "RolloverClock",
    "SwapTerms",
    "SwapType",
    "nights",
    "swap_amount",
    "terms_for",
]

DAYS_PER_YEAR: Final = Decimal(360)
"""The day count of percent rates: a year's rate is charged 1/360 a night (money markets' and
most brokers' Actual/360)."""
_PERCENT_A_NIGHT: Final = DAYS_PER_YEAR * 100
_SATURDAY: Final = 5  # date.weekday(): Monday 0 .. Sunday 6


class SwapType(enum.StrEnum):
    POINTS = "POINTS"
    PERCENT = "PERCENT"


@dataclass(frozen=True, slots=True)
class SwapTerms:
    """An instrument's swap terms (for every group, or one group's own): rates per side, signed
    (positive credits the client), and the ISO weekday (1 = Monday .. 5 = Friday) that charges
    three nights."""

    swap_type: SwapType
    long_rate: Decimal
    short_rate: Decimal
    triple_swap_day: int

    def __post_init__(self) -> None:
        if not 1 <= self.triple_swap_day <= 5:
            raise ValueError(f"the triple-swap day is Monday to Friday, not {self.triple_swap_day}")

    def rate(self, side: Side) -> Decimal:
        return self.long_rate if side is Side.BUY else self.short_rate


def terms_for(
    terms: dict[tuple[str, str], SwapTerms], group_id: str, symbol: str
) -> SwapTerms | None:
    """The group's own terms for the instrument, else the instrument's (key group ''), else
    None (no swap)."""
    return terms.get((symbol, group_id)) or terms.get((symbol, ""))


def nights(terms: SwapTerms, trading_date: date) -> int:
    """How many nights the rollover of `trading_date` charges: 3 on the triple-swap weekday."""
    return 3 if trading_date.isoweekday() == terms.triple_swap_day else 1


def swap_amount(
    *,
    side: Side,
    quantity: Decimal,
    contract_size: Decimal,
    digits: int,
    terms: SwapTerms,
    nights: int,
    currency: str,
    close_price: Decimal | None = None,
    conversion: Conversion = IDENTITY,
) -> Decimal:
    """The swap of one position for one rollover, in the account currency, rounded once;
    positive credits the account. PERCENT needs the position's `close_price`."""
    if quantity <= 0 or contract_size <= 0 or nights < 1:
        raise ValueError("a swap is charged on an open position for at least one night")
    rate = terms.rate(side)
    units = exact_product(quantity, contract_size, Decimal(nights))
    if terms.swap_type is SwapType.POINTS:
        point = Decimal(1).scaleb(-digits)
        in_quote = exact_product(units, rate, point)
    else:
        if close_price is None or not close_price > 0:
            raise ValueError("a percent swap needs the position's closing price")
        in_quote = divide(exact_product(units, close_price, rate), _PERCENT_A_NIGHT)
    return round_money(conversion.to_account(in_quote), currency)


@dataclass(frozen=True, slots=True)
class RolloverClock:
    """When each trading day's rollover happens: `at` in `zone`, Monday to Friday."""

    at: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, at: str, zone: str) -> RolloverClock:
        """From "HH:MM" and an IANA zone name; ValueError if either is not one."""
        try:
            hours, minutes = (int(part) for part in at.split(":"))
            moment = time(hours, minutes)
        except ValueError:
            raise ValueError(f"{at!r} is not a time of day HH:MM") from None
        try:
            return cls(moment, ZoneInfo(zone))
        except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"{zone!r} is not a time zone") from None

    @staticmethod
    def is_trading_day(day: date) -> bool:
        return day.weekday() < _SATURDAY

    def instant(self, trading_date: date) -> datetime:
        """The rollover's instant (UTC) of `trading_date`: its local time in the zone (with the
        zone's daylight saving time that day)."""
        return datetime.combine(trading_date, self.at, tzinfo=self.zone).astimezone(UTC)

    def latest_due(self, now: datetime) -> date:
        """The latest trading day whose rollover instant is at or before `now`."""
        local = now.astimezone(self.zone)
        day = local.date()
        if self.instant(day) > now:
            day -= timedelta(days=1)
        while not self.is_trading_day(day):
            day -= timedelta(days=1)
        return day

"""How an accepted order executes, decided in memory before its transaction (ADR 0007).

Pure: the quote, the group's terms and the order go in, a decision comes out.

- **Instant** (market orders): the live price is the group's ask for a buy, bid for a sell; the
  order fills in full at `requested_price` if the live price is within `max_deviation_points`
  points of it, else it is REJECTED with REQUOTE and `requote_price` = the live price.
- **Market**: a market order fills in full at the live price. In instant and market execution
  the broker is the counterparty, so IOC and FOK fill in full (NO_LIQUIDITY does not arise).
- **Limit orders** in instant and market execution: marketable now (a buy's limit at or above
  the ask, a sell's at or below the bid) fills in full at the live price, which is at or
  better than the limit; otherwise a GTC or DAY order rests WORKING until its price comes, and
  an IOC or FOK order, which cannot rest, is REJECTED with NO_LIQUIDITY.
- **Stop and stop-limit orders** rest WORKING: they execute when the market reaches the stop
  price (the trigger engine, ADR 0007 "Working orders").
- **STP**: the order is committed WORKING and handed to the STP desk (`stp/desk.py`), which nets
  the window's orders, hedges the net at a liquidity provider and fills each client order
  from the execution reports (ADR 0007 "Execution modes"); nothing fills it here. An STP stop
  order rests WORKING for the trigger engine; an STP limit (or a triggered stop-limit) is
  hedged on its own as a FIX limit order at the raw equivalent of its limit, by the desk when
  placed marketable and by the trigger engine when the price reaches it.
- No live price (none received, marked stale, or older than the maximum age): an order that
  must execute now is REJECTED with PRICE_UNAVAILABLE.

Also here: when a DAY order expires, and which pair converts the instrument's quote currency
to the account currency.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Final

from services.oms.domain.positions import Side
from services.oms.model import ExecutionMode
from services.oms.model import Instrument
from services.oms.model import OrderType
from services.oms.model import TimeInForce
from services.platform.prices import PublishedPrice
from services.platform.schedule import Session
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.trading.money import Conversion
from tradingmesh.trading.money import divide
from tradingmesh.trading.money import exact_difference
from tradingmesh.trading.money import exact_sum

__all__ = [
    "Decision",
    "FillAt",
    "LiveQuote",
    "OrderSpec",
    "Reject",
    "Rest",
    "conversion_pair",
    "decide",
    "is_marketable",
    "session_end",
]

_R = ErrorReason
_TWO: Final = Decimal(2)


@dataclass(frozen=True, slots=True)
class LiveQuote(PublishedPrice):
    """A group's latest price of one instrument, as pricing published it (`PublishedPrice.read`),
    with where an order executes at it."""

    def is_live(self, now: datetime, max_age: timedelta) -> bool:
        """Not marked stale and not older than `max_age` (ADR 0007: 2 s)."""
        return not self.stale and now - self.time <= max_age

    def price_for(self, side: Side) -> Decimal:
        """Where an order of `side` executes: a buy at the ask, a sell at the bid."""
        return self.ask if side is Side.BUY else self.bid

    @property
    def mid(self) -> Decimal:
        return divide(exact_sum(self.bid, self.ask), _TWO)


@dataclass(frozen=True)
class OrderSpec:
    """What execution needs of an order."""

    side: Side
    type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    price: Decimal | None = None
    requested_price: Decimal | None = None


@dataclass(frozen=True)
class FillAt:
    """Fill the whole quantity now at `price`."""

    price: Decimal


@dataclass(frozen=True)
class Reject:
    """End the order REJECTED with `reason` (and `requote_price` for a requote)."""

    reason: ErrorReason.ValueType
    message: str
    requote_price: Decimal | None = None


@dataclass(frozen=True)
class Rest:
    """Leave the order WORKING; `why` is for the logs and the documentation."""

    why: str


Decision = FillAt | Reject | Rest

AWAITS_STP: Final = Rest("an STP order waits for the STP module's netting window and hedge")
AWAITS_PRICE: Final = Rest("a limit or stop order waits for its price")


def is_marketable(side: Side, limit: Decimal, quote: LiveQuote) -> bool:
    """Whether a limit order can fill now: a buy at an ask at or below its limit, a sell at a
    bid at or above it."""
    if side is Side.BUY:
        return quote.ask <= limit
    return quote.bid >= limit


def _unavailable(symbol: str) -> Reject:
    return Reject(_R.ERROR_REASON_PRICE_UNAVAILABLE, f"no live price for {symbol}")


def decide(
    order: OrderSpec,
    mode: ExecutionMode,
    quote: LiveQuote | None,
    *,
    symbol: str,
    max_deviation_points: int,
    point: Decimal,
) -> Decision:
    """The execution of an accepted order; `quote` is None when no live price exists."""
    if mode is ExecutionMode.STP:
        return AWAITS_STP
    if order.type in (OrderType.STOP, OrderType.STOP_LIMIT):
        return AWAITS_PRICE
    if order.type is OrderType.LIMIT:
        assert order.price is not None, "a limit order has a price (contract rule)"
        immediate = order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)
        if quote is not None and is_marketable(order.side, order.price, quote):
            return FillAt(quote.price_for(order.side))
        if not immediate:
            return AWAITS_PRICE
        if quote is None:
            return _unavailable(symbol)
        return Reject(
            _R.ERROR_REASON_NO_LIQUIDITY,
            f"no liquidity at the limit {order.price}: the live price is "
            f"{quote.price_for(order.side)}",
        )
    if quote is None:
        return _unavailable(symbol)
    live = quote.price_for(order.side)
    if mode is ExecutionMode.MARKET:
        return FillAt(live)
    assert order.requested_price is not None, "instant execution needs requested_price"
    allowed = point * max_deviation_points
    distance = exact_difference(live, order.requested_price).copy_abs()
    if distance <= allowed:
        return FillAt(order.requested_price)
    return Reject(
        _R.ERROR_REASON_REQUOTE,
        f"the price moved: live {live}, requested {order.requested_price}, at most "
        f"{max_deviation_points} points allowed",
        requote_price=live,
    )


_MINUTES_PER_DAY: Final = 1440


def session_end(sessions: Sequence[Session], now: datetime) -> datetime | None:
    """When a DAY order placed at `now` (UTC) expires: the end of the trading session holding
    `now`, else the end of the next session to open (within a week); None without sessions.

    Each session is one entry of the instrument's weekly schedule, so an instrument quoted
    around the clock (one entry per day, 00:00-24:00) expires its DAY orders at midnight UTC.
    """
    if not sessions:
        return None
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    minute_now = (now - day_start) / timedelta(minutes=1)
    best: datetime | None = None
    for offset in range(8):
        date = day_start + timedelta(days=offset)
        weekday = date.isoweekday()
        for session in sessions:
            if session.day != weekday or session.end_minute <= session.start_minute:
                continue
            if offset == 0 and session.end_minute <= minute_now:
                continue  # already over today
            end = date + timedelta(minutes=min(session.end_minute, _MINUTES_PER_DAY))
            if offset == 0 and session.start_minute <= minute_now:
                return end  # the session holding now
            if best is None or end < best:
                best = end
        if best is not None:
            return best
    return best


def conversion_pair(
    quote_currency: str, account_currency: str, instruments: Iterable[Instrument]
) -> tuple[str, bool] | None:
    """The instrument whose price converts `quote_currency` amounts to `account_currency`, and
    whether to divide by it (ADR 0007: QUOTE/ACCOUNT multiplies, ACCOUNT/QUOTE divides); None
    when no instrument joins the two (no cross conversions: PRICE_UNAVAILABLE)."""
    inverse: str | None = None
    for instrument in instruments:
        pair = (instrument.base_currency, instrument.quote_currency)
        if pair == (quote_currency, account_currency):
            return instrument.symbol, False
        if pair == (account_currency, quote_currency) and inverse is None:
            inverse = instrument.symbol
    return (inverse, True) if inverse is not None else None


def conversion_at(quote: LiveQuote, inverse: bool) -> Conversion:
    """The conversion at the mid of the pair's price (ADR 0007)."""
    return Conversion(quote.mid, inverse)

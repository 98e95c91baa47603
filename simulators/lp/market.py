"""The pure part of an LP simulator: its prices, and what it does with an order. No I/O.

Each LP walks every instrument's mid price at random, pulled back towards the shared reference
mid so that two LPs stay close to each other without being equal; it quotes its own spread
around its mid. Now and then it goes quiet on an instrument for a while (a gap), as real LPs do,
so that the platform's staleness rules get exercised. All prices are whole points, so exact.

Tests and benchmarks can pin an instrument's quote (`pin`): the LP then quotes exactly that,
without walking or gaps, until it is unpinned and walks on from there. A pin may also set the
size quoted on each side (the liquidity an order can take), else the instrument's usual size.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from enum import Enum

from simulators.lp.catalogue import Instrument


@dataclass(frozen=True)
class Profile:
    """How one LP behaves; every LP of the dev stack has a different one."""

    name: str
    seed: int
    spread_factor: Decimal = Decimal(1)  # times the instrument's typical spread
    updates_per_second: Decimal = Decimal(4)  # per instrument
    gap_per_million: int = 2000  # per update, the chance in a million of going quiet
    gap_updates: int = 20  # how many updates a gap lasts
    max_order_lots: Decimal = Decimal(50)  # larger orders are rejected
    fill_lots: Decimal = Decimal(5)  # an order fills in pieces of at most this size
    fill_delay_ms: int = 2  # between an order and its first execution report


@dataclass(frozen=True)
class Quote:
    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal


@dataclass
class _Walk:
    instrument: Instrument
    mid: int  # points
    quiet_for: int = 0
    pinned: tuple[int, int] | None = None  # (bid, ask) in points while pinned
    pinned_size: Decimal | None = None  # lots on each side while pinned; None: the usual


class Market:
    """One LP's view of the market: a quote per instrument that moves on `step`."""

    def __init__(self, instruments: Iterable[Instrument], profile: Profile) -> None:
        self.profile = profile
        self._rng = random.Random(profile.seed)
        self._walks: dict[str, _Walk] = {}
        for instrument in instruments:
            reference = instrument.points(instrument.reference_mid)
            # Each LP starts a little off the reference, so LPs disagree from the first quote.
            offset = self._rng.randint(-instrument.volatility_points, instrument.volatility_points)
            self._walks[instrument.symbol] = _Walk(instrument, reference + offset)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._walks)

    def instrument(self, symbol: str) -> Instrument | None:
        walk = self._walks.get(symbol)
        return walk.instrument if walk else None

    def spread_points(self, instrument: Instrument) -> int:
        spread = Decimal(instrument.spread_points) * self.profile.spread_factor
        return max(int(spread.to_integral_value()), 1)  # never a zero spread

    def quote(self, symbol: str) -> Quote:
        walk = self._walks[symbol]
        instrument = walk.instrument
        if walk.pinned is not None:
            bid, ask = walk.pinned
        else:
            bid = walk.mid - self.spread_points(instrument) // 2
            ask = bid + self.spread_points(instrument)
        size = walk.pinned_size if walk.pinned_size is not None else instrument.quote_size
        return Quote(
            symbol=symbol,
            bid=instrument.price(bid),
            ask=instrument.price(ask),
            bid_size=size,
            ask_size=size,
        )

    def step(self, symbol: str) -> Quote | None:
        """Moves the instrument's price once; None while the LP is quiet on it (a gap)."""
        walk = self._walks[symbol]
        if walk.pinned is not None:
            return self.quote(symbol)  # a pinned quote is re-sent as it is, so it stays fresh
        if walk.quiet_for > 0:
            walk.quiet_for -= 1
            return None
        if self._rng.randrange(1_000_000) < self.profile.gap_per_million:
            walk.quiet_for = self.profile.gap_updates
            return None
        instrument = walk.instrument
        reference = instrument.points(instrument.reference_mid)
        move = self._rng.randint(-instrument.volatility_points, instrument.volatility_points)
        # Mean reversion: a tenth of the distance back to the reference, in whole points.
        distance = reference - walk.mid
        pull = distance // 10 if distance >= 0 else -(-distance // 10)
        walk.mid = max(walk.mid + move + pull, self.spread_points(instrument) + 1)
        return self.quote(symbol)

    def pin(self, symbol: str, bid: Decimal, ask: Decimal, size: Decimal | None = None) -> Quote:
        """Quotes exactly `bid`/`ask` for `symbol` from now on, with `size` lots on each side
        (None: the instrument's usual size); a bad quote is a ValueError."""
        walk = self._walks.get(symbol)
        if walk is None:
            raise ValueError(f"unknown symbol {symbol}")
        bid_points, ask_points = walk.instrument.points(bid), walk.instrument.points(ask)
        if not 0 < bid_points < ask_points:
            raise ValueError(f"a quote needs 0 < bid < ask, not {bid}/{ask}")
        if size is not None and not (size.is_finite() and size > 0):
            raise ValueError(f"a quoted size must be positive, not {size}")
        walk.pinned = (bid_points, ask_points)
        walk.pinned_size = size
        walk.mid = (bid_points + ask_points) // 2
        walk.quiet_for = 0
        return self.quote(symbol)

    def unpin(self, symbol: str) -> None:
        """Lets `symbol` walk again, from where it was pinned (unknown or unpinned: no-op)."""
        walk = self._walks.get(symbol)
        if walk is not None:
            walk.pinned = None
            walk.pinned_size = None

    def pins(self) -> dict[str, Quote]:
        return {s: self.quote(s) for s, w in self._walks.items() if w.pinned is not None}


class Side(Enum):
    BUY = "1"
    SELL = "2"


class TimeInForce(Enum):
    DAY = "0"
    GTC = "1"
    IOC = "3"
    FOK = "4"


@dataclass(frozen=True)
class Order:
    """A NewOrderSingle, parsed. `limit_price` is None for a market order."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    limit_price: Decimal | None
    time_in_force: TimeInForce


@dataclass(frozen=True)
class Fill:
    quantity: Decimal
    price: Decimal


@dataclass(frozen=True)
class Execution:
    """What the LP does with an order: fills (possibly several), then maybe a cancel of the rest
    (`cancel_reason` says why), or a reject with a reason (an order it does not take at all).
    Orders never rest at an LP: what does not fill now is cancelled, whatever the time in force
    (a GTC or DAY order is taken as IOC)."""

    fills: tuple[Fill, ...] = ()
    cancelled: Decimal = Decimal(0)
    reject_reason: str | None = None
    cancel_reason: str = ""
    fills_total: Decimal = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fills_total", sum((f.quantity for f in self.fills), Decimal(0)))


def _refusal(market: Market, order: Order) -> str | None:
    """Why the LP does not take `order` at all, or None."""
    if market.instrument(order.symbol) is None:
        return f"unknown symbol {order.symbol}"
    if order.quantity <= 0:
        return "quantity must be positive"
    if order.quantity > market.profile.max_order_lots:
        return f"quantity above {market.profile.max_order_lots} lots"
    if order.limit_price is not None and not (
        order.limit_price.is_finite() and order.limit_price > 0
    ):
        return f"limit price must be positive, not {order.limit_price}"
    return None


def execute(market: Market, order: Order) -> Execution:
    """Decides the fate of `order` against the LP's current quote: a market order takes what
    the quote's size offers at its price; a limit order the same, only if that price is at or
    better than its limit (a buy at an ask <= limit, a sell at a bid >= limit), else nothing;
    a FOK order all of its quantity or nothing. What is not filled is cancelled. Rejected: an
    unknown symbol, a quantity that is not positive or above the LP's maximum, a limit price
    that is not positive."""
    refused = _refusal(market, order)
    if refused is not None:
        return Execution(reject_reason=refused)
    quote = market.quote(order.symbol)
    price, available = (
        (quote.ask, quote.ask_size) if order.side is Side.BUY else (quote.bid, quote.bid_size)
    )
    if order.limit_price is not None:
        marketable = (
            price <= order.limit_price if order.side is Side.BUY else price >= order.limit_price
        )
        if not marketable:
            return Execution(
                cancelled=order.quantity,
                cancel_reason=f"price moved: {price} against the limit {order.limit_price}",
            )
    if order.quantity > available and order.time_in_force is TimeInForce.FOK:
        return Execution(
            cancelled=order.quantity,
            cancel_reason=(
                f"fill or kill: only {available:f} of {order.quantity:f} lots available"
            ),
        )
    to_fill = min(order.quantity, available)
    fills = []
    left = to_fill
    while left > 0:
        piece = min(left, market.profile.fill_lots)
        fills.append(Fill(piece, price))
        left -= piece
    cancelled = order.quantity - to_fill
    return Execution(
        fills=tuple(fills),
        cancelled=cancelled,
        cancel_reason=f"{cancelled:f} lots not filled: no liquidity" if cancelled else "",
    )


def execute_at_limit(market: Market, order: Order) -> Execution:
    """A limit-only LP's fill (the `limit-only` trait): a limit order is filled in full at its
    own limit price, whatever the quote, in pieces of at most `fill_lots`; rejected for the same
    reasons as `execute`. A market order is refused before it gets here."""
    if order.limit_price is None:
        return Execution(reject_reason="only limit orders are accepted")
    refused = _refusal(market, order)
    if refused is not None:
        return Execution(reject_reason=refused)
    fills = []
    left = order.quantity
    while left > 0:
        piece = min(left, market.profile.fill_lots)
        fills.append(Fill(piece, order.limit_price))
        left -= piece
    return Execution(fills=tuple(fills))

"""STP netting (ADR 0007, "Execution modes"): a window's client orders, the one hedge order they
need, and how the hedge's outcome is shared out among them.

A window holds the STP client orders of one instrument that arrived within its length. Only the
net is hedged at a liquidity provider:

    net = sum of the buys - sum of the sells; the hedge is |net| on the net's side.

When the hedge is done (filled, partly filled or rejected), every client order is allocated on
its own side:
- the orders on the other side than the hedge are internalized in full: the hedge side's orders
  take the opposite of their quantity, so the broker is flat on that part;
- the orders on the hedge's side share the internalized quantity (the smaller gross side) plus
  what the provider filled, first come, first served.

Time in force decides the rest: IOC keeps what it got and cancels the rest (REJECTED when it got
nothing); FOK takes its whole quantity or nothing (NO_LIQUIDITY), and what a refused FOK would
have taken stays in the pool for the orders after it.

Prices: each client fills at its own price: the raw price its side traded at (the hedge's
average for the hedge's side when the provider filled any; otherwise the raw best price of that
side when the hedge was sent, or when the window closed for a window that netted to zero), plus
its group's markup for that side, rounded to the instrument's digits against the client (a buy
rounds up, a sell down).

Limit orders (an STP limit, or a stop-limit once triggered) are never netted: a limit would be
lost in a net, and a window cannot promise each order a price no worse than its own limit. Each
gets a hedge order of its own, sent to the provider as a limit order at `raw_limit`: the
client's limit less its group's ask markup for a buy (plus its bid markup for a sell), rounded
to the instrument's digits in the client's favour (a buy down, a sell up), so that any fill at
or better than the raw limit, plus the markup and rounded against the client, is still at or
better than the client's limit. `allocate_limit` gives the one order what the provider filled,
at that price, and caps it at the limit (a provider that filled worse than it was asked costs
the broker, never the client). The rest: IOC cancels it, FOK takes all or nothing, and a GTC
or DAY order (`WindowTimeInForce.REST`) keeps working for the next touch of its price.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING
from decimal import ROUND_FLOOR
from decimal import Decimal
from typing import Final

from services.oms.domain.positions import Side
from tradingmesh.trading.money import exact_difference
from tradingmesh.trading.money import exact_sum

__all__ = [
    "Allocation",
    "AllocationOutcome",
    "HedgeResult",
    "Net",
    "RawPrices",
    "WindowOrder",
    "WindowTimeInForce",
    "allocate",
    "allocate_limit",
    "client_price",
    "limit_price",
    "net_of",
    "raw_limit",
]

_ZERO: Final = Decimal(0)


class WindowTimeInForce(enum.StrEnum):
    """How an order in a window treats a short allocation (common/v1 TimeInForce)."""

    IOC = "IOC"
    FOK = "FOK"
    REST = "REST"  # a GTC or DAY limit order: keeps what it got and the rest keeps working


@dataclass(frozen=True)
class WindowOrder:
    """A client order in a netting window, in arrival order."""

    order_id: str
    side: Side
    quantity: Decimal  # what it still needs, in lots
    time_in_force: WindowTimeInForce
    bid_markup: Decimal  # what its group's price takes off the raw bid
    ask_markup: Decimal  # what its group's price adds to the raw ask
    limit: Decimal | None = None  # a limit order's price: it never fills worse


@dataclass(frozen=True)
class Net:
    """What a window needs from the market."""

    gross_buy: Decimal
    gross_sell: Decimal

    @property
    def quantity(self) -> Decimal:
        return abs(exact_difference(self.gross_buy, self.gross_sell))

    @property
    def side(self) -> Side | None:
        """The hedge's side; None when the window nets to zero."""
        if self.gross_buy == self.gross_sell:
            return None
        return Side.BUY if self.gross_buy > self.gross_sell else Side.SELL

    @property
    def internalized(self) -> Decimal:
        """The quantity the window's buys and sells cover between themselves."""
        return min(self.gross_buy, self.gross_sell)


@dataclass(frozen=True)
class RawPrices:
    """The raw best bid and ask (without markup) at the moment the hedge left."""

    bid: Decimal
    ask: Decimal

    def of(self, side: Side) -> Decimal:
        """The raw price a client order of `side` trades at."""
        return self.ask if side is Side.BUY else self.bid


@dataclass(frozen=True)
class HedgeResult:
    """What the provider did with the hedge order."""

    filled: Decimal
    average_price: Decimal | None  # None when nothing filled


class AllocationOutcome(enum.StrEnum):
    """What an order got; its time in force says what happens to the rest (IOC: cancelled,
    NO_LIQUIDITY, or rejected when it got nothing; REST: it keeps working)."""

    FILLED = "FILLED"  # its whole quantity
    PARTIALLY_FILLED = "PARTIALLY_FILLED"  # part of it
    NOT_FILLED = "NOT_FILLED"  # nothing


@dataclass(frozen=True)
class Allocation:
    order_id: str
    outcome: AllocationOutcome
    quantity: Decimal  # filled, in lots; 0 when NOT_FILLED
    price: Decimal | None  # the client's fill price; None when nothing filled


def net_of(orders: Sequence[WindowOrder]) -> Net:
    buys = [o.quantity for o in orders if o.side is Side.BUY]
    sells = [o.quantity for o in orders if o.side is Side.SELL]
    return Net(exact_sum(_ZERO, *buys), exact_sum(_ZERO, *sells))


def client_price(raw: Decimal, order: WindowOrder, digits: int) -> Decimal:
    """`raw` with the order's group markup for its side, rounded against the client."""
    step = Decimal(1).scaleb(-digits)
    if order.side is Side.BUY:
        return exact_sum(raw, order.ask_markup).quantize(step, rounding=ROUND_CEILING)
    return exact_difference(raw, order.bid_markup).quantize(step, rounding=ROUND_FLOOR)


def raw_limit(order: WindowOrder, digits: int) -> Decimal:
    """The provider price equivalent to a limit order's limit (see the module doc): a buy's
    limit less its ask markup rounded down, a sell's limit plus its bid markup rounded up."""
    if order.limit is None:
        raise ValueError(f"order {order.order_id} has no limit")
    step = Decimal(1).scaleb(-digits)
    if order.side is Side.BUY:
        return exact_difference(order.limit, order.ask_markup).quantize(step, rounding=ROUND_FLOOR)
    return exact_sum(order.limit, order.bid_markup).quantize(step, rounding=ROUND_CEILING)


def limit_price(raw: Decimal, order: WindowOrder, digits: int) -> Decimal:
    """`client_price`, never worse than the order's limit."""
    price = client_price(raw, order, digits)
    if order.limit is None:
        return price
    return min(price, order.limit) if order.side is Side.BUY else max(price, order.limit)


def allocate_limit(order: WindowOrder, hedge: HedgeResult, digits: int) -> Allocation:
    """What a limit order's own hedge order gives it: everything the provider filled, at the
    provider's average price plus the markup, never worse than the limit; a FOK takes all or
    nothing (what the provider filled of a FOK it did not fill in full stays with the broker)."""
    if order.limit is None:
        raise ValueError(f"order {order.order_id} has no limit")
    if not (_ZERO <= hedge.filled <= order.quantity):
        raise ValueError(f"the hedge filled {hedge.filled} of {order.quantity}")
    if (hedge.filled > 0) != (hedge.average_price is not None):
        raise ValueError("a hedge has an average price exactly when it filled")
    if hedge.filled == 0 or (
        hedge.filled < order.quantity and order.time_in_force is WindowTimeInForce.FOK
    ):
        return Allocation(order.order_id, AllocationOutcome.NOT_FILLED, _ZERO, None)
    assert hedge.average_price is not None
    outcome = (
        AllocationOutcome.FILLED
        if hedge.filled == order.quantity
        else AllocationOutcome.PARTIALLY_FILLED
    )
    return Allocation(
        order.order_id, outcome, hedge.filled, limit_price(hedge.average_price, order, digits)
    )


def allocate(
    orders: Sequence[WindowOrder], hedge: HedgeResult | None, raw: RawPrices, digits: int
) -> list[Allocation]:
    """Shares a window out once its hedge is done (`hedge` None: the window netted to zero and
    sent none). Orders are taken in the given (arrival) order."""
    net = net_of(orders)
    if net.side is None and hedge is not None:
        raise ValueError("a window that nets to zero sends no hedge")
    if net.side is not None and hedge is None:
        raise ValueError("a window with a net needs its hedge's result")
    if hedge is not None and not (_ZERO <= hedge.filled <= net.quantity):
        raise ValueError(f"the hedge filled {hedge.filled} of {net.quantity}")
    if hedge is not None and (hedge.filled > 0) != (hedge.average_price is not None):
        raise ValueError("a hedge has an average price exactly when it filled")
    pool = exact_sum(net.internalized, hedge.filled if hedge is not None else _ZERO)
    allocations = []
    for order in orders:
        if order.side is not net.side:  # internalized in full
            allocations.append(_filled(order, order.quantity, raw.of(order.side), digits))
            continue
        assert hedge is not None
        traded = hedge.average_price if hedge.average_price is not None else raw.of(order.side)
        share = min(order.quantity, pool)
        if share == order.quantity:
            allocations.append(_filled(order, share, traded, digits))
        elif order.time_in_force is WindowTimeInForce.FOK or share == 0:
            allocations.append(
                Allocation(order.order_id, AllocationOutcome.NOT_FILLED, _ZERO, None)
            )
            continue
        else:
            allocations.append(
                Allocation(
                    order.order_id,
                    AllocationOutcome.PARTIALLY_FILLED,
                    share,
                    client_price(traded, order, digits),
                )
            )
        pool = exact_difference(pool, share)
    return allocations


def _filled(order: WindowOrder, quantity: Decimal, raw: Decimal, digits: int) -> Allocation:
    return Allocation(
        order.order_id, AllocationOutcome.FILLED, quantity, client_price(raw, order, digits)
    )

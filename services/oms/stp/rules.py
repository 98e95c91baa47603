"""The STP desk's pure rules (ADR 0007, "Execution modes"; `desk.py` tells the whole story): the
open netting window of each instrument, the raw prices and markups behind a group's price, the
provider a hedge order goes to, what trying an STP limit order does, and what each client order
of a window comes to (`Settlement`) once its hedge order has ended."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Final

from services.oms.domain.netting import Allocation
from services.oms.domain.netting import AllocationOutcome
from services.oms.domain.netting import RawPrices
from services.oms.domain.netting import WindowOrder
from services.oms.domain.netting import WindowTimeInForce
from services.oms.domain.netting import raw_limit
from services.oms.domain.positions import Side
from services.oms.domain.state import OrderEvent
from services.oms.domain.state import OrderStatus
from services.oms.domain.triggers import limit_reached
from services.oms.entry.execution import LiveQuote
from services.oms.model import ExecutionMode
from services.oms.model import OrderRow
from services.oms.model import OrderType
from services.oms.model import TimeInForce
from services.oms.model import reason_value
from services.oms.stp.hedges import HedgeRow
from services.oms.stp.hedges import HedgeStatus
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.exact import plain_decimal
from tradingmesh.trading.money import exact_difference

__all__ = [
    "AwaitPrice",
    "HedgeAt",
    "Refuse",
    "Settlement",
    "Wait",
    "Window",
    "WindowBook",
    "arrival",
    "is_stp_limit",
    "limit_attempt",
    "markups_of",
    "raw_prices_of",
    "refused",
    "rest_event",
    "route",
    "settlements_of",
    "unpriced",
    "window_order",
]

_R = ErrorReason
_ZERO: Final = Decimal(0)


# -- windows --------------------------------------------------------------------------------


@dataclass
class Window:
    """The STP orders of one instrument that arrived while it was open, in arrival order."""

    symbol: str
    order_ids: list[str] = field(default_factory=list)
    account_ids: dict[str, str] = field(default_factory=dict)  # order id -> account id


class WindowBook:
    """The open window of each instrument."""

    def __init__(self) -> None:
        self._open: dict[str, Window] = {}

    def add(self, symbol: str, order_id: str, account_id: str) -> bool:
        """Puts the order in its instrument's window; True when it opened the window (the
        caller closes it after the window's length). An order already in it changes nothing."""
        window = self._open.get(symbol)
        opened = window is None
        if window is None:
            window = self._open[symbol] = Window(symbol)
        if order_id not in window.account_ids:
            window.order_ids.append(order_id)
            window.account_ids[order_id] = account_id
        return opened

    def close(self, symbol: str) -> Window | None:
        return self._open.pop(symbol, None)

    def __len__(self) -> int:
        return len(self._open)


# -- prices, routes and outcomes ------------------------------------------------------------


def markups_of(quote: LiveQuote) -> tuple[Decimal, Decimal]:
    """(bid_markup, ask_markup) of a group's price: what it takes off the raw bid and adds to
    the raw ask (its provenance); zero without a provenance."""
    raw_bid = quote.raw_bid if quote.raw_bid is not None else quote.bid
    raw_ask = quote.raw_ask if quote.raw_ask is not None else quote.ask
    return exact_difference(raw_bid, quote.bid), exact_difference(quote.ask, raw_ask)


def raw_prices_of(quote: LiveQuote) -> RawPrices:
    """The raw best bid and ask behind a group's price."""
    return RawPrices(
        quote.raw_bid if quote.raw_bid is not None else quote.bid,
        quote.raw_ask if quote.raw_ask is not None else quote.ask,
    )


def route(side: Side, quote: LiveQuote, logged_on: Sequence[str], configured: Sequence[str]) -> str:
    """The provider a hedge of `side` goes to: the one whose quote made the best price on that
    side (a buy takes the ask), if its session is up, else any provider with a session up;
    with none up, the best price's provider (the hedge will be REJECTED / LP_UNAVAILABLE)."""
    preferred = quote.ask_lp if side is Side.BUY else quote.bid_lp
    if preferred and preferred in logged_on:
        return preferred
    if logged_on:
        return sorted(logged_on)[0]
    return preferred or (configured[0] if configured else "none")


def is_stp_limit(order: OrderRow) -> bool:
    """An STP limit or stop-limit order: hedged on its own, at its limit (never netted)."""
    return order.execution_mode is ExecutionMode.STP and order.type in (
        OrderType.LIMIT,
        OrderType.STOP_LIMIT,
    )


def window_order(order: OrderRow, bid_markup: Decimal, ask_markup: Decimal) -> WindowOrder:
    """A client order as the netting rules see it: a market order that cannot fill in full
    keeps what it got (IOC, also for GTC and DAY, which a market order cannot rest as), unless
    it is FOK; a limit order carries its limit, and a GTC or DAY one keeps working (REST)."""
    tif = WindowTimeInForce.FOK if order.time_in_force is TimeInForce.FOK else WindowTimeInForce.IOC
    limit = None
    if is_stp_limit(order):
        limit = order.price
        if order.time_in_force in (TimeInForce.GTC, TimeInForce.DAY):
            tif = WindowTimeInForce.REST
    return WindowOrder(
        order.id,
        order.side,
        exact_difference(order.quantity, order.filled_quantity),
        tif,
        bid_markup,
        ask_markup,
        limit,
    )


@dataclass(frozen=True)
class HedgeAt:
    """Send the order's rest to the provider as a limit order at `raw_limit`."""

    order: WindowOrder
    raw_limit: Decimal


@dataclass(frozen=True)
class Wait:
    """Leave the order working (a GTC or DAY order whose price is not there)."""

    why: str


@dataclass(frozen=True)
class AwaitPrice:
    """Leave the order working until its group has a live price (an IOC or FOK order within
    its wait, `unpriced`); then try it again."""

    why: str


@dataclass(frozen=True)
class Refuse:
    """End the order (an IOC or FOK order whose price is not there)."""

    settlement: Settlement


def unpriced(order: OrderRow, now: datetime, wait: timedelta) -> Settlement | None:
    """What becomes of an acknowledged STP order whose group has no live price at `now` (the
    module doc): None while it is younger than `wait` (it stays WORKING and waits for a live
    price: our own price feed's restart must not cost it); past that, REJECTED /
    PRICE_UNAVAILABLE, saying how long it waited."""
    waited = now - order.created_at
    if waited < wait:
        return None
    return refused(
        order.id,
        _R.ERROR_REASON_PRICE_UNAVAILABLE,
        f"no live price for {order.symbol} in the {waited.total_seconds():.1f} s since the"
        " order was accepted",
    )


def limit_attempt(
    order: OrderRow,
    quote: LiveQuote | None,
    digits: int,
    *,
    now: datetime,
    price_wait: timedelta,
) -> HedgeAt | Wait | AwaitPrice | Refuse:
    """What trying an STP limit order at the group's live `quote` does (the module doc): its
    price reached (buy: ask <= limit, sell: bid >= limit) gives a hedge at the raw limit;
    otherwise an IOC or FOK order is refused, NO_LIQUIDITY (without a live price it waits for
    one, `unpriced`, then PRICE_UNAVAILABLE), and a GTC or DAY order waits."""
    assert order.price is not None, "a limit order has a price (contract rule)"
    resting = order.time_in_force in (TimeInForce.GTC, TimeInForce.DAY)
    if quote is None:
        if resting:
            return Wait(f"no live price for {order.symbol}")
        refusal = unpriced(order, now, price_wait)
        if refusal is None:
            return AwaitPrice(f"no live price for {order.symbol} yet")
        return Refuse(refusal)
    live = quote.price_for(order.side)
    if limit_reached(order.side, order.price, quote.bid, quote.ask):
        window = window_order(order, *markups_of(quote))
        raw = raw_limit(window, digits)
        if raw > 0 and window.quantity > 0:
            return HedgeAt(window, raw)
    if resting:
        return Wait(f"the live price {live} has not reached the limit {order.price}")
    return Refuse(
        refused(
            order.id,
            _R.ERROR_REASON_NO_LIQUIDITY,
            f"no liquidity at the limit {order.price}: the live price is {live}",
        )
    )


@dataclass(frozen=True)
class Settlement:
    """What happens to one client order: `quantity` filled at `price`, then `rest` (CANCELLED
    or REJECTED, with `reason`) for what is left; `rest` None when it fills in full."""

    order_id: str
    quantity: Decimal
    price: Decimal | None
    rest: OrderEvent | None = None
    reason: ErrorReason.ValueType = _R.ERROR_REASON_UNSPECIFIED
    message: str = ""


def refused(order_id: str, reason: ErrorReason.ValueType, message: str) -> Settlement:
    return Settlement(order_id, _ZERO, None, OrderEvent.REJECTED, reason, message)


def settlements_of(
    allocations: Sequence[Allocation],
    orders: Sequence[WindowOrder],
    hedge: HedgeRow | None,
) -> list[Settlement]:
    """The settlement of each allocation (ADR 0007): the unfilled rest of an IOC is CANCELLED /
    NO_LIQUIDITY after a partial fill, REJECTED with the hedge's reason (LP_REJECTED,
    LP_UNAVAILABLE) or NO_LIQUIDITY when nothing filled; a FOK not filled in full is REJECTED /
    NO_LIQUIDITY; a GTC or DAY limit order (REST) keeps what it got and keeps working."""
    by_id = {o.order_id: o for o in orders}
    result = []
    for allocation in allocations:
        order = by_id[allocation.order_id]
        if allocation.outcome is AllocationOutcome.FILLED or (
            order.time_in_force is WindowTimeInForce.REST
        ):
            result.append(Settlement(order.order_id, allocation.quantity, allocation.price))
        elif allocation.outcome is AllocationOutcome.PARTIALLY_FILLED:
            rest = exact_difference(order.quantity, allocation.quantity)
            result.append(
                Settlement(
                    order.order_id,
                    allocation.quantity,
                    allocation.price,
                    OrderEvent.CANCELLED,
                    _R.ERROR_REASON_NO_LIQUIDITY,
                    f"{plain_decimal(rest)} of {plain_decimal(order.quantity)} lots not filled:"
                    " no liquidity at the provider",
                ),
            )
        elif order.time_in_force is WindowTimeInForce.FOK:
            result.append(
                refused(
                    order.order_id,
                    _R.ERROR_REASON_NO_LIQUIDITY,
                    f"fill or kill: the provider could not fill"
                    f" {plain_decimal(order.quantity)} lots",
                )
            )
        elif hedge is not None and hedge.status is HedgeStatus.REJECTED:
            result.append(
                refused(
                    order.order_id,
                    reason_value(hedge.status_reason),
                    hedge.status_message or "the provider rejected the hedge order",
                )
            )
        else:
            result.append(
                refused(
                    order.order_id, _R.ERROR_REASON_NO_LIQUIDITY, "no liquidity at the provider"
                )
            )
    return result


def rest_event(status: OrderStatus, planned: OrderEvent) -> OrderEvent:
    """The event that ends an order's unfilled rest: the client's pending cancel turns a
    rejection into the cancel it asked for (PENDING_CANCEL has no REJECTED)."""
    if planned is OrderEvent.REJECTED and status is OrderStatus.PENDING_CANCEL:
        return OrderEvent.CANCELLED
    return planned


def arrival(order: OrderRow) -> tuple[datetime, str]:
    return order.created_at, order.id

"""The trigger rules and the in-memory index of what the price stream can trigger (ADR 0007
"Working orders, SL/TP, expiry"). Pure: no I/O, no clock.

Rules, as `OrderType` in common/v1/trading.proto says:

- a buy limit fills at an ask at or below its price, a sell limit at a bid at or above it;
- a buy stop triggers at an ask at or above its stop price, a sell stop at a bid at or below it;
  a stop-limit triggers the same way and then works as a limit at its price;
- a long position (closed by selling at the bid): stop-loss at bid <= SL, take-profit at
  bid >= TP; a short (closed by buying at the ask): stop-loss at ask >= SL, take-profit at
  ask <= TP.

The index holds, per (client group, symbol), the working limit, stop and stop-limit orders and
the open positions' stop-loss / take-profit. An entry carries the version it was read at: an
older copy never replaces a newer one. The index may hold a stale entry (an order cancelled a
moment ago): whoever acts on a hit re-reads the order or position under its account's lock, so
staleness costs a look, never a wrong fill.

An order can be paused until a given time: an STP limit order while its hedge order is at the
liquidity provider, and after a hedge that left part of it unfilled, so that a price the
provider would not fill at is not tried again on every quote. The pause after an attempt that
filled nothing doubles with every such attempt in a row (`retry_pause`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Final

from services.oms.domain.positions import Side

__all__ = [
    "Hit",
    "Kind",
    "PositionStops",
    "TriggerIndex",
    "WorkingOrder",
    "limit_reached",
    "order_hit",
    "position_hit",
    "retry_pause",
    "stop_reached",
]

FIRST_RETRY: Final = timedelta(seconds=1)
LAST_RETRY: Final = timedelta(seconds=30)


class Kind(enum.StrEnum):
    """What a hit asks for."""

    LIMIT = "LIMIT"  # a limit order (or a triggered stop-limit) can fill
    STOP = "STOP"  # a stop order's stop price was reached: trigger, then a market IOC
    STOP_LIMIT = "STOP_LIMIT"  # a stop-limit's stop price was reached: trigger, then a limit
    STOP_LOSS = "STOP_LOSS"  # a position's stop-loss was reached: close it
    TAKE_PROFIT = "TAKE_PROFIT"  # a position's take-profit was reached: close it


class OrderKind(enum.StrEnum):
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


@dataclass(frozen=True)
class WorkingOrder:
    """A WORKING order the price can trigger. `triggered`: a stop-limit whose stop was reached
    already (it works as a limit now)."""

    order_id: str
    account_id: str
    group_id: str
    symbol: str
    side: Side
    kind: OrderKind
    version: int
    price: Decimal | None = None
    stop_price: Decimal | None = None
    triggered: bool = False


@dataclass(frozen=True)
class PositionStops:
    """An open position with a stop-loss or a take-profit."""

    position_id: str
    account_id: str
    group_id: str
    symbol: str
    side: Side
    version: int
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None


@dataclass(frozen=True)
class Hit:
    kind: Kind
    entry: WorkingOrder | PositionStops

    @property
    def id(self) -> str:
        entry = self.entry
        return entry.order_id if isinstance(entry, WorkingOrder) else entry.position_id


def limit_reached(side: Side, limit: Decimal, bid: Decimal, ask: Decimal) -> bool:
    """A buy limit at ask <= limit, a sell limit at bid >= limit."""
    return ask <= limit if side is Side.BUY else bid >= limit


def stop_reached(side: Side, stop: Decimal, bid: Decimal, ask: Decimal) -> bool:
    """A buy stop at ask >= stop, a sell stop at bid <= stop."""
    return ask >= stop if side is Side.BUY else bid <= stop


def order_hit(order: WorkingOrder, bid: Decimal, ask: Decimal) -> Kind | None:
    """What the quote (bid, ask) does to a working order, if anything."""
    if order.kind is OrderKind.LIMIT or (order.kind is OrderKind.STOP_LIMIT and order.triggered):
        if order.price is not None and limit_reached(order.side, order.price, bid, ask):
            return Kind.LIMIT
        return None
    if order.stop_price is None or not stop_reached(order.side, order.stop_price, bid, ask):
        return None
    return Kind.STOP if order.kind is OrderKind.STOP else Kind.STOP_LIMIT


def retry_pause(unfilled_attempts: int) -> timedelta:
    """How long an STP limit order rests before its price may try it again: `FIRST_RETRY`
    after an attempt that filled some of it, doubled for each attempt in a row that filled
    nothing (`unfilled_attempts`), at most `LAST_RETRY`."""
    if unfilled_attempts < 0:
        raise ValueError("unfilled_attempts cannot be negative")
    pause: timedelta = FIRST_RETRY * (2 ** min(unfilled_attempts, 16))
    return min(pause, LAST_RETRY)


def position_hit(position: PositionStops, bid: Decimal, ask: Decimal) -> Kind | None:
    """What the quote does to a position's stops: a long closes at the bid, a short at the ask.
    The stop-loss wins when both are reached (a gap through both)."""
    if position.side is Side.BUY:
        if position.stop_loss is not None and bid <= position.stop_loss:
            return Kind.STOP_LOSS
        if position.take_profit is not None and bid >= position.take_profit:
            return Kind.TAKE_PROFIT
        return None
    if position.stop_loss is not None and ask >= position.stop_loss:
        return Kind.STOP_LOSS
    if position.take_profit is not None and ask <= position.take_profit:
        return Kind.TAKE_PROFIT
    return None


Key = tuple[str, str]


class TriggerIndex:
    """Working orders and position stops per (group, symbol), by id."""

    def __init__(self) -> None:
        self._orders: dict[Key, dict[str, WorkingOrder]] = {}
        self._positions: dict[Key, dict[str, PositionStops]] = {}
        self._order_keys: dict[str, Key] = {}
        self._position_keys: dict[str, Key] = {}
        self._paused: dict[str, datetime] = {}

    # -- orders ------------------------------------------------------------------------------------

    def put_order(self, order: WorkingOrder) -> bool:
        """Adds or replaces an order unless the index holds a newer version; whether it took it."""
        held = self.order(order.order_id)
        if held is not None and held.version > order.version:
            return False
        paused = self._paused.get(order.order_id)
        self.discard_order(order.order_id)
        key = (order.group_id, order.symbol)
        self._orders.setdefault(key, {})[order.order_id] = order
        self._order_keys[order.order_id] = key
        if paused is not None:
            self._paused[order.order_id] = paused
        return True

    def discard_order(self, order_id: str, version: int | None = None) -> None:
        """Removes an order (only if held at `version` or older, when given)."""
        key = self._order_keys.get(order_id)
        if key is None:
            return
        held = self._orders[key][order_id]
        if version is not None and held.version > version:
            return
        del self._order_keys[order_id]
        del self._orders[key][order_id]
        self._paused.pop(order_id, None)
        if not self._orders[key]:
            del self._orders[key]

    def order(self, order_id: str) -> WorkingOrder | None:
        key = self._order_keys.get(order_id)
        return None if key is None else self._orders[key][order_id]

    def pause(self, order_id: str, until: datetime) -> None:
        """No hit for the order before `until` (kept when the order's entry is replaced)."""
        self._paused[order_id] = until

    def resume(self, order_id: str) -> None:
        self._paused.pop(order_id, None)

    def paused_until(self, order_id: str) -> datetime | None:
        return self._paused.get(order_id)

    @property
    def pauses(self) -> Mapping[str, datetime]:
        """Every pause, to carry into a rebuilt index."""
        return dict(self._paused)

    # -- positions ---------------------------------------------------------------------------------

    def put_position(self, position: PositionStops) -> bool:
        """Adds or replaces a position's stops unless a newer version is held; one with neither
        stop is removed instead."""
        held = self.position(position.position_id)
        if held is not None and held.version > position.version:
            return False
        self.discard_position(position.position_id)
        if position.stop_loss is None and position.take_profit is None:
            return True
        key = (position.group_id, position.symbol)
        self._positions.setdefault(key, {})[position.position_id] = position
        self._position_keys[position.position_id] = key
        return True

    def discard_position(self, position_id: str, version: int | None = None) -> None:
        key = self._position_keys.get(position_id)
        if key is None:
            return
        held = self._positions[key][position_id]
        if version is not None and held.version > version:
            return
        del self._position_keys[position_id]
        del self._positions[key][position_id]
        if not self._positions[key]:
            del self._positions[key]

    def position(self, position_id: str) -> PositionStops | None:
        key = self._position_keys.get(position_id)
        return None if key is None else self._positions[key][position_id]

    # -- the check ---------------------------------------------------------------------------------

    def hits(
        self,
        group_id: str,
        symbol: str,
        bid: Decimal,
        ask: Decimal,
        now: datetime | None = None,
    ) -> Iterator[Hit]:
        """Everything the quote (bid, ask) of (group, symbol) triggers, orders first; a paused
        order only once its pause is over at `now` (never without `now`)."""
        key = (group_id, symbol)
        for order in tuple(self._orders.get(key, {}).values()):
            until = self._paused.get(order.order_id)
            if until is not None and (now is None or now < until):
                continue
            kind = order_hit(order, bid, ask)
            if kind is not None:
                yield Hit(kind, order)
        for position in tuple(self._positions.get(key, {}).values()):
            kind = position_hit(position, bid, ask)
            if kind is not None:
                yield Hit(kind, position)

    def clear(self) -> None:
        self._orders.clear()
        self._positions.clear()
        self._order_keys.clear()
        self._position_keys.clear()
        self._paused.clear()

    @property
    def sizes(self) -> tuple[int, int]:
        """(orders, positions) held."""
        return len(self._order_keys), len(self._position_keys)

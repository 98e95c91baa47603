"""How orders committed WORKING reach the STP desk (issue 12 item 7, ADR 0007).

The desk must work every STP market order, and every IOC or FOK STP limit order, that commits
WORKING: a market order joins its instrument's netting window, a limit order is tried at once.
As the outbox relay does with its rows, the desk is driven by the committed state, two ways:

- the hand-off after the commit (`placement.hand_over`, in the work `Placement.commits` runs
  detached from the request, so a client's deadline or disconnect cannot stop it halfway): the
  normal, prompt way in;
- a sweep, every `SWEEP_EVERY` on the desk's worker, of the orders the desk must work that are
  WORKING in no hedge order and not held by the desk (`Intake`: in an open window, or waiting
  for the job that closes the window or tries the limit order, or in it; nor waiting in the
  desk for a live price, `price_waits.PriceWaits`), taken when two
  sweeps in a row find them so (a hand-off follows its commit within microseconds, so an order
  found loose twice a second apart was missed, not merely on its way). What it finds, a
  hand-off missed: the process stopped between a commit and its hand-off, a sink failed, or a
  job failed every one of its tries (PostgreSQL away for long). One statement per sweep, over
  the partial index `orders_stp_unworked` (migration 0014), which holds only the WORKING STP
  orders of those kinds: the sweep reads the orders in flight, never the table, and the order
  path pays nothing per order.

GTC and DAY STP limit orders and STP stop orders are the trigger engine's: it learns of them
from the hand-off, from the committed `oms.order.>` events and from its reload every 30 s, and
hands them to the desk when their price is reached (after the pre-trade check of a trigger).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.model import OrderType
from services.platform.metrics import REGISTRY

__all__ = [
    "SWEEP_EVERY",
    "SWEPT",
    "UNWORKED_SQL",
    "Intake",
    "Unworked",
    "unworked",
]

SWEEP_EVERY: Final = timedelta(seconds=1)
_BATCH: Final = 500
UNWORKED_SQL: Final = (
    "SELECT o.id::text, o.account_id::text, o.symbol, o.type FROM oms.orders o"
    " WHERE o.execution_mode = 'STP' AND o.status = 'WORKING'"
    " AND (o.type = 'MARKET' OR (o.type = 'LIMIT' AND o.time_in_force IN ('IOC', 'FOK')))"
    " AND NOT EXISTS (SELECT 1 FROM oms.hedge_order_orders l WHERE l.order_id = o.id)"
    " ORDER BY o.created_at, o.id LIMIT :batch"
)

SWEPT = Counter(
    "tradingmesh_oms_stp_orders_swept",
    "STP orders committed WORKING that the desk's sweep found not taken (a hand-off was lost)",
    ["type"],
    registry=REGISTRY,
)


@dataclass(frozen=True)
class Unworked:
    """An order committed WORKING that the desk must work, in no hedge order."""

    order_id: str
    account_id: str
    symbol: str
    type: OrderType

    @property
    def market(self) -> bool:
        """A market order (joins a window); else an IOC or FOK limit order (tried at once)."""
        return self.type is OrderType.MARKET


class Intake:
    """The orders the desk holds: taken into an open window, or handed to a job on its worker
    (the window's close, a limit order's attempt) that has not finished. The sweep leaves them
    alone: their job will settle or hedge them, or, failing every try, release them to it.

    A set, not a count: an order taken twice (a window's close skips one already hedged) is
    released by the first job that ends; the worst that follows is one more harmless take by
    the sweep, never an order held for good."""

    def __init__(self) -> None:
        self._held: set[str] = set()
        self._loose: set[str] = set()  # found not held by the last sweep

    def hold(self, order_ids: Iterable[str]) -> None:
        self._held.update(order_ids)

    def release(self, order_ids: Iterable[str]) -> None:
        self._held.difference_update(order_ids)

    def holds(self, order_id: str) -> bool:
        return order_id in self._held

    def __len__(self) -> int:
        return len(self._held)

    def missed(self, found: Sequence[Unworked]) -> list[Unworked]:
        """The orders of this sweep that nothing holds and that the last sweep found so too:
        their hand-off was lost (the desk takes them now). One found loose for the first time
        may be between its commit and its hand-off: the next sweep decides."""
        loose = [order for order in found if order.order_id not in self._held]
        missed = [order for order in loose if order.order_id in self._loose]
        self._loose = {order.order_id for order in loose} - {order.order_id for order in missed}
        return missed


async def unworked(session: AsyncSession) -> list[Unworked]:
    """The STP orders the desk must work, WORKING in no hedge order; oldest first, at most
    `_BATCH` (the rest at a later sweep). Its WHERE repeats the partial index's predicate, so
    PostgreSQL reads that index only."""
    rows = await session.execute(text(UNWORKED_SQL), {"batch": _BATCH})
    return [Unworked(r[0], r[1], r[2], OrderType(r[3])) for r in rows]

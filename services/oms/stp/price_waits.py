"""The STP orders waiting for a live price (issue #18, ADR 0007; the desk's module doc).

An order acknowledged WORKING is not rejected because our own price feed blinked: when its
group has no live price at its window's close, or when an IOC or FOK limit order is tried, the
desk (`desk.StpDesk`) leaves it WORKING in no hedge order and it waits here, in memory. Every
`PRICE_RECHECK` the waiting orders are looked at without touching the database: one whose group
has a live quote of its symbol again, or whose wait (`TM_OMS_STP_PRICE_WAIT_S` after its
creation) is over, is handed back to the desk through the callbacks it gave: a market order
joins a new window, a limit order is tried again (and either is REJECTED / PRICE_UNAVAILABLE
there if it is past its wait and the price is still not there, `rules.unpriced`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from typing import Final

from services.oms.feeds.quotes import QuoteBook
from services.oms.model import OrderRow

__all__ = ["PRICE_RECHECK", "PriceWait", "PriceWaits"]

log = logging.getLogger(__name__)

# How often the orders waiting for a live price look for one (in memory: the quote book).
PRICE_RECHECK: Final = timedelta(milliseconds=250)


@dataclass(frozen=True)
class PriceWait:
    """An order waiting for a live price of its group's `symbol` until `due` (`unpriced`): a
    market order rejoins a window, a limit order is tried again."""

    symbol: str
    account_id: str
    group_id: str
    due: datetime
    market: bool


@dataclass(eq=False)
class PriceWaits:
    """The waiting orders, by order id. `join(symbol, order_id, account_id)` puts a market
    order back in a window, `try_limit(order_id, account_id)` tries a limit order again;
    `call_later` is the desk's timer (`worker.DeskWorker.call_later`)."""

    quotes: QuoteBook
    clock: Callable[[], datetime]
    price_wait: timedelta
    call_later: Callable[[timedelta, Callable[[], None]], None]
    join: Callable[[str, str, str], None] = field(kw_only=True)
    try_limit: Callable[[str, str], None] = field(kw_only=True)
    # order id -> its wait for a live price
    _waits: dict[str, PriceWait] = field(default_factory=dict, init=False)
    _armed: bool = field(default=False, init=False)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._waits

    def __len__(self) -> int:
        return len(self._waits)

    @property
    def armed(self) -> bool:
        """Whether a look for the prices is due (`check`)."""
        return self._armed

    def wait_of(self, order: OrderRow, group_id: str, *, market: bool) -> PriceWait:
        """The wait of `order` (of an account of `group_id`), due its price wait after its
        creation."""
        return PriceWait(
            order.symbol, order.account_id, group_id, order.created_at + self.price_wait, market
        )

    def add(self, waits: Mapping[str, PriceWait]) -> None:
        """The orders (committed WORKING, in no hedge order) wait for a live price: looked for
        every `PRICE_RECHECK` (`check`)."""
        if not waits:
            return
        self._waits.update(waits)
        log.info(
            "STP orders wait for a live price",
            extra={
                "orders": len(waits),
                "symbols": sorted({w.symbol for w in waits.values()}),
                "order_ids": sorted(waits)[:20],
            },
        )
        self._arm()

    def clear(self) -> None:
        """Forgets every wait (the desk stops: its orders, WORKING in no hedge order, rejoin
        windows after the restart or on the next leader)."""
        self._waits.clear()
        self._armed = False

    def _arm(self) -> None:
        if self._waits and not self._armed:
            self._armed = True
            self.call_later(PRICE_RECHECK, self.check)

    def check(self) -> None:
        """The waiting orders whose group has a live price again, or whose wait is over, are
        taken again: a market order joins its window, a limit order is tried (either ends it
        REJECTED / PRICE_UNAVAILABLE if it is past its wait and the price is still not
        there). The others wait on; nothing here reads the database."""
        self._armed = False
        now = self.clock()
        for order_id, wait in list(self._waits.items()):
            if now < wait.due and self.quotes.live(wait.group_id, wait.symbol, now) is None:
                continue
            del self._waits[order_id]
            if wait.market:
                self.join(wait.symbol, order_id, wait.account_id)
            else:
                self.try_limit(order_id, wait.account_id)
        self._arm()

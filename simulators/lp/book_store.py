"""The LP simulator's book on disk: its orders' states and its fills survive its restarts.

A real LP remembers the orders it took across its own restarts, and the OMS relies on it: an
Order Status answer "unknown order" (OrdRejReason 5) is read as "the NewOrderSingle never
arrived", and the hedge order is sent again under the same ClOrdID (ADR 0007, issue #18). A
simulator that forgot its book on restart would make that reading wrong (an order it filled
would be "unknown" and sent twice), so the book is kept in a file of its working directory, as
its FIX store is.

The file is a journal, one JSON object per line: `{"o": [session, ClOrdID, state]}` for an
order's state, `{"f": [client, ClOrdID, filled]}` for its fills. Each line is written and
flushed when the state changes (the operating system keeps it across a SIGKILL of the
process; the simulator is not meant to survive a machine crash). At start the journal is read
(the last line per key wins; a torn last line is ignored) and written again compactly.

An order still PENDING_NEW in the journal was taken but not executed when the simulator died
(its queue is in memory): it comes back CANCELLED with nothing filled, which is what happened
to it, and a status request says so.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from decimal import Decimal
from pathlib import Path
from typing import IO
from typing import Any

from simulators.lp.market import Order
from simulators.lp.market import Side
from simulators.lp.market import TimeInForce

log = logging.getLogger("lpsim")

PENDING_NEW, CANCELLED = "A", "4"
RESTARTED = "cancelled: the LP restarted before executing it"

Journal = OrderedDict[tuple[str, str], dict[str, Any]]


def _order(data: dict[str, Any] | None) -> Order | None:
    if data is None:
        return None
    limit = data["limit_price"]
    return Order(
        data["client_order_id"],
        data["symbol"],
        Side(data["side"]),
        Decimal(data["quantity"]),
        None if limit is None else Decimal(limit),
        TimeInForce(data["time_in_force"]),
    )


def _order_json(order: Order | None) -> dict[str, Any] | None:
    if order is None:
        return None
    return {
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "quantity": str(order.quantity),
        "limit_price": None if order.limit_price is None else str(order.limit_price),
        "time_in_force": order.time_in_force.value,
    }


class BookFile:
    """The journal at `path`; `load` once at start, then `order` and `filled` per change.
    Callers serialize calls (the simulator holds its book lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._lock = threading.Lock()

    def load(self, book_size: int) -> tuple[Journal, Journal]:
        """(orders, fills) as JSON-ready dicts keyed (session or client, ClOrdID), oldest
        first, the last `book_size` of each; the journal rewritten with just those."""
        orders: Journal = OrderedDict()
        fills: Journal = OrderedDict()
        if self.path.exists():
            with self.path.open(encoding="utf-8") as journal:
                for line in journal:
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line torn by a kill while it was written
                    for kind, target in (("o", orders), ("f", fills)):
                        if kind in entry:
                            owner, client_order_id, state = entry[kind]
                            key = (owner, client_order_id)
                            target[key] = state
                            target.move_to_end(key)
        for target in (orders, fills):
            while len(target) > book_size:
                target.popitem(last=False)
        for key, state in orders.items():
            if state["status"] == PENDING_NEW:
                orders[key] = {
                    **state,
                    "status": CANCELLED,
                    "leaves": "0",
                    "text": RESTARTED,
                }
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as compact:
            for (owner, client_order_id), state in orders.items():
                compact.write(json.dumps({"o": [owner, client_order_id, state]}) + "\n")
            for (owner, client_order_id), state in fills.items():
                compact.write(json.dumps({"f": [owner, client_order_id, state]}) + "\n")
        os.replace(temporary, self.path)
        self._file = self.path.open("a", encoding="utf-8")
        if orders or fills:
            log.info(
                "book loaded from %s: %d orders, %d filled", self.path, len(orders), len(fills)
            )
        return orders, fills

    def order(self, session: str, client_order_id: str, state: dict[str, Any]) -> None:
        self._write({"o": [session, client_order_id, state]})

    def filled(self, client: str, client_order_id: str, state: dict[str, Any]) -> None:
        self._write({"f": [client, client_order_id, state]})

    def _write(self, entry: dict[str, Any]) -> None:
        with self._lock:
            if self._file is None:
                return
            self._file.write(json.dumps(entry) + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def order_state_json(
    symbol: str,
    side: str,
    quantity: Decimal,
    status: str,
    cumulative: Decimal,
    leaves: Decimal,
    average: Decimal,
    text: str,
    order: Order | None,
) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "side": side,
        "quantity": str(quantity),
        "status": status,
        "cumulative": str(cumulative),
        "leaves": str(leaves),
        "average": str(average),
        "text": text,
        "order": _order_json(order),
    }


def order_of(state: dict[str, Any]) -> Order | None:
    return _order(state.get("order"))

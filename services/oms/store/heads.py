"""Where an account stands, as this process last committed it (ADR 0009, optimistic order entry).

Order entry writes an order's change as ONE statement that checks the head it was decided on
(`changes.AccountChange.prepared`). Two orders of one account decided from the same head would
make one of them write nothing and start again, so the orders of an account in this process go
one at a time (`serialized`), and each starts from the head the one before committed
(`committed` and `newer`) when that is newer than what its own read saw. Changes made elsewhere
(another process, a locking change in this one) are caught by the statement's check, never
trusted from here: this is a hint that saves a conflict, not a source of truth.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from services.oms.store.changes import Head

__all__ = ["Heads"]

_KEPT: Final = 10_000  # accounts whose last head is kept (the most recently used)


class Heads:
    def __init__(self, kept: int = _KEPT) -> None:
        self._kept = kept
        self._heads: OrderedDict[str, Head] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}

    @asynccontextmanager
    async def serialized(self, account_id: str) -> AsyncIterator[None]:
        """The block runs alone among this process's blocks for the same account."""
        lock = self._locks.get(account_id)
        if lock is None:
            lock = self._locks[account_id] = asyncio.Lock()
        self._waiting[account_id] = self._waiting.get(account_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            left = self._waiting[account_id] - 1
            if left:
                self._waiting[account_id] = left
            else:
                del self._waiting[account_id]
                del self._locks[account_id]

    def newer(self, account_id: str, head: Head) -> Head:
        """`head`, or the head this process committed since, if it is newer and for the same
        symbol (its netting position is known only for that symbol)."""
        known = self._heads.get(account_id)
        if known is not None and known.sequence > head.sequence and known.symbol == head.symbol:
            return known
        return head

    def committed(self, account_id: str, head: Head) -> None:
        self._heads[account_id] = head
        self._heads.move_to_end(account_id)
        while len(self._heads) > self._kept:
            self._heads.popitem(last=False)

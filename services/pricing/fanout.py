"""One client group's prices fanned out to the quote streams of this process (ADR 0006, 0008).

Pure: no I/O and no clock. The stream hub (`quotes.py`) feeds a `GroupFanout` the group's
prices as they are published and calls `flush` at most once per coalescing interval, so that a
burst of prices costs each stream one response, and a tick touches only the streams that asked
for its symbol (an index by symbol, never a scan of every stream).

Each stream keeps only the newest tick per symbol not yet written (conflation): a slow reader
gets the latest price when it reads, never a backlog.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable

from tradingmesh.pricing.v1 import pricing_service_pb2

Tick = pricing_service_pb2.QuoteTick
Response = pricing_service_pb2.StreamQuotesResponse


class ClientStream:
    """One StreamQuotes call: the newest tick per symbol and the stale marks not yet written."""

    __slots__ = ("changed", "group_id", "latest", "lost", "quiet", "stale", "symbols")

    def __init__(self, group_id: str, symbols: Iterable[str]) -> None:
        self.group_id = group_id
        self.symbols = frozenset(symbols)
        self.latest: dict[str, Tick] = {}
        self.stale: set[str] = set()
        self.changed = asyncio.Event()
        self.quiet = 0  # heartbeat periods since the last response
        self.lost = False  # its prices can no longer be followed (Redis lost): the call ends

    def offer(self, tick: Tick) -> None:
        self.latest[tick.symbol] = tick  # replaces an unwritten older tick: conflation
        self.stale.discard(tick.symbol)
        self.changed.set()

    def mark_stale(self, symbol: str) -> None:
        self.latest.pop(symbol, None)
        self.stale.add(symbol)
        self.changed.set()

    def take(self) -> Response:
        """The response to write now: everything not yet written (empty: a heartbeat)."""
        response = Response(
            quotes=self.latest.values(), stale_symbols=sorted(self.stale) if self.stale else ()
        )
        if self.latest:
            self.latest = {}
        if self.stale:
            self.stale = set()
        self.quiet = 0
        self.changed.clear()
        return response

    def lose(self) -> None:
        """Its prices can no longer be followed: `next` returns at once, `lost` is set."""
        self.lost = True
        self.changed.set()

    async def next(self) -> Response:
        """The next response, once there is something to write (or a heartbeat is due), or
        once the stream was lost (`lost`: the caller ends the call)."""
        await self.changed.wait()
        return self.take()


class GroupFanout:
    """The streams of one client group in this process, indexed by symbol; the group's newest
    prices (every new stream's snapshot); and the changes waiting for the next flush."""

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.members: set[ClientStream] = set()
        self.newest: dict[str, Tick] = {}
        self.stale: set[str] = set()
        self.last_flush = -math.inf
        self._newest_ns: dict[str, int] = {}  # when the price behind newest[symbol] was made
        self._wanting: dict[str, set[ClientStream]] = {}  # symbol -> indexed streams
        # Streams added while changes were pending, with the snapshot each was given: the next
        # flush hands them what their snapshot lacks, then indexes them.
        self._joining: dict[ClientStream, dict[str, Tick | None]] = {}
        self._pending: dict[str, Tick] = {}
        self._pending_stale: set[str] = set()

    # -- prices in -----------------------------------------------------------------------------

    def price(self, tick: Tick, made_ns: int) -> bool:
        """Takes a published price made at `made_ns` (its quote_time); False, changing nothing,
        if the price held is as new (the same price seen twice, or an older one read late)."""
        symbol = tick.symbol
        if made_ns <= self._newest_ns.get(symbol, -1):
            return False
        self._newest_ns[symbol] = made_ns
        self.newest[symbol] = tick
        self.stale.discard(symbol)
        self._pending[symbol] = tick
        self._pending_stale.discard(symbol)
        return True

    def went_stale(self, symbol: str) -> bool:
        """The symbol's price stopped being live; False if it was already marked."""
        if symbol in self.stale:
            return False
        self.stale.add(symbol)
        self._pending.pop(symbol, None)
        self._pending_stale.add(symbol)
        return True

    def resync(self, prices: Iterable[tuple[Tick, int]], stale: Iterable[str]) -> None:
        """The group as Redis holds it, read in one transaction after (re)subscribing: newer
        prices are taken; a symbol stale there is marked stale, unless a price newer than the
        one stored beside the mark has arrived on the subscription meanwhile."""
        stored: dict[str, int] = {}
        for tick, made_ns in prices:
            self.price(tick, made_ns)
            stored[tick.symbol] = made_ns
        for symbol in stale:
            if self._newest_ns.get(symbol, -1) <= stored.get(symbol, -1):
                self.went_stale(symbol)

    @property
    def pending(self) -> bool:
        return bool(self._pending or self._pending_stale or self._joining)

    # -- streams -------------------------------------------------------------------------------

    def add(self, stream: ClientStream) -> None:
        """Gives the stream its snapshot (the newest price of each of its symbols, or the mark
        that it has none that is live) and wakes it, so that its first response goes at once."""
        snapshot: dict[str, Tick | None] = {}
        for symbol in stream.symbols:
            tick = None if symbol in self.stale else self.newest.get(symbol)
            snapshot[symbol] = tick
            if tick is None:
                stream.stale.add(symbol)
            else:
                stream.latest[symbol] = tick
        stream.changed.set()
        self.members.add(stream)
        if self._pending or self._pending_stale:
            self._joining[stream] = snapshot
        else:
            self._index(stream)

    def remove(self, stream: ClientStream) -> None:
        self.members.discard(stream)
        if self._joining.pop(stream, None) is not None:
            return
        for symbol in stream.symbols:
            wanting = self._wanting.get(symbol)
            if wanting is not None:
                wanting.discard(stream)
                if not wanting:
                    del self._wanting[symbol]

    def wanting(self, symbol: str) -> frozenset[ClientStream]:
        """The streams a tick of `symbol` goes to (those indexed by it)."""
        return frozenset(self._wanting.get(symbol, ()))

    def _index(self, stream: ClientStream) -> None:
        for symbol in stream.symbols:
            self._wanting.setdefault(symbol, set()).add(stream)

    # -- out -----------------------------------------------------------------------------------

    def flush_at(self, now: float, interval: float) -> float:
        """When the next flush may run: now, unless the last one is less than `interval` ago."""
        return max(now, self.last_flush + interval)

    def flush(self, now: float) -> int:
        """Hands every change since the last flush to the streams that want it, each woken once;
        returns the number of ticks handed over."""
        self.last_flush = now
        prices, stale = self._pending, self._pending_stale
        self._pending, self._pending_stale = {}, set()
        handed = 0
        wanting = self._wanting
        for symbol, tick in prices.items():
            streams = wanting.get(symbol)
            if not streams:
                continue
            handed += len(streams)
            for stream in streams:  # the hot loop: ClientStream.offer, inlined
                stream.latest[symbol] = tick
                if stream.stale:
                    stream.stale.discard(symbol)
                stream.changed.set()
        for symbol in stale:
            for stream in wanting.get(symbol, ()):
                stream.mark_stale(symbol)
        if self._joining:
            handed += self._admit(prices, stale)
        return handed

    def _admit(self, prices: dict[str, Tick], stale: set[str]) -> int:
        """The streams that joined since the last flush: what changed after their snapshot,
        then into the index."""
        handed = 0
        for stream, snapshot in self._joining.items():
            for symbol, tick in prices.items():
                if symbol in stream.symbols and snapshot[symbol] is not tick:
                    stream.offer(tick)
                    handed += 1
            for symbol in stale:
                if symbol in stream.symbols and snapshot[symbol] is not None:
                    stream.mark_stale(symbol)
            self._index(stream)
        self._joining.clear()
        return handed

    def heartbeat(self, periods: int) -> int:
        """One heartbeat period has passed: wakes the streams that have written nothing for
        `periods` of them (their next response is empty, a heartbeat); returns how many."""
        woken = 0
        for stream in self.members:
            stream.quiet += 1
            if stream.quiet >= periods:
                stream.changed.set()
                woken += 1
        return woken

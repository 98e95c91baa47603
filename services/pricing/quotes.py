"""Published prices in Redis (ADR 0006): the wire forms, the latest-price reader, the stream hub.

Redis layout, per client group:
    pricing:quotes:<group_id>   hash  symbol -> tradingmesh.pricing.v1.Quote (bytes), the newest
    pricing:stale:<group_id>    set   symbols whose newest price is no longer live
    channel pricing:quotes:<group_id>   each new Quote (bytes)
    channel pricing:stale:<group_id>    a symbol that stopped being live

A process subscribes once per group and fans prices out to its streams. Each stream keeps only
the newest tick per symbol (conflation): a slow reader gets the latest price when it reads,
never a backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from decimal import Decimal

import redis.asyncio

from services.pricing.model import MarkupKind, PublishedPrice, SourceRef
from tradingmesh.common.v1.pricing_pb2 import MarkupType
from tradingmesh.pricing.v1 import pricing_pb2, pricing_service_pb2

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
_MARKUP_TYPE = {
    MarkupKind.POINTS: MarkupType.MARKUP_TYPE_POINTS,
    MarkupKind.PERCENT: MarkupType.MARKUP_TYPE_PERCENT,
}


def quotes_key(group_id: str) -> str:
    return f"pricing:quotes:{group_id}"


def stale_key(group_id: str) -> str:
    return f"pricing:stale:{group_id}"


def _text(value: Decimal) -> str:
    return format(value, "f")


def _source(ref: SourceRef) -> pricing_pb2.LiquidityProviderQuoteRef:
    message = pricing_pb2.LiquidityProviderQuoteRef(
        liquidity_provider_id=ref.lp,
        lp_quote_id=ref.lp_entry_id,
        sequence=ref.sequence,
        raw_price=_text(ref.raw_price),
    )
    if ref.lp_time is not None:
        message.lp_quote_time.FromDatetime(ref.lp_time)
    message.receive_time.FromDatetime(ref.received_at)
    return message


def quote_message(price: PublishedPrice) -> pricing_pb2.Quote:
    """The contract's Quote for a published price, with its provenance."""
    quote = pricing_pb2.Quote(
        symbol=price.symbol,
        bid=_text(price.bid),
        ask=_text(price.ask),
        spread=_text(price.ask - price.bid),
        stale=False,
    )
    quote.quote_time.FromDatetime(price.time)
    provenance = quote.provenance
    provenance.bid_source.CopyFrom(_source(price.bid_source))
    provenance.ask_source.CopyFrom(_source(price.ask_source))
    provenance.markup.type = _MARKUP_TYPE[price.markup.kind]
    provenance.markup.value = _text(price.markup.value)
    provenance.markup.bid_markup = _text(price.bid_markup)
    provenance.markup.ask_markup = _text(price.ask_markup)
    return quote


def tick_of(quote: pricing_pb2.Quote, digits: int) -> pricing_service_pb2.QuoteTick:
    """The compact fixed-point tick of a Quote: exact integer units of 10^-digits."""
    return pricing_service_pb2.QuoteTick(
        symbol=quote.symbol,
        bid_units=int(Decimal(quote.bid).scaleb(digits)),
        ask_units=int(Decimal(quote.ask).scaleb(digits)),
        price_scale=digits,
        time_unix_ms=quote.quote_time.ToMilliseconds(),
    )


class QuoteReader:
    """GetQuote and ListQuotes: the newest price of a group from Redis."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.redis = client

    async def read(self, group_id: str, symbols: list[str]) -> dict[str, pricing_pb2.Quote]:
        """The newest quote of each symbol that has one, `stale` set where it is not live."""
        if not symbols:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(quotes_key(group_id), symbols)
        pipe.smembers(stale_key(group_id))
        raw, stale = await pipe.execute()
        stale_symbols = {s.decode() if isinstance(s, bytes) else s for s in stale}
        quotes = {}
        for symbol, data in zip(symbols, raw, strict=True):
            if data is None:
                continue
            quote = pricing_pb2.Quote.FromString(data)
            quote.stale = symbol in stale_symbols
            quotes[symbol] = quote
        return quotes


class ClientStream:
    """One StreamQuotes call: the newest tick per symbol, waiting to be read."""

    def __init__(self, group_id: str, symbols: Iterable[str]) -> None:
        self.group_id = group_id
        self.symbols = frozenset(symbols)
        self.latest: dict[str, pricing_service_pb2.QuoteTick] = {}
        self.stale: set[str] = set()
        self.changed = asyncio.Event()

    def offer(self, tick: pricing_service_pb2.QuoteTick) -> None:
        self.latest[tick.symbol] = tick  # replaces an unread older tick: conflation
        self.stale.discard(tick.symbol)
        self.changed.set()

    def mark_stale(self, symbol: str) -> None:
        self.latest.pop(symbol, None)
        self.stale.add(symbol)
        self.changed.set()

    async def next(
        self, heartbeat: float = HEARTBEAT_SECONDS
    ) -> pricing_service_pb2.StreamQuotesResponse:
        """The changes since the last call; an empty response after `heartbeat` seconds without."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), heartbeat)
        self.changed.clear()
        response = pricing_service_pb2.StreamQuotesResponse(
            quotes=list(self.latest.values()), stale_symbols=sorted(self.stale)
        )
        self.latest = {}
        self.stale = set()
        return response


class StreamHub:
    """One Redis subscription per client group in this process, fanned out to its streams."""

    def __init__(self, client: redis.asyncio.Redis, digits: dict[str, int]) -> None:
        self.redis = client
        self.digits = digits
        self.streams: dict[str, set[ClientStream]] = {}
        self.listeners: dict[str, asyncio.Task[None]] = {}
        self.ready: dict[str, asyncio.Event] = {}

    async def open(self, group_id: str, symbols: list[str]) -> ClientStream:
        """Registers a stream and fills it with the snapshot (the newest price of each symbol)."""
        stream = ClientStream(group_id, symbols)
        self.streams.setdefault(group_id, set()).add(stream)
        if group_id not in self.listeners:
            self.ready[group_id] = asyncio.Event()
            self.listeners[group_id] = asyncio.create_task(
                self._listen(group_id), name=f"quotes-{group_id}"
            )
        await self.ready[group_id].wait()
        # Subscribed first, then the snapshot: a tick that arrives in between is not lost.
        snapshot = await QuoteReader(self.redis).read(group_id, symbols)
        for symbol in symbols:
            quote = snapshot.get(symbol)
            if quote is None or quote.stale:
                stream.stale.add(symbol)
            elif symbol not in stream.latest:
                stream.latest[symbol] = tick_of(quote, self.digits.get(symbol, 0))
        stream.changed.set()  # the first response goes out at once, even if empty
        return stream

    def close(self, stream: ClientStream) -> None:
        self.streams.get(stream.group_id, set()).discard(stream)

    async def stop(self) -> None:
        for task in self.listeners.values():
            task.cancel()
        for task in self.listeners.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self, group_id: str) -> None:
        quotes_channel, stale_channel = quotes_key(group_id), stale_key(group_id)
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(quotes_channel, stale_channel)
                self.ready[group_id].set()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None:
                        continue
                    channel = message["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else channel
                    streams = self.streams.get(group_id, ())
                    if channel == quotes_channel:
                        quote = pricing_pb2.Quote.FromString(message["data"])
                        wanted = [s for s in streams if quote.symbol in s.symbols]
                        if wanted:
                            tick = tick_of(quote, self.digits.get(quote.symbol, 0))
                            for stream in wanted:
                                stream.offer(tick)
                    else:
                        data = message["data"]
                        symbol = data.decode() if isinstance(data, bytes) else str(data)
                        for stream in streams:
                            if symbol in stream.symbols:
                                stream.mark_stale(symbol)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("quote subscription lost; resubscribing", extra={"group": group_id})
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

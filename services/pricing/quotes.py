"""Published prices in Redis (ADR 0006): the wire forms, the latest-price reader, the stream hub.

Redis layout, per client group:
    pricing:quotes:<group_id>   hash  symbol -> tradingmesh.pricing.v1.Quote (bytes), the newest
    pricing:stale:<group_id>    set   symbols whose newest price is no longer live
    channel pricing:quotes:<group_id>   each new Quote (bytes)
    channel pricing:stale:<group_id>    a symbol that stopped being live

A process subscribes once to every group it streams (one connection, `subscription.py`) and
fans each group's prices out to its streams (`fanout.py`): each published price is decoded once,
its tick built once and handed only to the streams that asked for its symbol, at most once per
coalescing interval (ADR 0008). Each stream keeps only the newest tick per symbol (conflation):
a slow reader gets the latest price when it reads, never a backlog.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal

import redis
import redis.asyncio
from google.protobuf.message import DecodeError
from prometheus_client import Counter
from prometheus_client import Gauge

from services.platform.errors import DomainError
from services.platform.infra_tls import client_context
from services.platform.metrics import REGISTRY
from services.platform.tasks import cancel_and_wait
from services.pricing.fanout import ClientStream
from services.pricing.fanout import GroupFanout
from services.pricing.model import MarkupKind
from services.pricing.model import PublishedPrice
from services.pricing.model import SourceRef
from services.pricing.subscription import RedisEndpoint
from services.pricing.subscription import Subscription
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.pricing_pb2 import MarkupType
from tradingmesh.pricing.v1 import pricing_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2

log = logging.getLogger(__name__)

QuoteTick = pricing_service_pb2.QuoteTick

HEARTBEAT_SECONDS = 15.0  # the contract: an empty response after 15 s without a change
HEARTBEAT_PERIOD_SECONDS = 1.0
# A stream writes at most one response per interval, with every symbol that changed in it: a
# burst of prices (one LP message moves several symbols) costs one write per stream, not one per
# price. It bounds how long a price waits in this process (ADR 0008).
COALESCE_SECONDS = 0.010
READY_TIMEOUT_SECONDS = 5.0  # for a group's first subscription, before DEPENDENCY_UNAVAILABLE

STREAMS = Gauge("tradingmesh_pricing_quote_streams", "open StreamQuotes calls", registry=REGISTRY)
RECEIVED = Counter(
    "tradingmesh_pricing_stream_prices_received",
    "published prices and stale marks read from the subscription",
    registry=REGISTRY,
)
FLUSHES = Counter(
    "tradingmesh_pricing_stream_flushes", "fan-outs of a group's changes", registry=REGISTRY
)
FANNED_OUT = Counter(
    "tradingmesh_pricing_stream_ticks_fanned_out",
    "ticks handed to streams (one per stream and changed symbol)",
    registry=REGISTRY,
)
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
        try:
            raw, stale = await pipe.execute()
        except redis.RedisError as error:
            # Redis is the cache of published prices: without it, a clear retryable answer
            # (orders still price from NATS, issue #18).
            log.warning("reading quotes from Redis failed", extra={"error": str(error)})
            raise DomainError(
                ErrorReason.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
                "live prices are not available right now",
                retry_after=timedelta(seconds=1),
            ) from None
        stale_symbols = {s.decode() if isinstance(s, bytes) else s for s in stale}
        quotes = {}
        for symbol, data in zip(symbols, raw, strict=True):
            if data is None:
                continue
            quote = pricing_pb2.Quote.FromString(data)
            quote.stale = symbol in stale_symbols
            quotes[symbol] = quote
        return quotes


class StreamHub:
    """The quote streams of this process: one Redis subscription for every client group streamed
    here (`subscription.py`), each group fanned out by a `GroupFanout`, flushed at most once per
    `interval` seconds (ADR 0008)."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        digits: Mapping[str, int],
        *,
        interval: float = COALESCE_SECONDS,
        ready_timeout: float = READY_TIMEOUT_SECONDS,
    ) -> None:
        self.redis = client
        self.digits = digits
        self.interval = interval
        self.ready_timeout = ready_timeout
        self.groups: dict[str, GroupFanout] = {}
        self._ready: dict[str, asyncio.Event] = {}
        # channel -> (its group, True for prices / False for stale marks)
        self._channels: dict[bytes, tuple[GroupFanout, bool]] = {}
        self._confirmed: dict[str, set[bytes]] = {}
        self._due: set[str] = set()  # groups with a flush scheduled
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeats: asyncio.Task[None] | None = None
        self._subscription = Subscription(
            endpoint_of(client), self._on_message, self._on_subscribed, self._on_lost
        )

    async def open(self, group_id: str, symbols: list[str]) -> ClientStream:
        """Registers a stream of the group's `symbols`, with its snapshot ready to be written.

        DEPENDENCY_UNAVAILABLE if the group's prices cannot be followed (Redis unreachable).
        """
        fanout = self.groups.get(group_id)
        if fanout is None:
            fanout = self._follow(group_id)
        ready = self._ready[group_id]
        if not ready.is_set():
            try:
                async with asyncio.timeout(self.ready_timeout):
                    await ready.wait()
            except TimeoutError:
                raise DomainError(
                    ErrorReason.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
                    "live prices are not available right now",
                    retry_after=timedelta(seconds=1),
                ) from None
        stream = ClientStream(group_id, symbols)
        fanout.add(stream)
        STREAMS.inc()
        return stream

    def close(self, stream: ClientStream) -> None:
        fanout = self.groups.get(stream.group_id)
        if fanout is not None and stream in fanout.members:
            fanout.remove(stream)
            STREAMS.dec()

    async def stop(self) -> None:
        await self._subscription.stop()
        tasks = [*self._tasks, *([self._heartbeats] if self._heartbeats else [])]
        await cancel_and_wait(*tasks)

    # -- the subscription ----------------------------------------------------------------------

    def _follow(self, group_id: str) -> GroupFanout:
        fanout = GroupFanout(group_id)
        self.groups[group_id] = fanout
        self._ready[group_id] = asyncio.Event()
        self._confirmed[group_id] = set()
        quotes, stale = quotes_key(group_id).encode(), stale_key(group_id).encode()
        self._channels[quotes] = (fanout, True)
        self._channels[stale] = (fanout, False)
        if self._heartbeats is None:
            self._heartbeats = asyncio.create_task(self._beat(), name="quote-heartbeats")
        self._subscription.subscribe([quotes, stale])
        return fanout

    def _on_lost(self) -> None:
        """The subscription dropped: what is published until it is back is not seen, so the
        open streams end (DEPENDENCY_UNAVAILABLE, the client opens again) and new ones wait for
        the resync (`open`'s timeout)."""
        for group_id, fanout in self.groups.items():
            self._ready[group_id].clear()
            self._confirmed[group_id].clear()
            for stream in list(fanout.members):
                stream.lose()

    def _on_subscribed(self, channel: bytes) -> None:
        entry = self._channels.get(channel)
        if entry is None:
            return
        group_id = entry[0].group_id
        confirmed = self._confirmed[group_id]
        confirmed.add(channel)
        if len(confirmed) == 2:  # both channels: what they carry from now on is not missed
            confirmed.clear()
            task = asyncio.create_task(self._resync(entry[0]), name=f"quotes-resync-{group_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _resync(self, fanout: GroupFanout) -> None:
        """Reads the group's newest prices and stale marks (after each (re)subscription: what
        was published while unsubscribed is not on the channel)."""
        group_id = fanout.group_id
        while True:
            try:
                pipe = self.redis.pipeline(transaction=True)
                pipe.hgetall(quotes_key(group_id))
                pipe.smembers(stale_key(group_id))
                stored, stale = await pipe.execute()
                break
            except redis.RedisError as error:
                log.warning(
                    "reading the group's prices failed; retrying",
                    extra={"group": group_id, "error": str(error)},
                )
                await asyncio.sleep(0.5)
        prices = [self._decode(data) for data in stored.values()]
        fanout.resync(
            [p for p in prices if p is not None],
            [s.decode() if isinstance(s, bytes) else str(s) for s in stale],
        )
        self._ready[group_id].set()
        if fanout.pending:
            self._schedule(fanout)

    def _decode(self, data: bytes) -> tuple[QuoteTick, int] | None:
        """A published Quote as a tick, and when it was made (ns); None if it is not a Quote."""
        try:
            quote = pricing_pb2.Quote.FromString(data)
        except DecodeError:
            log.error("a published price is not a Quote; skipped")
            return None
        return tick_of(quote, self.digits.get(quote.symbol, 0)), quote.quote_time.ToNanoseconds()

    def _on_message(self, channel: bytes, data: bytes) -> None:
        entry = self._channels.get(channel)
        if entry is None:
            return
        fanout, is_price = entry
        RECEIVED.inc()
        if is_price:
            decoded = self._decode(data)
            changed = decoded is not None and fanout.price(*decoded)
        else:
            changed = fanout.went_stale(data.decode(errors="replace"))
        if changed:
            self._schedule(fanout)

    # -- out -----------------------------------------------------------------------------------

    def _schedule(self, fanout: GroupFanout) -> None:
        """A flush as soon as the interval allows: at the earliest after the subscription's
        current pass, so that a burst of prices goes out in one response per stream."""
        if fanout.group_id in self._due:
            return
        self._due.add(fanout.group_id)
        loop = asyncio.get_running_loop()
        loop.call_at(fanout.flush_at(loop.time(), self.interval), self._flush, fanout)

    def _flush(self, fanout: GroupFanout) -> None:
        self._due.discard(fanout.group_id)
        FLUSHES.inc()
        FANNED_OUT.inc(fanout.flush(asyncio.get_running_loop().time()))

    async def _beat(self) -> None:
        periods = max(round(HEARTBEAT_SECONDS / HEARTBEAT_PERIOD_SECONDS), 1)
        while True:
            await asyncio.sleep(HEARTBEAT_PERIOD_SECONDS)
            for fanout in list(self.groups.values()):
                fanout.heartbeat(periods)


def endpoint_of(client: redis.asyncio.Redis) -> RedisEndpoint:
    """Where `client` connects, with its credentials and, over TLS (ADR 0018), the CA it checks
    the server against, for a subscription of our own."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    tls = issubclass(pool.connection_class, redis.asyncio.SSLConnection)
    return RedisEndpoint(
        host=str(kwargs.get("host", "localhost")),
        port=int(kwargs.get("port", 6379)),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        tls=client_context(kwargs.get("ssl_ca_certs")) if tls else None,
    )

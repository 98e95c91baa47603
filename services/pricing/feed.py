"""The price feed: gateway callbacks in, engine in the middle, NATS and Redis out (ADR 0006).

Everything here runs on the service's event loop. Engine output is conflated at the source:
between two flushes only the newest price per group and symbol is kept, so a burst of LP ticks
costs one Redis round trip, never a queue. Quotes go to NATS with a plain (core) publish, which
the PRICING_QUOTES stream captures; they are conflatable and need no acknowledgement.

NATS comes first and does not wait for Redis (issue #18): the OMS and risk price orders from
NATS, and Redis is a cache for clients (GetQuote, StreamQuotes). Redis is written by a task of
its own from its own conflated pending set, so a Redis that is down or frozen delays nothing on
NATS; it is tried again every `REDIS_RETRY_SECONDS` with the newest prices while it fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter as Tally
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from typing import Protocol

import redis.asyncio
from nats.aio.client import Client as NatsClient
from prometheus_client import Counter
from prometheus_client import Gauge

from services.platform.metrics import REGISTRY
from services.platform.tasks import cancel_and_wait
from services.pricing.engine import PricingEngine
from services.pricing.engine import Update
from services.pricing.gateway import LpStatus
from services.pricing.gateway import SessionState
from services.pricing.model import LpQuote
from services.pricing.model import PublishedPrice
from services.pricing.quotes import quote_message
from services.pricing.quotes import quotes_key
from services.pricing.quotes import stale_key
from tradingmesh.common.v1.types_pb2 import ActorKind
from tradingmesh.pricing.v1 import pricing_events_pb2

log = logging.getLogger(__name__)

LP_TICKS = Counter(
    "tradingmesh_pricing_lp_ticks", "LP top-of-book updates received", ["lp"], registry=REGISTRY
)
PUBLISHED = Counter(
    "tradingmesh_pricing_prices_published", "prices published to client groups", registry=REGISTRY
)
LAST_PRICE = Gauge(
    "tradingmesh_pricing_last_price_timestamp_seconds",
    "when a price of the symbol was last published to any client group (Unix time)",
    ["symbol"],
    registry=REGISTRY,
)
LP_UP = Gauge(
    "tradingmesh_pricing_lp_session_up",
    "1 while the LP's FIX session is logged on",
    ["lp"],
    registry=REGISTRY,
)
LP_SERVING = Gauge(
    "tradingmesh_pricing_lp_serving",
    "1 while the LP's session is logged on and its market data neither refused nor silent",
    ["lp"],
    registry=REGISTRY,
)
REDIS_UP = Gauge(
    "tradingmesh_pricing_redis_up",
    "1 while the last write of prices to Redis succeeded (GetQuote and StreamQuotes read them)",
    registry=REGISTRY,
)
EXPIRE_INTERVAL = 0.1
REDIS_RETRY_SECONDS = 0.5


def symbol_token(symbol: str) -> str:
    """The NATS token of a symbol ("." separates tokens; "~" cannot occur in a symbol)."""
    return symbol.replace(".", "~")


class TickSink(Protocol):
    def add_lp_ticks(self, quotes: list[LpQuote]) -> None: ...
    def add_published(self, prices: list[PublishedPrice]) -> None: ...


class PriceFeed:
    def __init__(
        self,
        engine: PricingEngine,
        redis_client: redis.asyncio.Redis,
        nats: NatsClient,
        ticks: TickSink | None = None,
        on_lp_status: Callable[[LpStatus], None] = lambda status: None,
    ) -> None:
        self.engine = engine
        self.redis = redis_client
        self.nats = nats
        self.ticks = ticks
        self.on_lp_status = on_lp_status
        self.pending: dict[tuple[str, str], PublishedPrice] = {}
        self.pending_stale: set[tuple[str, str]] = set()
        self.wake = asyncio.Event()
        # What Redis has not been given yet, conflated like `pending` (its own writer).
        self.cache_pending: dict[tuple[str, str], PublishedPrice] = {}
        self.cache_pending_stale: set[tuple[str, str]] = set()
        self.cache_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- input (event loop) --------------------------------------------------------------------

    def on_quotes(self, quotes: list[LpQuote]) -> None:
        if not quotes:
            return
        for lp, count in Tally(quote.lp for quote in quotes).items():
            LP_TICKS.labels(lp).inc(count)
        if self.ticks is not None:
            self.ticks.add_lp_ticks(quotes)
        self.take(self.engine.on_quotes(quotes, datetime.now(UTC)))

    def on_state(self, status: LpStatus) -> None:
        up = status.state is SessionState.LOGGED_ON
        LP_UP.labels(status.lp).set(1 if up else 0)
        LP_SERVING.labels(status.lp).set(1 if status.serving else 0)
        if up:
            self.engine.lp_up(status.lp)
        else:
            self.take(self.engine.lp_down(status.lp, datetime.now(UTC)))
        self.on_lp_status(status)

    def take(self, update: Update) -> None:
        for price in update.prices:
            key = (price.group_id, price.symbol)
            self.pending[key] = price
            self.pending_stale.discard(key)
        for key in update.stale:
            self.pending.pop(key, None)
            self.pending_stale.add(key)
        if update.prices or update.stale:
            self.wake.set()

    # -- output --------------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._publisher(), name="price-publisher"),
            asyncio.create_task(self._expirer(), name="price-expirer"),
            asyncio.create_task(self._cache_writer(), name="price-cache-writer"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)

    async def _expirer(self) -> None:
        while True:
            await asyncio.sleep(EXPIRE_INTERVAL)
            self.take(self.engine.expire(datetime.now(UTC)))

    async def _publisher(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            prices, stale = list(self.pending.values()), self.pending_stale
            self.pending, self.pending_stale = {}, set()
            self._to_cache(prices, stale)
            try:
                await self.publish(prices)
            except Exception:
                # Dropped, not retried: the next price supersedes these.
                log.exception("publishing prices failed", extra={"prices": len(prices)})
                await asyncio.sleep(0.2)

    def _to_cache(self, prices: list[PublishedPrice], stale: set[tuple[str, str]]) -> None:
        """Hands prices and stale marks to the Redis writer (newest per group and symbol)."""
        for price in prices:
            key = (price.group_id, price.symbol)
            self.cache_pending[key] = price
            self.cache_pending_stale.discard(key)
        for key in stale:
            self.cache_pending.pop(key, None)
            self.cache_pending_stale.add(key)
        if prices or stale:
            self.cache_wake.set()

    async def _cache_writer(self) -> None:
        """Writes what is pending to Redis; while Redis fails, keeps the newest of it and tries
        again every REDIS_RETRY_SECONDS (prices meanwhile reach NATS as usual)."""
        failing = False
        while True:
            await self.cache_wake.wait()
            self.cache_wake.clear()
            prices, stale = list(self.cache_pending.values()), self.cache_pending_stale
            self.cache_pending, self.cache_pending_stale = {}, set()
            try:
                await self.write_cache(prices, stale)
            except Exception as error:
                REDIS_UP.set(0)
                if not failing:
                    log.error(
                        "writing prices to Redis failed: GetQuote and StreamQuotes fall behind"
                        " (NATS still gets every price); retrying",
                        extra={"error": str(error)},
                    )
                failing = True
                # Back in the queue unless something newer came meanwhile.
                for price in prices:
                    self.cache_pending.setdefault((price.group_id, price.symbol), price)
                for key in stale:
                    if key not in self.cache_pending:
                        self.cache_pending_stale.add(key)
                self.cache_wake.set()
                await asyncio.sleep(REDIS_RETRY_SECONDS)
                continue
            REDIS_UP.set(1)
            if failing:
                log.info("writing prices to Redis works again")
                failing = False

    async def write_cache(self, prices: list[PublishedPrice], stale: set[tuple[str, str]]) -> None:
        """The newest prices and stale marks into Redis, with their pub/sub messages."""
        pipe = self.redis.pipeline(transaction=False)
        by_group: dict[str, dict[str, bytes]] = {}
        for price in prices:
            data = quote_message(price).SerializeToString()
            by_group.setdefault(price.group_id, {})[price.symbol] = data
            pipe.publish(quotes_key(price.group_id), data)
        for group_id, mapping in by_group.items():
            pipe.hset(quotes_key(group_id), mapping=mapping)  # type: ignore[arg-type]
            pipe.srem(stale_key(group_id), *mapping)
        for group_id, symbol in stale:
            pipe.sadd(stale_key(group_id), symbol)
            pipe.publish(stale_key(group_id), symbol)
        await pipe.execute()

    async def publish(self, prices: list[PublishedPrice]) -> None:
        """Each price to NATS (`pricing.quote.published.<group>.<symbol>`)."""
        for price in prices:
            quote = quote_message(price)
            event = pricing_events_pb2.QuotePublished(group_id=price.group_id, quote=quote)
            meta = event.metadata
            meta.event_id = str(uuid.uuid4())
            meta.occurred_at.CopyFrom(quote.quote_time)
            meta.producer = "pricing"
            meta.actor.kind = ActorKind.ACTOR_KIND_SYSTEM
            meta.actor.id = "pricing"
            meta.aggregate_version = price.version
            subject = f"pricing.quote.published.{price.group_id}.{symbol_token(price.symbol)}"
            await self.nats.publish(subject, event.SerializeToString())
        PUBLISHED.inc(len(prices))
        published_at = time.time()
        for symbol in {price.symbol for price in prices}:
            LAST_PRICE.labels(symbol).set(published_at)
        if self.ticks is not None and prices:
            self.ticks.add_published(prices)

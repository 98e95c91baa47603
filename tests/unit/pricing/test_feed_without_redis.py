"""The price feed publishes to NATS whatever Redis does (services/pricing/feed.py, issue #18):
Redis is a cache written by a task of its own, which keeps the newest prices while Redis fails
and writes them once it answers again; quote streams end, retryably, when their Redis
subscription is lost."""

from __future__ import annotations

import asyncio
from typing import Any
from typing import cast

import redis
import redis.asyncio
from nats.aio.client import Client as NatsClient

from services.pricing import feed as feed_module
from services.pricing.engine import PricingEngine
from services.pricing.engine import Update
from services.pricing.fanout import ClientStream
from services.pricing.feed import PriceFeed
from services.pricing.quotes import StreamHub
from services.pricing.quotes import quotes_key
from tests.unit.pricing.test_ticks import price
from tradingmesh.pricing.v1.pricing_pb2 import Quote


class QuietEngine:
    def expire(self, now: object) -> Update:
        return Update()


class FakeNats:
    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def publish(self, subject: str, payload: bytes) -> None:
        self.subjects.append(subject)


class FakePipeline:
    def __init__(self, owner: FakeRedis) -> None:
        self.owner = owner
        self.hashes: list[tuple[str, dict[str, bytes]]] = []

    def publish(self, channel: str, data: Any) -> None:
        pass

    def hset(self, key: str, mapping: dict[str, bytes]) -> None:
        self.hashes.append((key, mapping))

    def srem(self, key: str, *members: str) -> None:
        pass

    def sadd(self, key: str, *members: str) -> None:
        pass

    async def execute(self) -> None:
        if self.owner.down:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379.")
        self.owner.written += self.hashes


class FakeRedis:
    def __init__(self) -> None:
        self.down = True
        self.written: list[tuple[str, dict[str, bytes]]] = []

    def pipeline(self, transaction: bool = False) -> FakePipeline:
        return FakePipeline(self)


async def test_prices_reach_nats_while_redis_is_down_and_redis_gets_the_newest_later(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(feed_module, "REDIS_RETRY_SECONDS", 0.01)
    nats, cache = FakeNats(), FakeRedis()
    feed = PriceFeed(
        cast(PricingEngine, QuietEngine()),
        cast(redis.asyncio.Redis, cache),
        cast(NatsClient, nats),
    )
    await feed.start()
    try:
        older, newer = price("1.08502"), price("1.08503")
        feed.take(Update([older]))
        await asyncio.sleep(0.05)
        feed.take(Update([newer]))
        await asyncio.sleep(0.05)
        assert len(nats.subjects) == 2  # both published, Redis down all along
        assert cache.written == []

        cache.down = False
        await asyncio.sleep(0.1)
    finally:
        await feed.stop()

    (key, mapping), *_ = cache.written
    assert key == quotes_key(newer.group_id)
    assert Quote.FromString(mapping["EURUSD"]).bid == "1.08503"  # the newest, once Redis answers
    assert feed_module.REDIS_UP._value.get() == 1


async def test_a_lost_subscription_ends_the_open_streams_and_holds_new_ones() -> None:
    hub = StreamHub(redis.asyncio.Redis(host="127.0.0.1", port=1), {"EURUSD": 5})
    try:
        fanout = hub._follow("g")
        hub._ready["g"].set()
        stream = ClientStream("g", ["EURUSD"])
        fanout.add(stream)

        hub._on_lost()

        assert stream.lost
        assert stream.changed.is_set()  # its call wakes up and ends (DEPENDENCY_UNAVAILABLE)
        assert not hub._ready["g"].is_set()  # a new stream waits for the resubscription
    finally:
        await hub.stop()

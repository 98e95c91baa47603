"""The connections a service holds for its lifetime: PostgreSQL, Redis and NATS JetStream.

Opened (and checked with a round trip) before the server accepts calls, so a service reports
SERVING only when it can really reach what it depends on; closed after the server stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from sqlalchemy import text

from services.platform.bus import connect_nats
from services.platform.bus import ensure_streams
from services.platform.cache import connect_redis
from services.platform.db import Database
from services.platform.secrets import Vault
from services.platform.settings import Settings


@dataclass
class Resources:
    """Lazily opened connections; `open` and `close` are the ServiceSpec hooks."""

    settings: Settings
    vault: Vault
    _db: Database | None = None
    _redis: redis.asyncio.Redis | None = None
    _nats: NatsClient | None = None
    _js: JetStreamContext | None = None

    async def open(self) -> None:
        self._db = Database.connect(self.settings, self.vault)
        async with self._db.read_session() as session:
            await session.execute(text("SELECT 1"))
        self._redis = connect_redis(self.settings, self.vault)
        await self._redis.ping()
        self._nats = await connect_nats(self.settings, self.vault)
        self._js = self._nats.jetstream()
        await ensure_streams(self._js)

    async def close(self) -> None:
        if self._nats is not None:
            await self._nats.drain()
        if self._redis is not None:
            await self._redis.aclose()
        if self._db is not None:
            await self._db.dispose()

    @property
    def db(self) -> Database:
        assert self._db is not None, "Resources.open() has not run"
        return self._db

    @property
    def redis(self) -> redis.asyncio.Redis:
        assert self._redis is not None, "Resources.open() has not run"
        return self._redis

    @property
    def nats(self) -> NatsClient:
        """The NATS connection itself, for core (not JetStream) publishes such as quotes."""
        assert self._nats is not None, "Resources.open() has not run"
        return self._nats

    @property
    def jetstream(self) -> JetStreamContext:
        assert self._js is not None, "Resources.open() has not run"
        return self._js

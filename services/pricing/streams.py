"""The pricing service's stream tier (ADR 0008): `python -m services.pricing.streams`.

A stream worker serves PricingService.StreamQuotes only, with the pricing service's identity
(its settings name, Vault policy and PostgreSQL role are pricing's), the same interceptors and
the same servicer code (`server.QuoteStreams`). It does not price: it reads the published prices
from Redis, as the pricing service's own hub does, and the reference data it checks a request
against (accounts, the groups' offers, the instruments' digits) from pricing's tables. The stack
runs `TM_PRICING_STREAM_WORKERS` of them (default 2) behind Envoy, which sends every StreamQuotes
(gRPC, gRPC-web and REST) to the one with the fewest streams.

Settings of its own, besides the platform's (ADR 0004):
    TM_PRICING_STREAM_COALESCE_MS  a stream writes at most one response per this many
                                   milliseconds (default 10)
    TM_PRICING_STREAM_REFRESH_S    the reference data is re-read this often (default 5); and at
                                   once, at most once a second, for an account not known here
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import text

from services.platform import Database
from services.platform import ServiceSpec
from services.platform import Settings
from services.platform import Vault
from services.platform import connect_redis
from services.platform import run
from services.platform.runtime import Runtime
from services.platform.settings import EnvReader
from services.platform.settings import number
from services.platform.settings import whole_number
from services.pricing import server
from services.pricing.quotes import COALESCE_SECONDS
from services.pricing.quotes import StreamHub
from services.pricing.reference import Reference

log = logging.getLogger(__name__)

RELOAD_ON_MISS_SECONDS = 1.0
# A stream process allocates a few objects per response (futures, messages) and holds thousands
# of long-lived ones (a task and a gRPC call per stream): with the default thresholds the
# collector took 14 % of the event loop's thread in ADR 0008's profile, scanning objects that
# live as long as their streams. Start-up's objects are frozen, and collections are rarer.
GC_THRESHOLDS = (20_000, 50, 100)


@dataclass(frozen=True)
class StreamsConfig:
    coalesce_seconds: float
    refresh_seconds: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> StreamsConfig:
        read = EnvReader(environ)
        coalesce_ms = read.get(
            "TM_PRICING_STREAM_COALESCE_MS", whole_number(0, 1000), round(COALESCE_SECONDS * 1000)
        )
        refresh = read.get("TM_PRICING_STREAM_REFRESH_S", number(0.5, 3600), 5.0)
        read.check()
        return cls(coalesce_ms / 1000, refresh)


class StreamWorker(Runtime):
    """What a stream worker holds besides its gRPC server: its connections, the reference data
    and the stream hub."""

    def __init__(self, settings: Settings, vault: Vault, config: StreamsConfig) -> None:
        super().__init__()
        self.settings = settings
        self.vault = vault
        self.config = config
        self.parts = server.Parts()
        # The other RPCs keep the generated servicer's UNIMPLEMENTED (Envoy routes them to pricing).
        self.streams = server.QuoteStreams(self.parts)  # type: ignore[abstract]
        self.reference: Reference | None = None
        self._loaded_at = 0.0
        self._loading: asyncio.Lock | None = None

    async def open(self) -> None:
        db = Database.connect(self.settings, self.vault)
        self.add_stop(db.dispose)
        async with db.read_session() as session:
            await session.execute(text("SELECT 1"))
        redis = connect_redis(self.settings, self.vault)
        self.add_stop(redis.aclose)
        await redis.ping()
        self.reference = Reference(db)
        await self.reference.load()
        self._loaded_at = time.monotonic()
        self._loading = asyncio.Lock()
        self.parts.reference = self.reference
        self.parts.hub = StreamHub(
            redis, self.reference.digits, interval=self.config.coalesce_seconds
        )
        self.add_stop(self.parts.hub.stop)
        self.parts.reload = self.reload_soon
        self.task(self._refresh(), name="reference-refresh")
        gc.collect()
        gc.freeze()  # what start-up made lives as long as the process: never scanned again
        gc.set_threshold(*GC_THRESHOLDS)

    async def reload_soon(self) -> None:
        """Re-reads the reference data for an unknown account, at most once a second (a burst
        of streams for an account created a moment ago waits for one read)."""
        assert self._loading is not None
        async with self._loading:
            if time.monotonic() - self._loaded_at >= RELOAD_ON_MISS_SECONDS:
                await self._load()

    async def _load(self) -> None:
        assert self.reference is not None
        self._loaded_at = time.monotonic()
        await self.reference.load()

    async def _refresh(self) -> None:
        assert self._loading is not None
        while True:
            await asyncio.sleep(self.config.refresh_seconds)
            try:
                async with self._loading:
                    await self._load()
            except Exception:
                log.exception("re-reading the reference data failed; keeping the last copy")


def build(settings: Settings, vault: Vault, config: StreamsConfig) -> ServiceSpec:
    worker = StreamWorker(settings, vault, config)
    return worker.spec("pricing-streams", [worker.streams])


if __name__ == "__main__":
    run(build, StreamsConfig.from_env)

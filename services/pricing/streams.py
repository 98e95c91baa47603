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

from services.platform import (
    Database,
    Registration,
    ServiceSpec,
    Settings,
    Vault,
    connect_redis,
    run,
)
from services.platform.tasks import cancel_and_wait
from services.pricing import server
from services.pricing.quotes import COALESCE_SECONDS, StreamHub
from services.pricing.reference import Reference
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc

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
        try:
            coalesce_ms = int(
                environ.get("TM_PRICING_STREAM_COALESCE_MS", "") or round(COALESCE_SECONDS * 1000)
            )
            refresh = float(environ.get("TM_PRICING_STREAM_REFRESH_S", "") or 5)
        except ValueError as error:
            raise SystemExit(f"pricing streams: {error}") from None
        if not 0 <= coalesce_ms <= 1000 or not 0.5 <= refresh <= 3600:
            raise SystemExit(
                "pricing streams: TM_PRICING_STREAM_COALESCE_MS must be 0-1000 and"
                " TM_PRICING_STREAM_REFRESH_S 0.5-3600"
            )
        return cls(coalesce_ms / 1000, refresh)


class StreamWorker:
    """What a stream worker holds besides its gRPC server: its connections, the reference data
    and the stream hub."""

    def __init__(self, settings: Settings, vault: Vault, config: StreamsConfig) -> None:
        self.settings = settings
        self.vault = vault
        self.config = config
        self.parts = server.Parts()
        # The other RPCs keep the generated servicer's UNIMPLEMENTED (Envoy routes them to pricing).
        self.streams = server.QuoteStreams(self.parts)  # type: ignore[abstract]
        self.db: Database | None = None
        self.reference: Reference | None = None
        self._loaded_at = 0.0
        self._loading: asyncio.Lock | None = None
        self._refresher: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.db = Database.connect(self.settings, self.vault)
        async with self.db.read_session() as session:
            await session.execute(text("SELECT 1"))
        redis = connect_redis(self.settings, self.vault)
        await redis.ping()
        self.reference = Reference(self.db)
        await self.reference.load()
        self._loaded_at = time.monotonic()
        self._loading = asyncio.Lock()
        self.parts.reference_ = self.reference
        self.parts.hub_ = StreamHub(
            redis, self.reference.digits, interval=self.config.coalesce_seconds
        )
        self.parts.reload_ = self.reload_soon
        self._refresher = asyncio.create_task(self._refresh(), name="reference-refresh")
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

    async def close(self) -> None:
        await cancel_and_wait(self._refresher)
        if self.parts.hub_ is not None:
            await self.parts.hub_.stop()
            await self.parts.hub_.redis.aclose()
        if self.db is not None:
            await self.db.dispose()


def build(settings: Settings, vault: Vault) -> ServiceSpec:
    worker = StreamWorker(settings, vault, StreamsConfig.from_env())
    return ServiceSpec(
        name="pricing-streams",
        registrations=[
            Registration(
                pricing_service_pb2_grpc.add_PricingServiceServicer_to_server,
                worker.streams,
                "tradingmesh.pricing.v1.PricingService",
            )
        ],
        on_start=[worker.open],
        on_stop=[worker.close],
    )


if __name__ == "__main__":
    run(build)

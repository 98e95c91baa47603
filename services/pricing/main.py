"""Wiring of the pricing service: what it serves and what it connects to (ADR 0006).

Settings of its own, besides the platform's (ADR 0004):
    TM_PRICING_LPS                 the LPs to connect to: `lp-alpha=127.0.0.1:17060,...`;
                                   empty: no LP (prices come from nowhere)
    TM_PRICING_MAX_QUOTE_AGE_MS    an LP quote older than this no longer counts (default 2000)
    TM_PRICING_LP_SILENCE_S        a logged-on LP that sends no market data for this long is not
                                   serving, and is asked again (default 5; gateway.py)
    TM_FIX_LP_CA                   each LP's CA, whose certificate the LP's must chain to:
                                   `lp-alpha=/path/ca.pem,...` (FIX over TLS, ADR 0018; the
                                   stack's tls/ca.pem locally); every LP needs one
    TM_DATA_DIR                    a writable directory for the FIX session store (sequence
                                   numbers only) and our client certificate's files (`tls/`,
                                   key 0600); default: a temporary directory
    TM_PRICING_TICK_RETENTION_DAYS days of LP ticks and published prices kept (default 7)
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any
from typing import TypeVar

from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]

from services.platform import RunningServer
from services.platform import ServiceSpec
from services.platform import Settings
from services.platform import Vault
from services.platform.fix import LpEndpoint
from services.platform.leader import Elected
from services.platform.outbox import OutboxRelay
from services.platform.resources import Resources
from services.platform.retention import Retention
from services.platform.retention import inbox_rule
from services.platform.runtime import Runtime
from services.platform.secrets import Secret
from services.platform.settings import EnvReader
from services.platform.settings import number
from services.platform.settings import whole_number
from services.pricing import server
from services.pricing.admin import LpActivity
from services.pricing.admin import PricingAdmin
from services.pricing.candles import DEFAULT_RETENTION_DAYS
from services.pricing.candles import CandleJob
from services.pricing.candles import CandleStore
from services.pricing.candles import tick_retention_days
from services.pricing.engine import PricingEngine
from services.pricing.feed import PriceFeed
from services.pricing.gateway import SILENCE_SECONDS
from services.pricing.gateway import LpGateway
from services.pricing.gateway import LpStatus
from services.pricing.quotes import QuoteReader
from services.pricing.quotes import StreamHub
from services.pricing.reference import CONSUMER
from services.pricing.reference import Reference
from services.pricing.ticks import TickWriter

T = TypeVar("T")
# Old rows deleted (services/platform/retention.py).
RETENTION = (inbox_rule("pricing"),)


@dataclass(frozen=True)
class PricingConfig:
    lps: list[LpEndpoint]
    max_quote_age: timedelta
    data_dir: Path
    lp_silence_seconds: float = SILENCE_SECONDS
    tick_retention_days: int = DEFAULT_RETENTION_DAYS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> PricingConfig:
        read = EnvReader(environ)
        lps: list[LpEndpoint] = read.get("TM_PRICING_LPS", LpEndpoint.parse_list, [])
        age_ms = read.get("TM_PRICING_MAX_QUOTE_AGE_MS", whole_number(), 2000)
        silence = read.get("TM_PRICING_LP_SILENCE_S", number(0, 3600, above=True), SILENCE_SECONDS)
        retention_days = read.merged(tick_retention_days)
        read.check()
        data_dir = environ.get("TM_DATA_DIR") or tempfile.mkdtemp(prefix="tm-pricing-")
        return cls(lps, timedelta(milliseconds=age_ms), Path(data_dir), silence, retention_days)


def lp_health_name(lp: str) -> str:
    return f"tradingmesh.pricing.lp.{lp}"


class PricingRuntime(Runtime):
    """Everything the pricing process runs besides the gRPC server, started in order."""

    def __init__(self, settings: Settings, vault: Vault, config: PricingConfig) -> None:
        super().__init__()
        self.vault = vault
        self.config = config
        self.resources = Resources(settings, vault)
        self.parts = server.Parts(lp_status={lp.lp: LpStatus(lp.lp) for lp in config.lps})
        self.gateway: LpGateway | None = None
        self.health: Any = None
        self.pricing = server.PricingService(self.parts)
        self.admin = server.PricingAdminService(self.parts)

    async def open(self) -> None:
        await self.started(self.resources.open(), self.resources.close)
        settings = self.resources.settings
        reference = (
            # Several instances: each reads the whole stream with its own consumer (ADR 0017).
            Reference(self.resources.db, settings.durable(CONSUMER), per_instance=True)
            if settings.replicas > 1
            else Reference(self.resources.db)
        )
        await reference.load()
        engine = PricingEngine(reference.digits, self.config.max_quote_age)
        ticks = TickWriter(self.resources.db)
        await self.started(ticks.start(), ticks.stop)  # its stop writes what is left
        # Singletons, each on one elected instance (ADR 0017).
        candles = CandleJob(self.resources.db, retention_days=self.config.tick_retention_days)
        elected = [Elected(self.resources.db, "pricing-candles", candles.run)]
        self.parts.candles = CandleStore(self.resources.db)
        feed = PriceFeed(
            engine,
            self.resources.redis,
            self.resources.nats,
            ticks=ticks,
            on_lp_status=self._lp_changed,
        )

        def regroup() -> None:
            feed.take(engine.set_groups(reference.groups.values(), datetime.now(UTC)))

        def instruments_changed() -> None:
            # An instrument created or changed by staff (admin.py): the engine learns its digits,
            # and every price is recomputed, since a markup in points depends on them.
            engine.set_instruments(reference.digits)
            regroup()
            if self.gateway is not None:
                self.gateway.subscribe(sorted(reference.digits))  # a new symbol: ask the LPs

        reference.on_groups_changed = regroup
        reference.on_instruments_changed = instruments_changed
        regroup()
        await self.started(feed.start(), feed.stop)
        self.parts.reference = reference
        self.parts.reader = QuoteReader(self.resources.redis)
        self.parts.hub = StreamHub(self.resources.redis, reference.digits)
        self.add_stop(self.parts.hub.stop)
        relay = OutboxRelay(self.resources.db, self.resources.jetstream, "pricing")
        await self.started(relay.start(), relay.stop)
        retention = Retention(self.resources.db, RETENTION)
        await self.started(retention.start(), retention.stop)
        activity = LpActivity()
        self.parts.admin = PricingAdmin(
            self.resources.db,
            reference,
            engine,
            self.parts.reader,
            self.parts.lp_status,
            activity,
            subscribed=self._subscribed,
        )
        await self.started(reference.start(self.resources.jetstream), reference.stop)
        if self.config.lps:
            credentials = {
                lp.lp: _login(
                    self.vault.read_keys(f"tradingmesh/lp/{lp.lp}", "username", "password")
                )
                for lp in self.config.lps
            }

            async def lead_feed() -> None:
                """The LP market-data sessions on the elected instance: an LP takes one logon
                per session (ADR 0017); the followers serve what the leader publishes."""
                self.gateway = LpGateway(
                    self.config.lps,
                    credentials,
                    sorted(reference.digits),
                    self.config.data_dir / "fix",
                    asyncio.get_running_loop(),
                    _both(activity.on_quotes, feed.on_quotes),
                    _both(activity.on_state, feed.on_state),
                    silence_seconds=self.config.lp_silence_seconds,
                )
                self.gateway.start()
                try:
                    await asyncio.Event().wait()
                finally:
                    gateway, self.gateway = self.gateway, None
                    await asyncio.shield(asyncio.to_thread(gateway.stop))

            elected.append(Elected(self.resources.db, "pricing-feed", lead_feed))
        for job in elected:
            await self.started(job.start(), job.stop)  # the gateway stops with its job

    def _subscribed(self) -> Sequence[str]:
        """The symbols the gateway asks every LP for at logon."""
        return self.gateway.symbols if self.gateway is not None else ()

    async def serving(self, running: RunningServer) -> None:
        self.health = running.health
        for status in self.parts.lp_status.values():
            await self._report(status)

    def _lp_changed(self, status: LpStatus) -> None:
        self.parts.lp_status[status.lp] = status
        if self.health is not None:
            asyncio.get_running_loop().create_task(self._report(status))

    async def _report(self, status: LpStatus) -> None:
        # SERVING while logged on with market data that is neither refused nor silent.
        serving = status.serving
        await self.health.set(
            lp_health_name(status.lp),
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING,
        )


def _both(first: Callable[[T], None], second: Callable[[T], None]) -> Callable[[T], None]:
    """One gateway callback that feeds two listeners, in order."""

    def call(value: T) -> None:
        first(value)
        second(value)

    return call


def _login(values: tuple[Secret, ...]) -> tuple[str, Secret]:
    username, password = values
    return username.reveal(), password


def build(settings: Settings, vault: Vault, config: PricingConfig) -> ServiceSpec:
    runtime = PricingRuntime(settings, vault, config)
    return runtime.spec("pricing", [runtime.pricing, runtime.admin], on_serving=[runtime.serving])

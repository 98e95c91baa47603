"""Wiring of the oms service: what it serves and what it connects to (ADR 0007).

Settings of its own, besides the platform's (ADR 0004):
    TM_RISK_ADDR               the risk service's gRPC address (host:port), or every
                               instance's (`ipv4:host:port,...`, ADR 0017: each account's checks
                               go to one of them), for the pre-trade check; unset: every order
                               is REJECTED / DEPENDENCY_UNAVAILABLE
    TM_OMS_LPS                 the LPs for STP hedging (`lp-alpha=127.0.0.1:17060,...`), as
                               pricing's TM_PRICING_LPS; logons from Vault
                               `secret/tradingmesh/lp/<lp>`
    TM_FIX_LP_CA               each LP's CA file (`lp-alpha=/path/ca.pem,...`): the sessions
                               run over TLS (ADR 0018, services/platform/fix.py)
    TM_OMS_STP_WINDOW_MS       the STP netting window (default 50)
    TM_OMS_HEDGE_STATUS_AFTER_S  seconds a hedge order at its LP may go unanswered before an
                               OrderStatusRequest asks for it (default 10)
    TM_OMS_HEDGE_UNKNOWN_AFTER_S seconds after which a hedge order still open is reported of
                               unknown fate for an operator to reconcile (default 60)
    TM_OMS_STP_PRICE_WAIT_S    seconds after its creation an acknowledged STP order without a
                               live price waits for one before REJECTED / PRICE_UNAVAILABLE
                               (default 30)
    TM_DATA_DIR                the FIX message store of the LP order sessions goes to
                               `<TM_DATA_DIR>/oms/fix` (our client certificate's files to its
                               `tls/`); default: a temporary directory
    TM_OMS_MAX_QUOTE_AGE_MS    a quote older than this is not live (default 2000)
    TM_OMS_ROLLOVER_TIME       the daily rollover's time of day, "HH:MM" (default 17:00)
    TM_OMS_ROLLOVER_TIME_ZONE  its time zone, IANA (default America/New_York)
    TM_OMS_ROLLOVER_AUTO       1 (default): each trading day's rollover starts by itself at its
                               time; 0: only OrderAdminService.RunRollover starts one
    TM_OMS_ROLLOVER_BATCH      accounts charged per transaction (default 50)

Besides the gRPC services the process runs: the outbox relay of `oms.outbox`, the reference
consumers (`oms-reference`, `oms-instruments`), the quote book (NATS quotes), the order-update
hub (StreamOrderUpdates), the DAY-order expiry sweeper, the STP desk (netting windows, the
LP order sessions with their execution-report journal on a connection of their own, hedge
orders, their status requests and their allocation, `stp/desk.py`) and the trigger engine
(working limit/stop orders and positions' stop-loss/take-profit, `triggers/engine.py`) and the
rollover job (each trading day's swaps, `rollover/job.py`, ADR 0010).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from services.oms.api.admin import OrderAdminService
from services.oms.api.formats import FORMATS
from services.oms.api.internal import OmsInternalService
from services.oms.api.orders import OrderService
from services.oms.api.positions import PositionService
from services.oms.api.updates import OrderUpdateHub
from services.oms.entry.placement import Placement
from services.oms.feeds.quotes import QuoteBook
from services.oms.feeds.reference import ReferenceCopies
from services.oms.feeds.risk import RiskClient
from services.oms.rollover.admin import SwapAdmin
from services.oms.rollover.job import RolloverConfig
from services.oms.rollover.job import RolloverJob
from services.oms.store.reference import instrument_scales
from services.oms.stp.config import StpConfig
from services.oms.stp.config import lp_credentials
from services.oms.stp.desk import StpDesk
from services.oms.triggers.engine import TriggerEngine
from services.oms.triggers.expiry import ExpirySweeper
from services.platform import ServiceSpec
from services.platform import Settings
from services.platform import Vault
from services.platform.internal import check_target
from services.platform.leader import Elected
from services.platform.outbox import OutboxRelay
from services.platform.resources import Resources
from services.platform.retention import Retention
from services.platform.retention import RetentionRule
from services.platform.retention import inbox_rule
from services.platform.runtime import Runtime
from services.platform.secrets import EDGE_PATH
from services.platform.settings import EnvReader
from services.platform.settings import whole_number

SCHEMA = "oms"
# Old rows deleted (services/platform/retention.py): LP rows still to apply or parked stay.
RETENTION = (
    inbox_rule(SCHEMA),
    RetentionRule("oms.lp_execution_reports", "applied_at", timedelta(days=90)),
    RetentionRule("oms.lp_messages", "applied_at", timedelta(days=90), "status = 'APPLIED'"),
    RetentionRule("oms.lp_sent_messages", "sent_at", timedelta(days=30)),
)


@dataclass(frozen=True)
class OmsConfig:
    risk_address: str
    max_quote_age: timedelta
    stp: StpConfig
    rollover: RolloverConfig

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> OmsConfig:
        read = EnvReader(environ)
        age_ms = read.get("TM_OMS_MAX_QUOTE_AGE_MS", whole_number(1), 2000)
        risk_address = read.get("TM_RISK_ADDR", check_target, "")
        stp = read.merged(StpConfig.from_env)
        rollover = read.merged(RolloverConfig.from_env)
        read.check()
        return cls(
            risk_address=risk_address,
            max_quote_age=timedelta(milliseconds=age_ms),
            stp=stp,
            rollover=rollover,
        )


class OmsRuntime(Runtime):
    """Everything the oms process runs besides the gRPC server, started in order."""

    def __init__(self, settings: Settings, vault: Vault, config: OmsConfig) -> None:
        super().__init__()
        self.resources = Resources(settings, vault)
        self.quotes = QuoteBook(config.max_quote_age)
        self.hub = OrderUpdateHub()
        (edge_token,) = vault.read_keys(EDGE_PATH, "token")
        self.risk = RiskClient(config.risk_address, edge_token) if config.risk_address else None
        self.stp = StpDesk(
            self.resources,
            self.quotes,
            config.stp,
            partial(lp_credentials, vault),
        )
        self.placement = Placement(self.resources, self.quotes, self.risk)
        self.triggers = TriggerEngine(
            self.resources, self.quotes, self.placement, self.risk, self.stp
        )
        self.placement.working = (self.stp, self.triggers)
        self.orders = OrderService(self.resources, self.placement, self.hub)
        self.positions = PositionService(self.resources, self.placement, self.quotes)
        self.internal = OmsInternalService(self.resources, self.placement)
        self.rollover = RolloverJob(self.resources, self.quotes, config.rollover)
        self.admin = OrderAdminService(
            self.resources,
            self.quotes,
            self.placement,
            desk=self.stp,
            swaps=SwapAdmin(self.resources, self.rollover),
        )

    async def open(self) -> None:
        resources = self.resources
        await self.started(resources.open(), resources.close)
        if self.risk is not None:
            self.add_stop(self.risk.close)
        async with resources.db.read_session() as session:
            FORMATS.load(await instrument_scales(session))
        await self.started(self.quotes.start(resources.nats, resources.jetstream), self.quotes.stop)
        await self.started(self.hub.start(resources.nats), self.hub.stop)
        relay = OutboxRelay(resources.db, resources.jetstream, SCHEMA)
        await self.started(relay.start(), relay.stop)
        retention = Retention(resources.db, RETENTION)
        await self.started(retention.start(), retention.stop)
        settings = resources.settings
        reference = ReferenceCopies(
            resources.db,
            self.placement.offered.forget,
            # Several instances: each reads the whole streams with its own consumers (ADR 0017).
            durable=settings.durable if settings.replicas > 1 else None,
        )
        await self.started(reference.start(resources.jetstream), reference.stop)
        sweeper = ExpirySweeper(resources.db)
        self.stp.leading = False  # until elected: `StpDesk.lead`
        await self.triggers.start(resources.nats)  # it leads with the desk (`_lead_execution`)
        # Singletons, each on one elected instance (ADR 0017); the trigger engine elects itself.
        for job in (
            Elected(resources.db, "oms-expiry", sweeper.run),
            Elected(resources.db, "oms-rollover", self.rollover.run),
            Elected(resources.db, "oms-stp", self._lead_execution),  # stops first, as it did
        ):
            await self.started(job.start(), job.stop)
        # The engine stops listening before the elected jobs stop, and requests in flight end
        # (their commits and hand-offs) before anything else stops.
        self.add_stop(self.triggers.stop)
        self.add_stop(self.placement.drain)

    async def _lead_execution(self) -> None:
        """The STP desk and the trigger engine lead together, on one instance: the engine hands
        STP limit orders to the desk and hears its word in process (ADR 0017)."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.stp.lead(), name="oms-stp")
            group.create_task(self.triggers.lead(), name="oms-triggers")


def build(settings: Settings, vault: Vault, config: OmsConfig) -> ServiceSpec:
    runtime = OmsRuntime(settings, vault, config)
    return runtime.spec("oms", [runtime.orders, runtime.positions, runtime.admin, runtime.internal])

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
from services.oms.rollover.job import RolloverConfig, RolloverJob
from services.oms.stp.desk import StpConfig, StpDesk, lp_credentials
from services.oms.triggers.engine import TriggerEngine
from services.oms.triggers.expiry import ExpirySweeper
from services.platform import Registration, ServiceSpec, Settings, Vault
from services.platform.internal import check_target
from services.platform.leader import Elected
from services.platform.outbox import OutboxRelay
from services.platform.resources import Resources
from services.platform.retention import Retention, RetentionRule, inbox_rule
from services.platform.secrets import EDGE_PATH
from tradingmesh.oms.v1 import (
    oms_internal_service_pb2_grpc,
    order_admin_service_pb2_grpc,
    order_service_pb2_grpc,
    position_service_pb2_grpc,
)

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
        try:
            age_ms = int(environ.get("TM_OMS_MAX_QUOTE_AGE_MS", "2000"))
        except ValueError:
            raise SystemExit("oms: TM_OMS_MAX_QUOTE_AGE_MS is not a whole number") from None
        if age_ms <= 0:
            raise SystemExit("oms: TM_OMS_MAX_QUOTE_AGE_MS must be positive")
        risk_address = environ.get("TM_RISK_ADDR", "").strip()
        try:
            if risk_address:
                check_target(risk_address)
        except ValueError as error:
            raise SystemExit(f"oms: TM_RISK_ADDR {error}") from None
        return cls(
            risk_address=risk_address,
            max_quote_age=timedelta(milliseconds=age_ms),
            stp=StpConfig.from_env(environ),
            rollover=RolloverConfig.from_env(environ),
        )


class OmsRuntime:
    """Everything the oms process runs besides the gRPC server, started in order."""

    def __init__(self, settings: Settings, vault: Vault, config: OmsConfig) -> None:
        self.config = config
        self.resources = Resources(settings, vault)
        self.quotes = QuoteBook(config.max_quote_age)
        self.hub = OrderUpdateHub()
        (edge_token,) = vault.read_keys(EDGE_PATH, "token")
        self.risk = RiskClient(config.risk_address, edge_token) if config.risk_address else None
        self.relay: OutboxRelay | None = None
        self.retention: Retention | None = None
        self.reference: ReferenceCopies | None = None
        self.sweeper: ExpirySweeper | None = None
        # Singletons, each on one elected instance (ADR 0017); the trigger engine elects itself.
        self.elected: list[Elected] = []
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
        await self.resources.open()
        async with self.resources.db.read_session() as session:
            await FORMATS.load(session)
        await self.quotes.start(self.resources.nats, self.resources.jetstream)
        await self.hub.start(self.resources.nats)
        self.relay = OutboxRelay(self.resources.db, self.resources.jetstream, SCHEMA)
        await self.relay.start()
        self.retention = Retention(self.resources.db, RETENTION)
        await self.retention.start()
        settings = self.resources.settings
        self.reference = ReferenceCopies(
            self.resources.db,
            self.placement.offered.forget,
            # Several instances: each reads the whole streams with its own consumers (ADR 0017).
            durable=settings.durable if settings.replicas > 1 else None,
        )
        await self.reference.start(self.resources.jetstream)
        self.sweeper = ExpirySweeper(self.resources.db)
        db = self.resources.db
        self.stp.leading = False  # until elected: `StpDesk.lead`
        self.elected = [
            Elected(db, "oms-expiry", self.sweeper.run),
            Elected(db, "oms-rollover", self.rollover.run),
            Elected(db, "oms-stp", self._lead_execution),
        ]
        await self.triggers.start(self.resources.nats)  # it leads with the desk (`_lead_execution`)
        for job in self.elected:
            await job.start()

    async def _lead_execution(self) -> None:
        """The STP desk and the trigger engine lead together, on one instance: the engine hands
        STP limit orders to the desk and hears its word in process (ADR 0017)."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.stp.lead(), name="oms-stp")
            group.create_task(self.triggers.lead(), name="oms-triggers")

    async def close(self) -> None:
        await self.placement.drain()  # commits of cancelled requests, and their hand-offs
        await self.triggers.stop()
        for job in reversed(self.elected):  # the STP desk first: it stops as it always did
            await job.stop()
        if self.reference is not None:
            await self.reference.stop()
        await self.hub.stop()
        await self.quotes.stop()
        if self.retention is not None:
            await self.retention.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self.risk is not None:
            await self.risk.close()
        await self.resources.close()


def build(settings: Settings, vault: Vault) -> ServiceSpec:
    runtime = OmsRuntime(settings, vault, OmsConfig.from_env())
    return ServiceSpec(
        name="oms",
        registrations=[
            Registration(
                order_service_pb2_grpc.add_OrderServiceServicer_to_server,
                runtime.orders,
                "tradingmesh.oms.v1.OrderService",
            ),
            Registration(
                position_service_pb2_grpc.add_PositionServiceServicer_to_server,
                runtime.positions,
                "tradingmesh.oms.v1.PositionService",
            ),
            Registration(
                order_admin_service_pb2_grpc.add_OrderAdminServiceServicer_to_server,
                runtime.admin,
                "tradingmesh.oms.v1.OrderAdminService",
            ),
            Registration(
                oms_internal_service_pb2_grpc.add_OmsInternalServiceServicer_to_server,
                runtime.internal,
                "tradingmesh.oms.v1.OmsInternalService",
            ),
        ],
        on_start=[runtime.open],
        on_stop=[runtime.close],
    )

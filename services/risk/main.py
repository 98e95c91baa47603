"""Wiring of the risk service: what it serves and what it connects to (ADR 0007).

Settings of its own, besides the platform's (ADR 0004):
    TM_OMS_ADDR                  the OMS's gRPC address (host:port), for the stop-out's
                                 ForceClosePosition and the first read of open positions
    TM_RISK_MARGIN_PASS_MS       the margin watcher's pass interval (default 2000)
    TM_RISK_MAX_QUOTE_AGE_MS     how old a price may be to value an order or to close a position
                                 at stop-out (default 5000; 0: any age). Pricing publishes a
                                 live price at least once a second (ADR 0006); the OMS applies
                                 its own, stricter age limit when it executes.
    TM_RISK_REPORTING_CURRENCY   the broker's reporting currency for exposure (default USD)

Start order: connections, the working set from `risk.*`, the event consumers (which catch up
with whatever happened while the service was down), the live prices, the decision recorder, the
outbox relay, the margin watcher, the daily snapshots (ADR 0010), and a background read of the
OMS's open positions (ADR 0007; idempotent with the events by position version).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import grpc

from services.platform import Registration, ServiceSpec, Settings, Vault
from services.platform.internal import check_target, internal_channel
from services.platform.outbox import OutboxRelay
from services.platform.resources import Resources
from services.platform.retention import Retention, RetentionRule, inbox_rule
from services.platform.secrets import EDGE_PATH
from services.platform.tasks import cancel_and_wait
from services.risk import metrics, server, store
from services.risk.copies import Copies, position_of
from services.risk.quotes import QuoteFeed
from services.risk.recorder import DecisionRecorder
from services.risk.snapshots import DailySnapshots
from services.risk.watcher import MarginWatcher, WatcherConfig
from tradingmesh.oms.v1 import oms_internal_service_pb2 as oms_internal
from tradingmesh.oms.v1 import oms_internal_service_pb2_grpc as oms_internal_grpc
from tradingmesh.risk.v1 import (
    risk_admin_service_pb2_grpc,
    risk_internal_service_pb2_grpc,
    risk_service_pb2_grpc,
)

log = logging.getLogger(__name__)

_POSITIONS_RETRY_SECONDS = 5.0
_POSITIONS_ATTEMPTS = 12
# Old rows deleted (services/platform/retention.py).
RETENTION = (
    inbox_rule("risk"),
    RetentionRule("risk.check_decisions", "checked_at", timedelta(days=90)),
)


@dataclass(frozen=True)
class RiskConfig:
    oms_addr: str
    margin_pass: timedelta
    max_quote_age: timedelta | None
    reporting_currency: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> RiskConfig:
        try:
            oms = environ.get("TM_OMS_ADDR", "").strip()
            if not oms:
                raise ValueError("TM_OMS_ADDR is missing")
            check_target(oms)  # one address, or every instance's (ADR 0017)
            pass_ms = int(environ.get("TM_RISK_MARGIN_PASS_MS", "2000"))
            age_ms = int(environ.get("TM_RISK_MAX_QUOTE_AGE_MS", "5000"))
            currency = environ.get("TM_RISK_REPORTING_CURRENCY", "USD").strip()
            if pass_ms < 1 or age_ms < 0 or len(currency) != 3 or not currency.isupper():
                raise ValueError("TM_RISK_* out of range")
        except ValueError as error:
            raise SystemExit(f"risk: {error}") from None
        return cls(
            oms_addr=oms,
            margin_pass=timedelta(milliseconds=pass_ms),
            max_quote_age=timedelta(milliseconds=age_ms) if age_ms else None,
            reporting_currency=currency,
        )


class OmsCloser:
    """OmsInternalService over an internal channel (with the edge token)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = oms_internal_grpc.OmsInternalServiceStub(channel)

    async def force_close(
        self, request: oms_internal.ForceClosePositionRequest, timeout: float
    ) -> oms_internal.ForceClosePositionResponse:
        response: oms_internal.ForceClosePositionResponse = await self.stub.ForceClosePosition(
            request, timeout=timeout
        )
        return response


class RiskRuntime:
    """Everything the risk process runs besides the gRPC server, started in order."""

    def __init__(self, settings: Settings, vault: Vault, config: RiskConfig) -> None:
        self.vault = vault
        self.config = config
        self.resources = Resources(settings, vault)
        self.parts = server.RiskParts(
            max_quote_age=config.max_quote_age, reporting_currency=config.reporting_currency
        )
        self.channel: grpc.aio.Channel | None = None
        self.copies: Copies | None = None
        self.feed: QuoteFeed | None = None
        self.relay: OutboxRelay | None = None
        self.retention: Retention | None = None
        self.watcher: MarginWatcher | None = None
        self.snapshots: DailySnapshots | None = None
        self._positions: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self.resources.open()
        db = self.resources.db
        async with db.read_session() as session:
            state = await store.load_state(session)
        # The loaded working set (every account and position) lives as long as the process:
        # kept out of the garbage collector's passes, a full collection does not walk it (with
        # 100,000 accounts that held the event loop for about 0.6 s).
        gc.collect()
        gc.freeze()
        self.parts.db, self.parts.state = db, state
        (edge_token,) = self.vault.read_keys(EDGE_PATH, "token")
        self.channel = internal_channel(self.config.oms_addr, edge_token, callee="oms")
        self.relay = OutboxRelay(db, self.resources.jetstream, "risk")
        self.watcher = MarginWatcher(
            db,
            state,
            OmsCloser(self.channel),
            WatcherConfig(
                pass_interval=self.config.margin_pass.total_seconds(),
                max_quote_age=self.config.max_quote_age,
            ),
        )
        metrics.register(state)  # the book as gauges, computed when scraped
        self.snapshots = DailySnapshots(db, state)
        # Several instances: each reads the whole streams with its own consumers (ADR 0017).
        settings = self.resources.settings
        per_instance = settings.durable if settings.replicas > 1 else None
        self.copies = Copies(db, state, self.snapshots.wake, durable=per_instance)
        await self.copies.start(self.resources.jetstream)
        self.feed = QuoteFeed(state, self.watcher.on_price)
        await self.feed.start(self.resources.nats, self.resources.jetstream)
        self.parts.recorder = DecisionRecorder(db)
        await self.parts.recorder.start()
        await self.relay.start()
        self.retention = Retention(db, RETENTION)
        await self.retention.start()
        await self.watcher.start()
        await self.snapshots.start()
        self._positions = asyncio.create_task(self._read_open_positions(), name="risk-positions")

    async def _read_open_positions(self) -> None:
        """ListOpenPositions once (ADR 0007), for positions whose events this service has not
        seen (e.g. it was deployed after them); retried while the OMS is not up yet."""
        assert self.channel is not None
        assert self.parts.state is not None
        stub = oms_internal_grpc.OmsInternalServiceStub(self.channel)
        db, state = self.parts.ready
        for _ in range(_POSITIONS_ATTEMPTS):
            try:
                token, taken = "", 0
                while True:
                    page = await stub.ListOpenPositions(
                        oms_internal.ListOpenPositionsRequest(page_size=500, page_token=token),
                        timeout=10,
                    )
                    for account in page.accounts:
                        for message in account.positions:
                            position = position_of(message)
                            async with db.transaction() as session:
                                stored = await store.save_position(session, position)
                            if stored:
                                state.put_position(position)
                                taken += 1
                    token = page.next_page_token
                    if not token:
                        break
                log.info("open positions read from the OMS", extra={"new": taken})
                return
            except grpc.aio.AioRpcError as error:
                log.info(
                    "the OMS's open positions are not readable yet",
                    extra={"code": error.code().name},
                )
                await asyncio.sleep(_POSITIONS_RETRY_SECONDS)
        log.warning("the OMS's open positions could not be read; the events alone feed them")

    async def close(self) -> None:
        await cancel_and_wait(self._positions)
        if self.snapshots is not None:
            await self.snapshots.stop()
        if self.watcher is not None:
            await self.watcher.stop()
        if self.feed is not None:
            await self.feed.stop()
        if self.copies is not None:
            await self.copies.stop()
        if self.parts.recorder is not None:
            await self.parts.recorder.stop()
        if self.retention is not None:
            await self.retention.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self.channel is not None:
            await self.channel.close()
        await self.resources.close()


def build(settings: Settings, vault: Vault) -> ServiceSpec:
    runtime = RiskRuntime(settings, vault, RiskConfig.from_env())
    return ServiceSpec(
        name="risk",
        registrations=[
            Registration(
                risk_service_pb2_grpc.add_RiskServiceServicer_to_server,
                server.RiskService(runtime.parts),
                "tradingmesh.risk.v1.RiskService",
            ),
            Registration(
                risk_admin_service_pb2_grpc.add_RiskAdminServiceServicer_to_server,
                server.RiskAdminService(runtime.parts),
                "tradingmesh.risk.v1.RiskAdminService",
            ),
            Registration(
                risk_internal_service_pb2_grpc.add_RiskInternalServiceServicer_to_server,
                server.RiskInternalService(runtime.parts),
                "tradingmesh.risk.v1.RiskInternalService",
            ),
        ],
        on_start=[runtime.open],
        on_stop=[runtime.close],
    )

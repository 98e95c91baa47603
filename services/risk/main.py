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

from services.platform import ServiceSpec
from services.platform import Settings
from services.platform import Vault
from services.platform.internal import check_target
from services.platform.internal import internal_channel
from services.platform.outbox import OutboxRelay
from services.platform.resources import Resources
from services.platform.retention import Retention
from services.platform.retention import RetentionRule
from services.platform.retention import inbox_rule
from services.platform.runtime import Runtime
from services.platform.secrets import EDGE_PATH
from services.platform.settings import EnvReader
from services.platform.settings import whole_number
from services.risk import metrics
from services.risk import server
from services.risk import store
from services.risk.copies import Copies
from services.risk.copies import position_of
from services.risk.quotes import QuoteFeed
from services.risk.recorder import DecisionRecorder
from services.risk.snapshots import DailySnapshots
from services.risk.watcher import MarginWatcher
from services.risk.watcher import WatcherConfig
from tradingmesh.oms.v1 import oms_internal_service_pb2 as oms_internal
from tradingmesh.oms.v1 import oms_internal_service_pb2_grpc as oms_internal_grpc

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
        read = EnvReader(environ)
        oms = read.required("TM_OMS_ADDR", check_target)  # one address, or every instance's
        pass_ms = read.get("TM_RISK_MARGIN_PASS_MS", whole_number(1), 2000)
        age_ms = read.get("TM_RISK_MAX_QUOTE_AGE_MS", whole_number(0), 5000)
        currency = read.get("TM_RISK_REPORTING_CURRENCY", _currency, "USD")
        read.check()
        return cls(
            oms_addr=oms,
            margin_pass=timedelta(milliseconds=pass_ms),
            max_quote_age=timedelta(milliseconds=age_ms) if age_ms else None,
            reporting_currency=currency,
        )


def _currency(text: str) -> str:
    if len(text) != 3 or not text.isupper():
        raise ValueError("must be a currency code of three capital letters, e.g. USD")
    return text


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


class RiskRuntime(Runtime):
    """Everything the risk process runs besides the gRPC server, started in order."""

    def __init__(self, settings: Settings, vault: Vault, config: RiskConfig) -> None:
        super().__init__()
        self.vault = vault
        self.config = config
        self.resources = Resources(settings, vault)
        self.parts = server.RiskParts(
            max_quote_age=config.max_quote_age, reporting_currency=config.reporting_currency
        )

    async def open(self) -> None:
        await self.started(self.resources.open(), self.resources.close)
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
        channel = internal_channel(self.config.oms_addr, edge_token, callee="oms")
        self.add_stop(channel.close)
        watcher = MarginWatcher(
            db,
            state,
            OmsCloser(channel),
            WatcherConfig(
                pass_interval=self.config.margin_pass.total_seconds(),
                max_quote_age=self.config.max_quote_age,
            ),
        )
        metrics.register(state)  # the book as gauges, computed when scraped
        snapshots = DailySnapshots(db, state)
        # Several instances: each reads the whole streams with its own consumers (ADR 0017).
        settings = self.resources.settings
        per_instance = settings.durable if settings.replicas > 1 else None
        copies = Copies(db, state, snapshots.wake, durable=per_instance)
        await self.started(copies.start(self.resources.jetstream), copies.stop)
        feed = QuoteFeed(state, watcher.on_price)
        await self.started(feed.start(self.resources.nats, self.resources.jetstream), feed.stop)
        recorder = self.parts.recorder = DecisionRecorder(db)
        await self.started(recorder.start(), recorder.stop)
        relay = OutboxRelay(db, self.resources.jetstream, "risk")
        await self.started(relay.start(), relay.stop)
        retention = Retention(db, RETENTION)
        await self.started(retention.start(), retention.stop)
        await self.started(watcher.start(), watcher.stop)
        await self.started(snapshots.start(), snapshots.stop)
        self.task(self._read_open_positions(channel), name="risk-positions")

    async def _read_open_positions(self, channel: grpc.aio.Channel) -> None:
        """ListOpenPositions once (ADR 0007), for positions whose events this service has not
        seen (e.g. it was deployed after them); retried while the OMS is not up yet."""
        stub = oms_internal_grpc.OmsInternalServiceStub(channel)
        db, state = self.parts.db, self.parts.state
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


def build(settings: Settings, vault: Vault, config: RiskConfig) -> ServiceSpec:
    runtime = RiskRuntime(settings, vault, config)
    return runtime.spec(
        "risk",
        [
            server.RiskService(runtime.parts),
            server.RiskAdminService(runtime.parts),
            server.RiskInternalService(runtime.parts),
        ],
    )

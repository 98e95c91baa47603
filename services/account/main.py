"""Wiring of the account service: what it serves and what it connects to.

Settings of its own, besides the platform's (ADR 0004):
    TM_RISK_ADDR   the risk service's gRPC address (host:port), or every instance's
                   (`ipv4:host:port,...`, ADR 0017: each account's calls go to one of them), for
                   the margin figures of GetAccount and the withdrawal check (`margin.py`);
                   required

Besides the gRPC services the process runs: the outbox relay of `account.outbox`, the retention
job, the copy of pricing's instruments (`instruments.py`) and the consumers of the trading
core's results (`trading.py`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.account.api.admin import AccountAdminService
from services.account.api.client import AccountService
from services.account.api.webhooks import WebhookService
from services.account.auth import api as auth_api
from services.account.instruments import InstrumentCatalogue
from services.account.margin import MarginFigures
from services.account.trading import StopOutCorrections
from services.account.trading import SwapBookings
from services.account.trading import TradeBookings
from services.account.webhook_auth import WEBHOOKS_PATH
from services.account.webhook_auth import Provider
from services.account.webhook_auth import parse_providers
from services.account.webhooks import WebhookReceiver
from services.platform import ServiceSpec
from services.platform import Settings
from services.platform import Vault
from services.platform.internal import check_target
from services.platform.outbox import OutboxRelay
from services.platform.resources import Resources
from services.platform.retention import Retention
from services.platform.retention import inbox_rule
from services.platform.runtime import Runtime
from services.platform.secrets import EDGE_PATH
from services.platform.settings import EnvReader


@dataclass(frozen=True)
class AccountConfig:
    risk_address: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> AccountConfig:
        read = EnvReader(environ)
        risk_address = read.required("TM_RISK_ADDR", check_target)
        read.check()
        return cls(risk_address)


# Old rows deleted (services/platform/retention.py).
RETENTION = (inbox_rule("account"),)


class AccountRuntime(Runtime):
    """Everything the account process runs besides the gRPC server, started in order."""

    def __init__(self, settings: Settings, vault: Vault, config: AccountConfig) -> None:
        super().__init__()
        self.resources = Resources(settings, vault)
        (edge_token,) = vault.read_keys(EDGE_PATH, "token")
        self.margin = MarginFigures(config.risk_address, edge_token)

        def providers() -> dict[str, Provider]:
            return parse_providers(
                {name: value.reveal() for name, value in vault.read(WEBHOOKS_PATH).items()}
            )

        # Fail fast at start on a missing or malformed provider configuration; read again when a
        # call does not match it (a rotated key, a new provider).
        self.webhooks = WebhookReceiver(self.resources, providers(), reload=providers)

    async def open(self) -> None:
        await self.started(self.resources.open(), self.resources.close)
        self.add_stop(self.margin.close)
        db, jetstream = self.resources.db, self.resources.jetstream
        relay = OutboxRelay(db, jetstream, "account")
        await self.started(relay.start(), relay.stop)
        retention = Retention(db, RETENTION)
        await self.started(retention.start(), retention.stop)
        for consumer in (
            # The copy of pricing's instruments that SetGroupInstrumentSettings checks against.
            InstrumentCatalogue(db),
            # The trading core's results: trades' P&L and commission, stop-out corrections
            # (ADR 0007), and the rollovers' swaps (ADR 0010).
            TradeBookings(db),
            SwapBookings(db),
            StopOutCorrections(db),
        ):
            await self.started(consumer.start(jetstream), consumer.stop)


def build(settings: Settings, vault: Vault, config: AccountConfig) -> ServiceSpec:
    runtime = AccountRuntime(settings, vault, config)
    resources, margin = runtime.resources, runtime.margin
    return runtime.spec(
        "account",
        [
            auth_api.AuthService(resources),
            AccountService(resources, margin),
            AccountAdminService(resources, margin),
            WebhookService(resources, runtime.webhooks),
        ],
    )

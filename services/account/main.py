"""Wiring of the account service: what it serves and what it connects to."""

from __future__ import annotations

import os
from collections.abc import Mapping

from services.account.api.admin import AccountAdminService
from services.account.api.client import AccountService
from services.account.api.webhooks import WebhookService
from services.account.auth import api as auth_api
from services.account.instruments import InstrumentCatalogue
from services.account.margin import MarginFigures
from services.account.trading import StopOutCorrections, SwapBookings, TradeBookings
from services.account.webhook_auth import WEBHOOKS_PATH, Provider, parse_providers
from services.account.webhooks import WebhookReceiver
from services.platform import Registration, ServiceSpec, Settings, Vault
from services.platform.internal import check_target
from services.platform.outbox import OutboxRelay
from services.platform.resources import Resources
from services.platform.retention import Retention, inbox_rule
from services.platform.secrets import EDGE_PATH
from tradingmesh.account.v1 import (
    account_admin_service_pb2_grpc,
    account_service_pb2_grpc,
    auth_service_pb2_grpc,
    webhook_service_pb2_grpc,
)


def risk_address(environ: Mapping[str, str] = os.environ) -> str:
    """TM_RISK_ADDR: the risk service's gRPC address (host:port), or every instance's
    (`ipv4:host:port,...`, ADR 0017: each account's calls go to one of them), for the margin
    figures of GetAccount and the withdrawal check (services/account/margin.py). Required."""
    address = environ.get("TM_RISK_ADDR", "").strip()
    if not address:
        raise SystemExit("account: TM_RISK_ADDR (the risk service's gRPC address) is not set")
    try:
        return check_target(address)
    except ValueError as error:
        raise SystemExit(f"account: TM_RISK_ADDR {error}") from None


# Old rows deleted (services/platform/retention.py).
RETENTION = (inbox_rule("account"),)


def build(settings: Settings, vault: Vault) -> ServiceSpec:
    resources = Resources(settings, vault)
    (edge_token,) = vault.read_keys(EDGE_PATH, "token")
    margin = MarginFigures(risk_address(), edge_token)

    def providers() -> dict[str, Provider]:
        return parse_providers(
            {name: value.reveal() for name, value in vault.read(WEBHOOKS_PATH).items()}
        )

    relay: list[OutboxRelay | Retention] = []
    # Fail fast at start on a missing or malformed provider configuration; read again when a
    # call does not match it (a rotated key, a new provider).
    webhooks = WebhookReceiver(resources, providers(), reload=providers)
    catalogue: list[InstrumentCatalogue] = []
    bookings: list[TradeBookings | SwapBookings | StopOutCorrections] = []

    async def start_relay() -> None:
        relay.append(OutboxRelay(resources.db, resources.jetstream, "account"))
        relay.append(Retention(resources.db, RETENTION))
        for task in relay:
            await task.start()

    async def stop_relay() -> None:
        for task in relay:
            await task.stop()

    async def start_catalogue() -> None:
        # The copy of pricing's instruments that SetGroupInstrumentSettings checks against.
        catalogue.append(InstrumentCatalogue(resources.db))
        await catalogue[0].start(resources.jetstream)

    async def stop_catalogue() -> None:
        for consumer in catalogue:
            await consumer.stop()

    async def start_bookings() -> None:
        # The trading core's results: trades' P&L and commission, stop-out corrections (ADR 0007),
        # and the rollovers' swaps (ADR 0010).
        bookings.extend(
            [
                TradeBookings(resources.db),
                SwapBookings(resources.db),
                StopOutCorrections(resources.db),
            ]
        )
        for consumer in bookings:
            await consumer.start(resources.jetstream)

    async def stop_bookings() -> None:
        for consumer in bookings:
            await consumer.stop()

    return ServiceSpec(
        name="account",
        registrations=[
            Registration(
                auth_service_pb2_grpc.add_AuthServiceServicer_to_server,
                auth_api.AuthService(resources),
                "tradingmesh.account.v1.AuthService",
            ),
            Registration(
                account_service_pb2_grpc.add_AccountServiceServicer_to_server,
                AccountService(resources, margin),
                "tradingmesh.account.v1.AccountService",
            ),
            Registration(
                account_admin_service_pb2_grpc.add_AccountAdminServiceServicer_to_server,
                AccountAdminService(resources, margin),
                "tradingmesh.account.v1.AccountAdminService",
            ),
            Registration(
                webhook_service_pb2_grpc.add_WebhookServiceServicer_to_server,
                WebhookService(resources, webhooks),
                "tradingmesh.account.v1.WebhookService",
            ),
        ],
        on_start=[resources.open, start_relay, start_catalogue, start_bookings],
        on_stop=[stop_bookings, stop_catalogue, stop_relay, margin.close, resources.close],
    )

"""Wiring of the account service: what it serves and what it connects to."""

from __future__ import annotations

from services.account import server
from services.platform import Registration, ServiceSpec, Settings, Vault
from services.platform.resources import Resources
from tradingmesh.account.v1 import (
    account_admin_service_pb2_grpc,
    account_service_pb2_grpc,
    auth_service_pb2_grpc,
    webhook_service_pb2_grpc,
)


def build(settings: Settings, vault: Vault) -> ServiceSpec:
    resources = Resources(settings, vault)
    return ServiceSpec(
        name="account",
        registrations=[
            Registration(
                auth_service_pb2_grpc.add_AuthServiceServicer_to_server,
                server.AuthService(resources),  # type: ignore[abstract]  # RPCs not built yet
                "tradingmesh.account.v1.AuthService",
            ),
            Registration(
                account_service_pb2_grpc.add_AccountServiceServicer_to_server,
                server.AccountService(resources),  # type: ignore[abstract]  # RPCs not built yet
                "tradingmesh.account.v1.AccountService",
            ),
            Registration(
                account_admin_service_pb2_grpc.add_AccountAdminServiceServicer_to_server,
                server.AccountAdminService(resources),  # type: ignore[abstract]  # RPCs not built yet
                "tradingmesh.account.v1.AccountAdminService",
            ),
            Registration(
                webhook_service_pb2_grpc.add_WebhookServiceServicer_to_server,
                server.WebhookService(resources),  # type: ignore[abstract]  # RPCs not built yet
                "tradingmesh.account.v1.WebhookService",
            ),
        ],
        on_start=[resources.open],
        on_stop=[resources.close],
    )

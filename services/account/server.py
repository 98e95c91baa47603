"""gRPC servicers of the account service: map request -> domain -> response.

Each inherits the generated servicer, whose every RPC answers UNIMPLEMENTED until the
issue that builds it overrides the method.
"""

from __future__ import annotations

from services.platform.resources import Resources
from tradingmesh.account.v1 import (
    account_admin_service_pb2_grpc,
    account_service_pb2_grpc,
    auth_service_pb2_grpc,
    webhook_service_pb2_grpc,
)


class AuthService(auth_service_pb2_grpc.AuthServiceServicer):
    """tradingmesh.account.v1.AuthService: RPCs not built yet answer UNIMPLEMENTED."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources


class AccountService(account_service_pb2_grpc.AccountServiceServicer):
    """tradingmesh.account.v1.AccountService: RPCs not built yet answer UNIMPLEMENTED."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources


class AccountAdminService(account_admin_service_pb2_grpc.AccountAdminServiceServicer):
    """tradingmesh.account.v1.AccountAdminService: RPCs not built yet answer UNIMPLEMENTED."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources


class WebhookService(webhook_service_pb2_grpc.WebhookServiceServicer):
    """tradingmesh.account.v1.WebhookService: RPCs not built yet answer UNIMPLEMENTED."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

"""Wiring of the risk service: what it serves and what it connects to."""

from __future__ import annotations

from services.platform import Registration, ServiceSpec, Settings, Vault
from services.platform.resources import Resources
from services.risk import server
from tradingmesh.risk.v1 import (
    risk_admin_service_pb2_grpc,
    risk_internal_service_pb2_grpc,
    risk_service_pb2_grpc,
)


def build(settings: Settings, vault: Vault) -> ServiceSpec:
    resources = Resources(settings, vault)
    return ServiceSpec(
        name="risk",
        registrations=[
            Registration(
                risk_service_pb2_grpc.add_RiskServiceServicer_to_server,
                server.RiskService(resources),  # type: ignore[abstract]  # RPCs not built yet
                "tradingmesh.risk.v1.RiskService",
            ),
            Registration(
                risk_admin_service_pb2_grpc.add_RiskAdminServiceServicer_to_server,
                server.RiskAdminService(resources),  # type: ignore[abstract]  # RPCs not built yet
                "tradingmesh.risk.v1.RiskAdminService",
            ),
            Registration(
                risk_internal_service_pb2_grpc.add_RiskInternalServiceServicer_to_server,
                server.RiskInternalService(resources),  # type: ignore[abstract]  # RPCs not built yet
                "tradingmesh.risk.v1.RiskInternalService",
            ),
        ],
        on_start=[resources.open],
        on_stop=[resources.close],
    )

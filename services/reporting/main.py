"""Wiring of the reporting service: what it serves and what it connects to."""

from __future__ import annotations

from services.platform import Registration, ServiceSpec, Settings, Vault
from services.platform.resources import Resources
from services.reporting import server
from tradingmesh.reporting.v1 import (
    reporting_admin_service_pb2_grpc,
    reporting_internal_service_pb2_grpc,
    reporting_service_pb2_grpc,
)


def build(settings: Settings, vault: Vault) -> ServiceSpec:
    resources = Resources(settings, vault)
    return ServiceSpec(
        name="reporting",
        registrations=[
            Registration(
                reporting_service_pb2_grpc.add_ReportingServiceServicer_to_server,
                server.ReportingService(resources),
                "tradingmesh.reporting.v1.ReportingService",
            ),
            Registration(
                reporting_admin_service_pb2_grpc.add_ReportingAdminServiceServicer_to_server,
                server.ReportingAdminService(resources),
                "tradingmesh.reporting.v1.ReportingAdminService",
            ),
            Registration(
                reporting_internal_service_pb2_grpc.add_ReportingInternalServiceServicer_to_server,
                server.ReportingInternalService(resources),
                "tradingmesh.reporting.v1.ReportingInternalService",
            ),
        ],
        on_start=[resources.open],
        on_stop=[resources.close],
    )

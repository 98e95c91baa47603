"""Wiring of the oms service: what it serves and what it connects to."""

from __future__ import annotations

from services.oms import server
from services.platform import Registration, ServiceSpec, Settings, Vault
from services.platform.resources import Resources
from tradingmesh.oms.v1 import (
    oms_internal_service_pb2_grpc,
    order_admin_service_pb2_grpc,
    order_service_pb2_grpc,
    position_service_pb2_grpc,
)


def build(settings: Settings, vault: Vault) -> ServiceSpec:
    resources = Resources(settings, vault)
    return ServiceSpec(
        name="oms",
        registrations=[
            Registration(
                order_service_pb2_grpc.add_OrderServiceServicer_to_server,
                server.OrderService(resources),  # type: ignore[abstract]  # RPCs not built yet
                "tradingmesh.oms.v1.OrderService",
            ),
            Registration(
                position_service_pb2_grpc.add_PositionServiceServicer_to_server,
                server.PositionService(resources),  # type: ignore[abstract]  # RPCs not built yet
                "tradingmesh.oms.v1.PositionService",
            ),
            Registration(
                order_admin_service_pb2_grpc.add_OrderAdminServiceServicer_to_server,
                server.OrderAdminService(resources),  # type: ignore[abstract]  # RPCs not built yet
                "tradingmesh.oms.v1.OrderAdminService",
            ),
            Registration(
                oms_internal_service_pb2_grpc.add_OmsInternalServiceServicer_to_server,
                server.OmsInternalService(resources),  # type: ignore[abstract]  # RPCs not built yet
                "tradingmesh.oms.v1.OmsInternalService",
            ),
        ],
        on_start=[resources.open],
        on_stop=[resources.close],
    )

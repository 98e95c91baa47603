"""gRPC servicers of the oms service: map request -> domain -> response.

Each inherits the generated servicer, whose every RPC answers UNIMPLEMENTED until the
issue that builds it overrides the method.
"""

from __future__ import annotations

from services.platform.resources import Resources
from tradingmesh.oms.v1 import (
    oms_internal_service_pb2_grpc,
    order_admin_service_pb2_grpc,
    order_service_pb2_grpc,
    position_service_pb2_grpc,
)


class OrderService(order_service_pb2_grpc.OrderServiceServicer):
    """tradingmesh.oms.v1.OrderService: RPCs not built yet answer UNIMPLEMENTED."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources


class PositionService(position_service_pb2_grpc.PositionServiceServicer):
    """tradingmesh.oms.v1.PositionService: RPCs not built yet answer UNIMPLEMENTED."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources


class OrderAdminService(order_admin_service_pb2_grpc.OrderAdminServiceServicer):
    """tradingmesh.oms.v1.OrderAdminService: RPCs not built yet answer UNIMPLEMENTED."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources


class OmsInternalService(oms_internal_service_pb2_grpc.OmsInternalServiceServicer):
    """tradingmesh.oms.v1.OmsInternalService: RPCs not built yet answer UNIMPLEMENTED."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

"""gRPC servicers of the risk service: map request -> domain -> response.

Each inherits the generated servicer, whose every RPC answers UNIMPLEMENTED until the
issue that builds it overrides the method.
"""

from __future__ import annotations

from services.platform.resources import Resources
from tradingmesh.risk.v1 import (
    risk_admin_service_pb2_grpc,
    risk_internal_service_pb2_grpc,
    risk_service_pb2_grpc,
)


class RiskService(risk_service_pb2_grpc.RiskServiceServicer):
    """tradingmesh.risk.v1.RiskService: RPCs not built yet answer UNIMPLEMENTED."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources


class RiskAdminService(risk_admin_service_pb2_grpc.RiskAdminServiceServicer):
    """tradingmesh.risk.v1.RiskAdminService: RPCs not built yet answer UNIMPLEMENTED."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources


class RiskInternalService(risk_internal_service_pb2_grpc.RiskInternalServiceServicer):
    """tradingmesh.risk.v1.RiskInternalService: RPCs not built yet answer UNIMPLEMENTED."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

"""gRPC servicers of the reporting service: map request -> domain -> response.

Each inherits the generated servicer, whose every RPC answers UNIMPLEMENTED until the
issue that builds it overrides the method.
"""

from __future__ import annotations

from services.platform.resources import Resources
from tradingmesh.reporting.v1 import reporting_admin_service_pb2_grpc, reporting_service_pb2_grpc


class ReportingService(reporting_service_pb2_grpc.ReportingServiceServicer):
    """tradingmesh.reporting.v1.ReportingService: RPCs not built yet answer UNIMPLEMENTED."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources


class ReportingAdminService(reporting_admin_service_pb2_grpc.ReportingAdminServiceServicer):
    """tradingmesh.reporting.v1.ReportingAdminService: RPCs not built yet answer UNIMPLEMENTED."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

"""gRPC servicers of the pricing service: map request -> domain -> response.

Each inherits the generated servicer, whose every RPC answers UNIMPLEMENTED until the
issue that builds it overrides the method.
"""

from __future__ import annotations

from services.platform.resources import Resources
from tradingmesh.pricing.v1 import pricing_admin_service_pb2_grpc, pricing_service_pb2_grpc


class PricingService(pricing_service_pb2_grpc.PricingServiceServicer):
    """tradingmesh.pricing.v1.PricingService: RPCs not built yet answer UNIMPLEMENTED."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources


class PricingAdminService(pricing_admin_service_pb2_grpc.PricingAdminServiceServicer):
    """tradingmesh.pricing.v1.PricingAdminService: RPCs not built yet answer UNIMPLEMENTED."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

"""Wiring of the pricing service: what it serves and what it connects to."""

from __future__ import annotations

from services.platform import Registration, ServiceSpec, Settings, Vault
from services.platform.resources import Resources
from services.pricing import server
from tradingmesh.pricing.v1 import pricing_admin_service_pb2_grpc, pricing_service_pb2_grpc


def build(settings: Settings, vault: Vault) -> ServiceSpec:
    resources = Resources(settings, vault)
    return ServiceSpec(
        name="pricing",
        registrations=[
            Registration(
                pricing_service_pb2_grpc.add_PricingServiceServicer_to_server,
                server.PricingService(resources),  # type: ignore[abstract]  # RPCs not built yet
                "tradingmesh.pricing.v1.PricingService",
            ),
            Registration(
                pricing_admin_service_pb2_grpc.add_PricingAdminServiceServicer_to_server,
                server.PricingAdminService(resources),  # type: ignore[abstract]  # RPCs not built yet
                "tradingmesh.pricing.v1.PricingAdminService",
            ),
        ],
        on_start=[resources.open],
        on_stop=[resources.close],
    )

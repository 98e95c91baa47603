"""Wiring of the notification service: what it serves and what it connects to."""

from __future__ import annotations

from services.notification import server
from services.platform import Registration, ServiceSpec, Settings, Vault
from services.platform.resources import Resources
from tradingmesh.notification.v1 import notification_service_pb2_grpc


def build(settings: Settings, vault: Vault) -> ServiceSpec:
    resources = Resources(settings, vault)
    return ServiceSpec(
        name="notification",
        registrations=[
            Registration(
                notification_service_pb2_grpc.add_NotificationServiceServicer_to_server,
                server.NotificationService(resources),  # type: ignore[abstract]  # RPCs not built yet
                "tradingmesh.notification.v1.NotificationService",
            ),
        ],
        on_start=[resources.open],
        on_stop=[resources.close],
    )

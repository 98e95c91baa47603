"""gRPC servicers of the notification service: map request -> domain -> response.

Each inherits the generated servicer, whose every RPC answers UNIMPLEMENTED until the
issue that builds it overrides the method.
"""

from __future__ import annotations

from services.platform.resources import Resources
from tradingmesh.notification.v1 import notification_service_pb2_grpc


class NotificationService(notification_service_pb2_grpc.NotificationServiceServicer):
    """tradingmesh.notification.v1.NotificationService: RPCs not built yet answer UNIMPLEMENTED."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

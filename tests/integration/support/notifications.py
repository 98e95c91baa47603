"""A trader's notification preferences, read and switched through the edge."""

from __future__ import annotations

from google.protobuf.field_mask_pb2 import FieldMask

from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.edge_trading import Trader
from tradingmesh.notification.v1 import notification_pb2 as pb
from tradingmesh.notification.v1 import notification_service_pb2 as api
from tradingmesh.notification.v1 import notification_service_pb2_grpc as api_grpc


def preferences_of(edge: Edge, trader: Trader) -> pb.NotificationPreferences:
    """The trader's preferences as they are."""
    with edge.channel() as channel:
        read: pb.NotificationPreferences = (
            api_grpc.NotificationServiceStub(channel)
            .GetNotificationPreferences(
                api.GetNotificationPreferencesRequest(), metadata=bearer(trader.token), timeout=10
            )
            .preferences
        )
    return read


def switch_email(
    edge: Edge, trader: Trader, kind: pb.NotificationKind.ValueType, on: bool
) -> pb.NotificationPreferences:
    """Sets the trader's email for one kind of notification; the preferences as they are now."""
    with edge.channel() as channel:
        return (
            api_grpc.NotificationServiceStub(channel)
            .UpdateNotificationPreferences(
                api.UpdateNotificationPreferencesRequest(
                    preferences=pb.NotificationPreferences(
                        kinds=[pb.NotificationKindPreference(kind=kind, email_enabled=on)]
                    ),
                    update_mask=FieldMask(paths=["kinds"]),
                ),
                metadata=bearer(trader.token),
            )
            .preferences
        )

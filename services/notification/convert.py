"""Stored notifications as the contract's messages."""

from __future__ import annotations

from services.notification.domain import kind_of
from services.notification.domain import severity_of
from services.notification.store import Stored
from services.platform.messages import timestamp
from tradingmesh.notification.v1.notification_pb2 import Notification


def notification(stored: Stored) -> Notification:
    message = Notification(
        id=stored.id,
        account_id=stored.account_id or "",
        kind=kind_of(stored.kind),
        severity=severity_of(stored.severity),
        title=stored.title,
        body=stored.body,
        details=stored.details,
        create_time=timestamp(stored.created_at),
        read=stored.read_at is not None,
    )
    if stored.read_at is not None:
        message.read_time.CopyFrom(timestamp(stored.read_at))
    return message

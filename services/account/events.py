"""Account events (account_events.proto) into the outbox, in the change's transaction."""

from __future__ import annotations

import datetime
import uuid
from typing import Final

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.outbox import add_event
from tradingmesh.common.v1.events_pb2 import EventMetadata
from tradingmesh.common.v1.types_pb2 import Actor

SCHEMA: Final = "account"
PRODUCER: Final = "account"


def metadata(
    actor: Actor, *, aggregate_version: int = 0, correlation_id: str = "", causation_id: str = ""
) -> EventMetadata:
    meta = EventMetadata(
        event_id=str(uuid.uuid4()),
        producer=PRODUCER,
        correlation_id=correlation_id[:128],
        causation_id=causation_id[:128],
        aggregate_version=aggregate_version,
    )
    meta.actor.CopyFrom(actor)
    meta.occurred_at.FromDatetime(datetime.datetime.now(datetime.UTC))
    return meta


async def emit(session: AsyncSession, subject: str, event: Message) -> None:
    """Writes the event to account.outbox; the relay publishes it after the commit."""
    await add_event(session, SCHEMA, subject, event)

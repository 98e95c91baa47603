"""Account events (account_events.proto) into the outbox, in the change's transaction."""

from __future__ import annotations

import datetime
from typing import Final

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.outbox import add_event
from services.platform.outbox import event_metadata
from tradingmesh.common.v1.events_pb2 import EventMetadata
from tradingmesh.common.v1.types_pb2 import Actor

SCHEMA: Final = "account"
PRODUCER: Final = "account"


def metadata(
    actor: Actor, *, aggregate_version: int = 0, correlation_id: str = "", causation_id: str = ""
) -> EventMetadata:
    return event_metadata(
        PRODUCER,
        actor,
        datetime.datetime.now(datetime.UTC),
        version=aggregate_version,
        correlation_id=correlation_id,
        causation_id=causation_id,
    )


async def emit(session: AsyncSession, subject: str, event: Message) -> None:
    """Writes the event to account.outbox; the relay publishes it after the commit."""
    await add_event(session, SCHEMA, subject, event)

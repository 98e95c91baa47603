"""Margin events: stored in `risk.margin_events` and published through `risk.outbox` in the same
transaction as the account's new margin state (risk_events.proto)."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from typing import Any
from typing import Final

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.enums import enum_value
from services.platform.outbox import add_event
from services.platform.outbox import event_metadata
from services.risk import store
from services.risk.episodes import Episode
from services.risk.episodes import EventType
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.common.v1.types_pb2 import ActorKind
from tradingmesh.risk.v1 import risk_events_pb2
from tradingmesh.risk.v1 import risk_pb2
from tradingmesh.trading.money import money_text

__all__ = [
    "ACTOR",
    "StopOutResult",
    "margin_event_message",
    "message_of_row",
    "write_event",
]

SCHEMA: Final = "risk"
ACTOR: Final = "risk-margin-watcher"
_EVENTS: Final[dict[EventType, tuple[str, type[Message]]]] = {
    EventType.MARGIN_CALL: ("risk.account.margin_call_issued", risk_events_pb2.MarginCallIssued),
    EventType.MARGIN_CALL_RESOLVED: (
        "risk.account.margin_call_resolved",
        risk_events_pb2.MarginCallResolved,
    ),
    EventType.STOP_OUT_TRIGGERED: (
        "risk.account.stop_out_triggered",
        risk_events_pb2.StopOutTriggered,
    ),
    EventType.STOP_OUT_COMPLETED: (
        "risk.account.stop_out_completed",
        risk_events_pb2.StopOutCompleted,
    ),
}


@dataclass(frozen=True)
class StopOutResult:
    """What a STOP_OUT_COMPLETED reports."""

    closed_position_ids: Sequence[str] = field(default=())
    closing_order_ids: Sequence[str] = field(default=())
    realized_pnl: Decimal = Decimal(0)
    negative_balance: Decimal = Decimal(0)


def margin_event_message(
    *,
    event_id: str,
    account_id: str,
    type: EventType,
    account_risk: risk_pb2.AccountRisk,
    related: str | None,
    result: StopOutResult,
    created: datetime,
) -> risk_pb2.MarginEvent:
    currency = account_risk.currency
    message = risk_pb2.MarginEvent(
        id=event_id,
        account_id=account_id,
        type=enum_value(risk_pb2.MarginEventType, type.value),
        account_risk=account_risk,
        related_margin_event_id=related or "",
        closed_position_ids=list(result.closed_position_ids),
        closing_order_ids=list(result.closing_order_ids),
        realized_pnl=money_text(result.realized_pnl, currency),
        negative_balance=money_text(result.negative_balance, currency),
    )
    message.create_time.FromDatetime(created)
    return message


def message_of_row(row: Mapping[Any, Any]) -> risk_pb2.MarginEvent:
    """A stored margin event (store.MARGIN_EVENT_COLUMNS) as the contract's message."""
    risk = risk_pb2.AccountRisk.FromString(bytes(row["account_risk"]))
    return margin_event_message(
        event_id=row["id"],
        account_id=row["account_id"],
        type=EventType(row["type"]),
        account_risk=risk,
        related=row["related"] or None,
        result=StopOutResult(
            closed_position_ids=[str(p) for p in row["closed_positions"] or ()],
            closing_order_ids=[str(o) for o in row["closing_orders"] or ()],
            realized_pnl=Decimal(row["realized_pnl"]),
            negative_balance=Decimal(row["negative_balance"]),
        ),
        created=row["created_at"],
    )


async def write_event(
    session: AsyncSession,
    *,
    group_id: str,
    episode: Episode,
    margin_event: risk_pb2.MarginEvent,
    type: EventType,
) -> None:
    """Stores the margin event and its outbox row; `episode` is the state after it."""
    await store.write_margin_event(
        session,
        {
            "id": margin_event.id,
            "account_id": margin_event.account_id,
            "group_id": group_id,
            "type": type.value,
            "related": margin_event.related_margin_event_id or None,
            "closed_positions": list(margin_event.closed_position_ids),
            "closing_orders": list(margin_event.closing_order_ids),
            "realized_pnl": Decimal(margin_event.realized_pnl),
            "negative_balance": Decimal(margin_event.negative_balance),
            "account_risk": margin_event.account_risk.SerializeToString(),
            "created_at": margin_event.create_time.ToDatetime(tzinfo=UTC),
        },
    )
    subject, kind = _EVENTS[type]
    metadata = event_metadata(
        SCHEMA,
        Actor(kind=ActorKind.ACTOR_KIND_SYSTEM, id=ACTOR),
        margin_event.create_time.ToDatetime(tzinfo=UTC),
        version=episode.version,
        causation_id=margin_event.related_margin_event_id,
    )
    await add_event(session, SCHEMA, subject, kind(metadata=metadata, margin_event=margin_event))

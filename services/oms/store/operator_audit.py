"""The audit of operators' actions that belong to no trading account (migration 0015): an LP order
session's sequence numbers set or reset, a hedge order settled by hand (ADR 0007, "Operators'
tools for LP sessions and hedge orders").

`oms.operator_audit_records` is append-only (a trigger refuses UPDATE and DELETE; the `oms`
role may only SELECT and INSERT) and hash-chained: each record's `hash` is the SHA-256 of its
canonical JSON (every field but `hash`, `previous_hash` included), so changing or removing a
record breaks the chain from there on. Records are appended one at a time under a transaction
advisory lock, which the action's own transaction holds until it commits. What a settlement
does to client orders is also in their accounts' chains (`audit_records`), with the operator as
the actor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import replace
from datetime import datetime
from typing import Any
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.audit import snapshot_json
from services.platform.enums import enum_name
from services.platform.hash_chain import next_link
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.common.v1.types_pb2 import ActorKind

__all__ = ["OperatorRecord", "append", "record_hash"]

# pg advisory lock key of the chain's appends: "oms-opau" as a bigint.
_LOCK_KEY: Final = int.from_bytes(b"oms-opau", "big") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass(frozen=True)
class OperatorRecord:
    sequence: int
    action: str  # e.g. "lp_order_session.set_numbers", "hedge_order.settle"
    entity_type: str  # "lp_order_session" or "hedge_order"
    entity_id: str
    actor_kind: str
    actor_id: str
    reason: str
    before: str
    after: str
    created_at: datetime
    correlation_id: str
    previous_hash: str
    hash: str = ""


def record_hash(record: OperatorRecord) -> str:
    """SHA-256 (lower-case hex) of the record's canonical JSON without its own hash."""
    fields = asdict(record)
    del fields["hash"]
    fields["created_at"] = record.created_at.isoformat()
    return hashlib.sha256(snapshot_json(fields).encode()).hexdigest()


async def append(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str,
    reason: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    now: datetime,
    correlation_id: str = "",
) -> OperatorRecord:
    """Appends a record to the chain in the caller's transaction; returns it, sealed."""
    link = await next_link(session, table="oms.operator_audit_records", lock_key=_LOCK_KEY)
    record = OperatorRecord(
        sequence=link.sequence,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        actor_kind=enum_name(ActorKind, actor.kind),
        actor_id=actor.id,
        reason=reason,
        before=snapshot_json(before),
        after=snapshot_json(after),
        created_at=now,
        correlation_id=correlation_id[:128],
        previous_hash=link.previous_hash,
    )
    sealed = replace(record, hash=record_hash(record))
    await session.execute(
        text(
            "INSERT INTO oms.operator_audit_records (sequence, action, entity_type, entity_id,"
            " actor_kind, actor_id, reason, before, after, created_at, correlation_id,"
            " previous_hash, hash) VALUES (:sequence, :action, :entity_type, :entity_id,"
            " :actor_kind, :actor_id, :reason, :before, :after, :created_at, :correlation_id,"
            " :previous_hash, :hash)"
        ),
        asdict(sealed),
    )
    return sealed

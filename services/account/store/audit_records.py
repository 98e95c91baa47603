"""The SQL of the audit log (`account.audit_records`): a sealed record's insert, the reads that
verify the chain, and ListAuditRecords' page (the chain's rules, hashing and verification are
`services/account/audit.py`'s)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Final

from sqlalchemy import TextClause
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.account.store import time_filter
from services.account.store import where
from services.platform.enums import enum_name
from services.platform.enums import enum_value
from tradingmesh.account.v1.account_pb2 import AuditRecord
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.common.v1.types_pb2 import ActorKind
from tradingmesh.common.v1.types_pb2 import TimeRange

# The columns ListAuditRecords filters on by equality.
FILTER_COLUMNS: Final = ("actor_id", "resource_type", "resource_id", "action")

_COLUMNS: Final = (
    "sequence, id, actor_kind, actor_id, action, resource_type, resource_id, before, after, "
    "created_at, correlation_id, source_ip, previous_hash, hash"
)


def _select(where: str) -> TextClause:
    """Audit records matching `where` (a " WHERE ..." clause or ""), newest first, paged with
    :limit and :offset."""
    return text(
        f"SELECT {_COLUMNS} FROM account.audit_records{where}"
        " ORDER BY sequence DESC LIMIT :limit OFFSET :offset"
    )


def _record(row: Sequence[Any]) -> AuditRecord:
    """An AuditRecord from a row selected with the audit columns in their stored order."""
    (seq, rid, kind, actor_id, action, rtype, resource_id, before, after, created_at, corr, ip) = (
        row[:12]
    )
    record = AuditRecord(
        id=str(rid),
        sequence=int(seq),
        actor=Actor(kind=enum_value(ActorKind, kind), id=actor_id),
        action=action,
        resource_type=rtype,
        resource_id=resource_id,
        before=before,
        after=after,
        correlation_id=corr,
        source_ip=ip,
        previous_hash=row[12],
        hash=row[13],
    )
    record.create_time.FromDatetime(created_at)
    return record


async def insert_record(
    session: AsyncSession, record: AuditRecord, created_at: datetime.datetime
) -> None:
    """Stores a sealed record (its create_time is `created_at`)."""
    await session.execute(
        text(
            f"INSERT INTO account.audit_records ({_COLUMNS}) VALUES (:sequence, :id, :actor_kind,"
            " :actor_id, :action, :resource_type, :resource_id, :before, :after, :created_at,"
            " :correlation_id, :source_ip, :previous_hash, :hash)"
        ),
        {
            "sequence": record.sequence,
            "id": record.id,
            "actor_kind": enum_name(ActorKind, record.actor.kind),
            "actor_id": record.actor.id,
            "action": record.action,
            "resource_type": record.resource_type,
            "resource_id": record.resource_id,
            "before": record.before,
            "after": record.after,
            "created_at": created_at,
            "correlation_id": record.correlation_id,
            "source_ip": record.source_ip,
            "previous_hash": record.previous_hash,
            "hash": record.hash,
        },
    )


async def newest_sequence(session: AsyncSession) -> int:
    """The sequence of the newest record; 0 when there is none."""
    newest = await session.scalar(text("SELECT max(sequence) FROM account.audit_records"))
    return int(newest or 0)


async def hash_at(session: AsyncSession, sequence: int) -> str | None:
    """The hash of the record of `sequence`; None when there is none."""
    row = (
        await session.execute(
            text("SELECT hash FROM account.audit_records WHERE sequence = :s"), {"s": sequence}
        )
    ).first()
    return None if row is None else str(row[0])


async def records_between(session: AsyncSession, start: int, last: int) -> list[AuditRecord]:
    """The records of sequences `start` to `last`, in sequence order (streamed from the
    server: a verification may read a million)."""
    result = await session.stream(
        text(
            f"SELECT {_COLUMNS} FROM account.audit_records"
            " WHERE sequence BETWEEN :start AND :last ORDER BY sequence"
        ),
        {"start": start, "last": last},
    )
    return [_record(row) async for row in result]


async def list_audit_records(
    session: AsyncSession,
    *,
    time_range: TimeRange | None,
    equal: Mapping[str, str],
    limit: int,
    offset: int,
) -> list[AuditRecord]:
    """Audit records newest first; `equal` maps columns of FILTER_COLUMNS to the value they
    must have (an empty value is no filter)."""
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    clauses = [] if time_range is None else time_filter("created_at", time_range, True, params)
    for column in FILTER_COLUMNS:
        value = equal.get(column, "")
        if value:
            clauses.append(f"{column} = :{column}")
            params[column] = value
    result = await session.execute(_select(where(clauses)), params)
    return [_record(r) for r in result.all()]

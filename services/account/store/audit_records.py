"""The audit log's reads for ListAuditRecords (`account.audit_records`; the chain and its
writes are `services/account/audit.py`'s)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from services.account.audit import record_from_row, select_records_sql
from services.account.store import time_filter, where
from tradingmesh.account.v1.account_pb2 import AuditRecord
from tradingmesh.common.v1.types_pb2 import TimeRange

# The columns ListAuditRecords filters on by equality.
FILTER_COLUMNS: Final = ("actor_id", "resource_type", "resource_id", "action")


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
    result = await session.execute(select_records_sql(where(clauses)), params)
    return [record_from_row(r) for r in result.all()]

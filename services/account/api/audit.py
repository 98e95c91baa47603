# ruff: noqa: N802  # servicer methods carry the contract's RPC names
"""The audit log for admins: ListAuditRecords and VerifyAuditChain (services/account/audit.py)."""

from __future__ import annotations

from typing import Any

from services.account import audit, store
from services.account.api.common import AdminPart, Context
from services.platform.access import ADMIN, require_roles
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb

__all__ = ["AuditAdmin"]


class AuditAdmin(AdminPart):
    """The audit RPCs of AccountAdminService."""

    async def ListAuditRecords(
        self, request: admin_pb.ListAuditRecordsRequest, context: Context
    ) -> admin_pb.ListAuditRecordsResponse:
        require_roles((ADMIN,))
        limit, offset = store.page(request.page_size, request.page_token)
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        clauses = store.time_filter(
            "created_at", request.time_range, request.HasField("time_range"), params
        )
        for column, value in (
            ("actor_id", request.actor_id),
            ("resource_type", request.resource_type),
            ("resource_id", request.resource_id),
            ("action", request.action),
        ):
            if value:
                clauses.append(f"{column} = :{column}")
                params[column] = value
        async with self.resources.db.read_session() as session:
            result = await session.execute(audit.select_records_sql(store.where(clauses)), params)
            records = [audit.record_from_row(r) for r in result.all()]
        return admin_pb.ListAuditRecordsResponse(
            audit_records=records, next_page_token=store.next_token(offset, limit, len(records))
        )

    async def VerifyAuditChain(
        self, request: admin_pb.VerifyAuditChainRequest, context: Context
    ) -> admin_pb.VerifyAuditChainResponse:
        require_roles((ADMIN,))
        async with self.resources.db.read_session() as session:
            verdict = await audit.verify_chain(
                session,
                start_sequence=request.start_sequence,
                end_sequence=request.end_sequence,
                expected_end_hash=request.expected_end_hash,
            )
        return admin_pb.VerifyAuditChainResponse(**verdict.__dict__)

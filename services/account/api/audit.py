# ruff: noqa: N802  # servicer methods carry the contract's RPC names
"""The audit log for admins: ListAuditRecords and VerifyAuditChain (services/account/audit.py)."""

from __future__ import annotations

from services.account import audit
from services.account.api.common import AdminPart
from services.account.api.common import Context
from services.account.store.audit_records import list_audit_records
from services.platform.access import ADMIN
from services.platform.access import require_roles
from services.platform.paging import next_offset_token
from services.platform.paging import offset_page
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb

__all__ = ["AuditAdmin"]


class AuditAdmin(AdminPart):
    """The audit RPCs of AccountAdminService."""

    async def ListAuditRecords(
        self, request: admin_pb.ListAuditRecordsRequest, context: Context
    ) -> admin_pb.ListAuditRecordsResponse:
        require_roles((ADMIN,))
        limit, offset = offset_page(request.page_size, request.page_token)
        async with self.resources.db.read_session() as session:
            records = await list_audit_records(
                session,
                time_range=request.time_range if request.HasField("time_range") else None,
                equal={
                    "actor_id": request.actor_id,
                    "resource_type": request.resource_type,
                    "resource_id": request.resource_id,
                    "action": request.action,
                },
                limit=limit,
                offset=offset,
            )
        return admin_pb.ListAuditRecordsResponse(
            audit_records=records,
            next_page_token=next_offset_token(offset, limit, len(records) == limit),
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

# ruff: noqa: N802  # servicer methods carry the contract's RPC names
"""Withdrawals as staff see them: SearchWithdrawals and RejectWithdrawal (the reversal is
`services/account/withdrawals.py`'s, shared with a provider's "failed"); `search_withdrawals`
serves the client's ListWithdrawals too."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from services.account import audit
from services.account import convert
from services.account import withdrawals
from services.account.api.common import MONEY_STAFF
from services.account.api.common import AdminPart
from services.account.api.common import Context
from services.account.api.common import PageRequest
from services.account.api.common import audit_change
from services.account.api.common import enum_names
from services.account.api.common import offset_listing
from services.account.domain import WithdrawalStatus
from services.account.store import withdrawals as withdrawal_store
from services.platform.access import require_roles
from services.platform.errors import DomainError
from services.platform.errors import not_found
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb
from tradingmesh.account.v1 import account_pb2 as pb
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = ["WithdrawalAdmin", "search_withdrawals"]

_R = ErrorReason


async def search_withdrawals(
    session: AsyncSession,
    request: PageRequest,
    *,
    account_id: uuid.UUID | None,
    statuses: Iterable[int],
    time_range: types_pb2.TimeRange | None,
) -> tuple[list[pb.Withdrawal], str]:
    """The page `request` asks for of the withdrawals of one account (or all)."""
    return await offset_listing(
        session,
        request,
        withdrawal_store.list_withdrawals,
        convert.withdrawal,
        account_id=account_id,
        statuses=enum_names(pb.WithdrawalStatus, statuses),
        time_range=time_range,
    )


class WithdrawalAdmin(AdminPart):
    """SearchWithdrawals and RejectWithdrawal of AccountAdminService."""

    async def SearchWithdrawals(
        self, request: admin_pb.SearchWithdrawalsRequest, context: Context
    ) -> admin_pb.SearchWithdrawalsResponse:
        require_roles(MONEY_STAFF)
        async with self.resources.db.read_session() as session:
            found, token = await search_withdrawals(
                session,
                request,
                account_id=uuid.UUID(request.account_id) if request.account_id else None,
                statuses=request.statuses,
                time_range=request.time_range if request.HasField("time_range") else None,
            )
        return admin_pb.SearchWithdrawalsResponse(withdrawals=found, next_page_token=token)

    async def RejectWithdrawal(
        self, request: admin_pb.RejectWithdrawalRequest, context: Context
    ) -> admin_pb.RejectWithdrawalResponse:
        caller = require_roles(MONEY_STAFF)
        async with self.resources.db.transaction() as session:
            row = await withdrawal_store.locked_withdrawal(
                session, uuid.UUID(request.withdrawal_id)
            )
            if row is None:
                raise not_found("withdrawal", "withdrawal_id", request.withdrawal_id)
            if row["status"] == WithdrawalStatus.REJECTED:
                return admin_pb.RejectWithdrawalResponse(withdrawal=convert.withdrawal(row))
            if row["status"] != WithdrawalStatus.PENDING:
                raise DomainError(
                    _R.ERROR_REASON_INVALID_STATE,
                    f"the withdrawal is {row['status']}: the payment provider has it",
                    metadata={"status": row["status"]},
                )
            before = convert.withdrawal(row)
            withdrawal = await withdrawals.reverse_withdrawal(
                session,
                row,
                actor=audit.actor_of(caller),
                reason=request.reason,
                correlation_id=caller.request_id,
            )
            await audit_change(session, caller, "withdrawal.reject", withdrawal, before=before)
        return admin_pb.RejectWithdrawalResponse(withdrawal=withdrawal)

# ruff: noqa: N802  # servicer methods carry the contract's RPC names
"""Maker-checker balance adjustments: RequestBalanceAdjustment, ApproveBalanceAdjustment,
RejectBalanceAdjustment, ListBalanceAdjustments (the checker is never the maker)."""

from __future__ import annotations

import uuid
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from services.account import audit
from services.account import convert
from services.account import events
from services.account import store
from services.account.api.common import MONEY_STAFF
from services.account.api.common import AdminPart
from services.account.api.common import Context
from services.account.api.common import audit_change
from services.account.api.common import enum_names
from services.account.api.common import event_metadata
from services.account.convert import Row
from services.account.domain import AdjustmentStatus
from services.account.domain import Reason
from services.account.domain import TradingAccountStatus
from services.account.domain import check_decidable
from services.account.domain import check_same_amount
from services.account.domain import parse_amount
from services.account.store import adjustments as adjustment_store
from services.account.store import ledger
from services.platform.access import require_roles
from services.platform.errors import DomainError
from services.platform.errors import not_found
from services.platform.identity import Caller
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb
from tradingmesh.account.v1 import account_events_pb2 as ev
from tradingmesh.account.v1 import account_pb2 as pb
from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = ["BalanceAdjustmentAdmin"]

_R = ErrorReason


class BalanceAdjustmentAdmin(AdminPart):
    """The balance adjustment RPCs of AccountAdminService."""

    async def RequestBalanceAdjustment(
        self, request: admin_pb.RequestBalanceAdjustmentRequest, context: Context
    ) -> admin_pb.RequestBalanceAdjustmentResponse:
        caller = require_roles(MONEY_STAFF)
        async with self.resources.db.transaction() as session:
            account = await store.require_account_row(session, request.account_id, lock=True)
            if account["status"] == TradingAccountStatus.CLOSED:
                raise DomainError(_R.ERROR_REASON_INVALID_STATE, "the account is closed")
            currency = account["currency"].strip()
            amount = parse_amount(request.amount, currency, "amount")
            existing = await adjustment_store.adjustment_by_key(
                session, account["id"], request.idempotency_key
            )
            if existing is not None:
                check_same_amount(existing["amount"], amount, request.idempotency_key)
                return admin_pb.RequestBalanceAdjustmentResponse(
                    balance_adjustment=convert.balance_adjustment(existing)
                )
            row = await adjustment_store.insert_adjustment(
                session,
                account_id=account["id"],
                amount=amount,
                currency=currency,
                reason=request.reason,
                status=AdjustmentStatus.PENDING_APPROVAL,
                idempotency_key=request.idempotency_key,
                maker=audit.actor_of(caller),
            )
            adjustment = convert.balance_adjustment(row)
            await events.emit(
                session,
                "account.balance_adjustment.requested",
                ev.BalanceAdjustmentRequested(
                    metadata=event_metadata(caller, version=1), balance_adjustment=adjustment
                ),
            )
            await audit_change(session, caller, "balance_adjustment.request", adjustment)
        return admin_pb.RequestBalanceAdjustmentResponse(balance_adjustment=adjustment)

    async def ApproveBalanceAdjustment(
        self, request: admin_pb.ApproveBalanceAdjustmentRequest, context: Context
    ) -> admin_pb.ApproveBalanceAdjustmentResponse:
        adjustment, entry = await self._review(
            request.balance_adjustment_id, AdjustmentStatus.APPROVED, request.comment
        )
        return admin_pb.ApproveBalanceAdjustmentResponse(
            balance_adjustment=adjustment, ledger_entry=entry
        )

    async def RejectBalanceAdjustment(
        self, request: admin_pb.RejectBalanceAdjustmentRequest, context: Context
    ) -> admin_pb.RejectBalanceAdjustmentResponse:
        adjustment, _ = await self._review(
            request.balance_adjustment_id, AdjustmentStatus.REJECTED, request.comment
        )
        return admin_pb.RejectBalanceAdjustmentResponse(balance_adjustment=adjustment)

    async def _review(
        self, adjustment_id: str, decision: AdjustmentStatus, comment: str
    ) -> tuple[pb.BalanceAdjustment, pb.LedgerEntry | None]:
        """The checker's `decision` (APPROVED or REJECTED) on a pending adjustment, and the
        ledger entry an approval posts; the same answer again for an adjustment decided alike
        before."""
        caller = require_roles(MONEY_STAFF)
        async with self.resources.db.transaction() as session:
            row = await _under_review(session, caller, adjustment_id, decision)
            approving = decision is AdjustmentStatus.APPROVED
            if row["status"] == decision:
                entry = None
                if approving:
                    entry = await ledger.find_entry(
                        session, Reason.ADJUSTMENT, "balance_adjustment", str(row["id"])
                    )
                    assert entry is not None
                return convert.balance_adjustment(row), entry
            checker = audit.actor_of(caller)
            before = convert.balance_adjustment(row)
            entry = None
            if approving:
                posted = await ledger.post_request(
                    session,
                    "balance_adjustment",
                    row,
                    Reason.ADJUSTMENT,
                    actor=checker,
                    description=row["reason"],
                    correlation_id=caller.request_id,
                )
                entry = posted.entry
            updated = await adjustment_store.review_adjustment(
                session,
                row["id"],
                status=decision,
                checker=checker,
                comment=comment,
                ledger_entry_id=None if entry is None else uuid.UUID(entry.id),
            )
            adjustment = await _record_review(session, caller, updated, before)
        return adjustment, entry

    async def ListBalanceAdjustments(
        self, request: admin_pb.ListBalanceAdjustmentsRequest, context: Context
    ) -> admin_pb.ListBalanceAdjustmentsResponse:
        require_roles(MONEY_STAFF)
        adjustments, token = await self.listing(
            request,
            adjustment_store.list_adjustments,
            convert.balance_adjustment,
            account_id=uuid.UUID(request.account_id) if request.account_id else None,
            statuses=enum_names(pb.BalanceAdjustmentStatus, request.statuses),
            time_range=request.time_range if request.HasField("time_range") else None,
        )
        return admin_pb.ListBalanceAdjustmentsResponse(
            balance_adjustments=adjustments, next_page_token=token
        )


# A decision's event subject, event and audit action.
_REVIEWS: Final = {
    AdjustmentStatus.APPROVED: (
        "account.balance_adjustment.approved",
        ev.BalanceAdjustmentApproved,
        "balance_adjustment.approve",
    ),
    AdjustmentStatus.REJECTED: (
        "account.balance_adjustment.rejected",
        ev.BalanceAdjustmentRejected,
        "balance_adjustment.reject",
    ),
}


async def _record_review(
    session: AsyncSession, caller: Caller, updated: Row, before: pb.BalanceAdjustment
) -> pb.BalanceAdjustment:
    """The reviewed adjustment (`updated`, its row after the decision), with its event and
    audit record."""
    subject, event, action = _REVIEWS[AdjustmentStatus(updated["status"])]
    adjustment = convert.balance_adjustment(updated)
    await events.emit(
        session,
        subject,
        event(metadata=event_metadata(caller, version=2), balance_adjustment=adjustment),
    )
    await audit_change(session, caller, action, adjustment, before=before)
    return adjustment


async def _under_review(
    session: AsyncSession, caller: Caller, adjustment_id: str, decision: AdjustmentStatus
) -> Row:
    """The adjustment's locked row for the checker's `decision`: NOT_FOUND, the maker may
    not check it, and one decided otherwise is INVALID_STATE (one decided alike stays)."""
    row = await adjustment_store.locked_adjustment(session, uuid.UUID(adjustment_id))
    if row is None:
        raise not_found("balance adjustment", "balance_adjustment_id", adjustment_id)
    check_decidable(row["maker_id"], audit.actor_of(caller).id, row["status"], decision)
    return row

# ruff: noqa: N802  # servicer methods carry the contract's RPC names
"""Maker-checker balance adjustments: RequestBalanceAdjustment, ApproveBalanceAdjustment,
RejectBalanceAdjustment, ListBalanceAdjustments (the checker is never the maker)."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from services.account import audit, convert, events, ledger, store
from services.account.api.common import (
    MONEY_STAFF,
    AdminPart,
    Context,
    audit_change,
    enum_names,
    event_metadata,
    offset_listing,
)
from services.account.convert import Row
from services.account.domain import (
    AdjustmentStatus,
    Reason,
    TradingAccountStatus,
    check_same_amount,
    parse_amount,
)
from services.account.store import adjustments as adjustment_store
from services.platform.access import require_roles
from services.platform.errors import DomainError
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
                maker=convert.actor_columns(audit.actor_of(caller)),
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

    @staticmethod
    async def _under_review(
        session: AsyncSession, caller: Caller, adjustment_id: str, decision: AdjustmentStatus
    ) -> Row:
        """The adjustment's locked row for the checker's `decision`: NOT_FOUND, the maker may
        not check it, and one decided otherwise is INVALID_STATE (one decided alike stays)."""
        row = await adjustment_store.locked_adjustment(session, uuid.UUID(adjustment_id))
        if row is None:
            raise DomainError(
                _R.ERROR_REASON_NOT_FOUND,
                f"balance adjustment {adjustment_id} not found",
                metadata={"balance_adjustment_id": adjustment_id},
            )
        if audit.actor_of(caller).id == row["maker_id"]:
            raise DomainError(
                _R.ERROR_REASON_MAKER_CHECKER_VIOLATION,
                "the maker of an adjustment cannot approve or reject it",
            )
        if row["status"] not in (decision, AdjustmentStatus.PENDING_APPROVAL):
            raise DomainError(
                _R.ERROR_REASON_INVALID_STATE, f"the adjustment was {row['status'].lower()}"
            )
        return row

    async def ApproveBalanceAdjustment(
        self, request: admin_pb.ApproveBalanceAdjustmentRequest, context: Context
    ) -> admin_pb.ApproveBalanceAdjustmentResponse:
        caller = require_roles(MONEY_STAFF)
        async with self.resources.db.transaction() as session:
            row = await self._under_review(
                session, caller, request.balance_adjustment_id, AdjustmentStatus.APPROVED
            )
            if row["status"] == AdjustmentStatus.APPROVED:
                found = await ledger.find_entry(
                    session, Reason.ADJUSTMENT, "balance_adjustment", str(row["id"])
                )
                assert found is not None
                return admin_pb.ApproveBalanceAdjustmentResponse(
                    balance_adjustment=convert.balance_adjustment(row), ledger_entry=found
                )
            checker = audit.actor_of(caller)
            before = convert.balance_adjustment(row)
            posted = await ledger.post(
                session,
                account_id=row["account_id"],
                reason=Reason.ADJUSTMENT,
                amount=row["amount"],
                reference_type="balance_adjustment",
                reference_id=str(row["id"]),
                actor=checker,
                description=row["reason"],
                references=ledger.References(balance_adjustment_id=str(row["id"])),
                correlation_id=caller.request_id,
            )
            updated = await adjustment_store.review_adjustment(
                session,
                row["id"],
                status=AdjustmentStatus.APPROVED,
                checker=convert.actor_columns(checker),
                comment=request.comment,
                ledger_entry_id=uuid.UUID(posted.entry.id),
            )
            adjustment = await _record_review(session, caller, updated, before)
        return admin_pb.ApproveBalanceAdjustmentResponse(
            balance_adjustment=adjustment, ledger_entry=posted.entry
        )

    async def RejectBalanceAdjustment(
        self, request: admin_pb.RejectBalanceAdjustmentRequest, context: Context
    ) -> admin_pb.RejectBalanceAdjustmentResponse:
        caller = require_roles(MONEY_STAFF)
        async with self.resources.db.transaction() as session:
            row = await self._under_review(
                session, caller, request.balance_adjustment_id, AdjustmentStatus.REJECTED
            )
            if row["status"] == AdjustmentStatus.REJECTED:
                return admin_pb.RejectBalanceAdjustmentResponse(
                    balance_adjustment=convert.balance_adjustment(row)
                )
            before = convert.balance_adjustment(row)
            updated = await adjustment_store.review_adjustment(
                session,
                row["id"],
                status=AdjustmentStatus.REJECTED,
                checker=convert.actor_columns(audit.actor_of(caller)),
                comment=request.comment,
            )
            adjustment = await _record_review(session, caller, updated, before)
        return admin_pb.RejectBalanceAdjustmentResponse(balance_adjustment=adjustment)

    async def ListBalanceAdjustments(
        self, request: admin_pb.ListBalanceAdjustmentsRequest, context: Context
    ) -> admin_pb.ListBalanceAdjustmentsResponse:
        require_roles(MONEY_STAFF)
        async with self.resources.db.read_session() as session:
            adjustments, token = await offset_listing(
                request.page_size,
                request.page_token,
                partial(
                    adjustment_store.list_adjustments,
                    session,
                    account_id=uuid.UUID(request.account_id) if request.account_id else None,
                    statuses=enum_names(pb.BalanceAdjustmentStatus, request.statuses),
                    time_range=request.time_range if request.HasField("time_range") else None,
                ),
                convert.balance_adjustment,
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

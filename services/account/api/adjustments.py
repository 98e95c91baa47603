# ruff: noqa: N802  # servicer methods carry the contract's RPC names
"""Maker-checker balance adjustments: RequestBalanceAdjustment, ApproveBalanceAdjustment,
RejectBalanceAdjustment, ListBalanceAdjustments (the checker is never the maker)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from services.account import audit, convert, events, ledger, store
from services.account.api.common import (
    MONEY_STAFF,
    AdminPart,
    Context,
    audit_change,
    enum_names,
    event_metadata,
)
from services.account.domain import AdjustmentStatus, Reason, parse_amount
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
            if account["status"] == "CLOSED":
                raise DomainError(_R.ERROR_REASON_INVALID_STATE, "the account is closed")
            currency = account["currency"].strip()
            amount = parse_amount(request.amount, currency, "amount")
            existing = await store.one(
                session,
                f"SELECT {store.ADJUSTMENT_COLUMNS} FROM account.balance_adjustments"
                " WHERE account_id = :a AND idempotency_key = :k",
                {"a": account["id"], "k": request.idempotency_key},
            )
            if existing is not None:
                if existing["amount"] != amount:
                    raise DomainError(
                        _R.ERROR_REASON_ALREADY_EXISTS,
                        "this idempotency key was used for a different amount",
                        metadata={"idempotency_key": request.idempotency_key},
                    )
                return admin_pb.RequestBalanceAdjustmentResponse(
                    balance_adjustment=convert.balance_adjustment(existing)
                )
            maker = audit.actor_of(caller)
            kind, maker_id = convert.actor_columns(maker)
            row = await store.one(
                session,
                "INSERT INTO account.balance_adjustments (id, account_id, amount, currency,"
                " reason, status, idempotency_key, maker_kind, maker_id) VALUES (:id, :a,"
                " :amount, :currency, :reason, 'PENDING_APPROVAL', :k, :kind, :maker)"
                f" RETURNING {store.ADJUSTMENT_COLUMNS}",
                {
                    "id": uuid.uuid4(),
                    "a": account["id"],
                    "amount": amount,
                    "currency": currency,
                    "reason": request.reason,
                    "k": request.idempotency_key,
                    "kind": kind,
                    "maker": maker_id,
                },
            )
            assert row is not None
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

    async def _pending_adjustment(
        self, session: Any, caller: Caller, adjustment_id: str
    ) -> Mapping[Any, Any]:
        row = await store.one(
            session,
            f"SELECT {store.ADJUSTMENT_COLUMNS} FROM account.balance_adjustments"
            " WHERE id = :id FOR UPDATE",
            {"id": uuid.UUID(adjustment_id)},
        )
        if row is None:
            raise DomainError(
                _R.ERROR_REASON_NOT_FOUND,
                f"balance adjustment {adjustment_id} not found",
                metadata={"balance_adjustment_id": adjustment_id},
            )
        return row

    @staticmethod
    def _check_not_maker(caller: Caller, row: Mapping[Any, Any]) -> None:
        checker = audit.actor_of(caller)
        if checker.id == row["maker_id"]:
            raise DomainError(
                _R.ERROR_REASON_MAKER_CHECKER_VIOLATION,
                "the maker of an adjustment cannot approve or reject it",
            )

    async def ApproveBalanceAdjustment(
        self, request: admin_pb.ApproveBalanceAdjustmentRequest, context: Context
    ) -> admin_pb.ApproveBalanceAdjustmentResponse:
        caller = require_roles(MONEY_STAFF)
        async with self.resources.db.transaction() as session:
            row = await self._pending_adjustment(session, caller, request.balance_adjustment_id)
            self._check_not_maker(caller, row)
            if row["status"] == AdjustmentStatus.APPROVED:
                found = await ledger.find_entry(
                    session, Reason.ADJUSTMENT, "balance_adjustment", str(row["id"])
                )
                assert found is not None
                return admin_pb.ApproveBalanceAdjustmentResponse(
                    balance_adjustment=convert.balance_adjustment(row), ledger_entry=found
                )
            if row["status"] != AdjustmentStatus.PENDING_APPROVAL:
                raise DomainError(_R.ERROR_REASON_INVALID_STATE, "the adjustment was rejected")
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
            kind, checker_id = convert.actor_columns(checker)
            updated = await store.one(
                session,
                "UPDATE account.balance_adjustments SET status = 'APPROVED', checker_kind = :kind,"
                " checker_id = :checker, checker_comment = :comment, ledger_entry_id = :entry,"
                f" reviewed_at = now() WHERE id = :id RETURNING {store.ADJUSTMENT_COLUMNS}",
                {
                    "kind": kind,
                    "checker": checker_id,
                    "comment": request.comment,
                    "entry": uuid.UUID(posted.entry.id),
                    "id": row["id"],
                },
            )
            assert updated is not None
            adjustment = convert.balance_adjustment(updated)
            await events.emit(
                session,
                "account.balance_adjustment.approved",
                ev.BalanceAdjustmentApproved(
                    metadata=event_metadata(caller, version=2), balance_adjustment=adjustment
                ),
            )
            await audit_change(
                session, caller, "balance_adjustment.approve", adjustment, before=before
            )
        return admin_pb.ApproveBalanceAdjustmentResponse(
            balance_adjustment=adjustment, ledger_entry=posted.entry
        )

    async def RejectBalanceAdjustment(
        self, request: admin_pb.RejectBalanceAdjustmentRequest, context: Context
    ) -> admin_pb.RejectBalanceAdjustmentResponse:
        caller = require_roles(MONEY_STAFF)
        async with self.resources.db.transaction() as session:
            row = await self._pending_adjustment(session, caller, request.balance_adjustment_id)
            self._check_not_maker(caller, row)
            if row["status"] == AdjustmentStatus.REJECTED:
                return admin_pb.RejectBalanceAdjustmentResponse(
                    balance_adjustment=convert.balance_adjustment(row)
                )
            if row["status"] != AdjustmentStatus.PENDING_APPROVAL:
                raise DomainError(_R.ERROR_REASON_INVALID_STATE, "the adjustment was approved")
            checker = audit.actor_of(caller)
            kind, checker_id = convert.actor_columns(checker)
            before = convert.balance_adjustment(row)
            updated = await store.one(
                session,
                "UPDATE account.balance_adjustments SET status = 'REJECTED', checker_kind = :kind,"
                " checker_id = :checker, checker_comment = :comment, reviewed_at = now()"
                f" WHERE id = :id RETURNING {store.ADJUSTMENT_COLUMNS}",
                {"kind": kind, "checker": checker_id, "comment": request.comment, "id": row["id"]},
            )
            assert updated is not None
            adjustment = convert.balance_adjustment(updated)
            await events.emit(
                session,
                "account.balance_adjustment.rejected",
                ev.BalanceAdjustmentRejected(
                    metadata=event_metadata(caller, version=2), balance_adjustment=adjustment
                ),
            )
            await audit_change(
                session, caller, "balance_adjustment.reject", adjustment, before=before
            )
        return admin_pb.RejectBalanceAdjustmentResponse(balance_adjustment=adjustment)

    async def ListBalanceAdjustments(
        self, request: admin_pb.ListBalanceAdjustmentsRequest, context: Context
    ) -> admin_pb.ListBalanceAdjustmentsResponse:
        require_roles(MONEY_STAFF)
        limit, offset = store.page(request.page_size, request.page_token)
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        clauses: list[str] = []
        if request.account_id:
            clauses.append("account_id = :a")
            params["a"] = uuid.UUID(request.account_id)
        if request.statuses:
            clauses.append("status = ANY(:statuses)")
            params["statuses"] = enum_names(pb.BalanceAdjustmentStatus, request.statuses)
        clauses += store.time_filter(
            "created_at", request.time_range, request.HasField("time_range"), params
        )
        async with self.resources.db.read_session() as session:
            rows = await store.many(
                session,
                f"SELECT {store.ADJUSTMENT_COLUMNS} FROM account.balance_adjustments"
                f"{store.where(clauses)} ORDER BY created_at DESC, id LIMIT :limit OFFSET :offset",
                params,
            )
        return admin_pb.ListBalanceAdjustmentsResponse(
            balance_adjustments=[convert.balance_adjustment(r) for r in rows],
            next_page_token=store.next_token(offset, limit, len(rows)),
        )

# ruff: noqa: N802  # servicer methods carry the contract's RPC names
"""tradingmesh.account.v1.AccountService: the caller's own user, trading accounts, ledger and
withdrawals. Every change runs in one transaction (`db.transaction()`): the change, its ledger
legs, its audit record and its outbox events commit together or not at all."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from services.account import audit
from services.account import convert
from services.account import events
from services.account import store
from services.account import withdrawals
from services.account.api.common import Context
from services.account.api.common import audit_change
from services.account.api.common import enum_names
from services.account.api.common import offset_listing
from services.account.api.withdrawals import search_withdrawals
from services.account.convert import Row
from services.account.domain import Reason
from services.account.domain import WithdrawalStatus
from services.account.domain import check_may_withdraw
from services.account.domain import check_same_amount
from services.account.domain import format_money
from services.account.domain import parse_amount
from services.account.margin import MarginFigures
from services.account.store import accounts as account_store
from services.account.store import ledger
from services.account.store import withdrawals as withdrawal_store
from services.account.withdrawals import withdrawal_event_fields
from services.platform.access import require_account
from services.platform.access import require_user
from services.platform.errors import DomainError
from services.platform.identity import Caller
from services.platform.resources import Resources
from tradingmesh.account.v1 import account_events_pb2 as ev
from tradingmesh.account.v1 import account_service_pb2 as api_pb
from tradingmesh.account.v1 import account_service_pb2_grpc
from tradingmesh.common.v1 import ledger_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = ["AccountService"]

_R = ErrorReason


class AccountService(account_service_pb2_grpc.AccountServiceServicer):
    """tradingmesh.account.v1.AccountService."""

    def __init__(self, resources: Resources, margin: MarginFigures) -> None:
        self.resources = resources
        self.margin = margin

    @asynccontextmanager
    async def _owned(
        self, caller: Caller, account_id: str, *, write: bool = False
    ) -> AsyncIterator[tuple[AsyncSession, Row]]:
        """A session (a transaction when `write`) and in it the caller's trading account
        `account_id` (NOT_FOUND when it is not theirs)."""
        db = self.resources.db
        async with db.transaction() if write else db.read_session() as session:
            row = await store.account_row(session, account_id)
            require_account(account_id, None if row is None else str(row["user_id"]), caller)
            assert row is not None
            yield session, row

    async def GetMe(self, request: api_pb.GetMeRequest, context: Context) -> api_pb.GetMeResponse:
        caller = require_user()
        async with self.resources.db.read_session() as session:
            row = await store.require_user_row(session, caller.subject)
        return api_pb.GetMeResponse(user=convert.user(row))

    async def ListAccounts(
        self, request: api_pb.ListAccountsRequest, context: Context
    ) -> api_pb.ListAccountsResponse:
        caller = require_user()
        user_id = store.as_uuid(caller.subject)
        if user_id is None:
            return api_pb.ListAccountsResponse()
        async with self.resources.db.read_session() as session:
            accounts, token = await offset_listing(
                session,
                request,
                account_store.list_accounts,
                convert.trading_account,
                user_id=user_id,
                account_ids=None if caller.api_key_id is None else caller.account_ids,
            )
        return api_pb.ListAccountsResponse(accounts=accounts, next_page_token=token)

    async def GetAccount(
        self, request: api_pb.GetAccountRequest, context: Context
    ) -> api_pb.GetAccountResponse:
        async with self._owned(require_user(), request.account_id) as (session, row):
            summary = await self.margin.summary(session, row)
        return api_pb.GetAccountResponse(account=convert.trading_account(row), summary=summary)

    async def ListLedgerEntries(
        self, request: api_pb.ListLedgerEntriesRequest, context: Context
    ) -> api_pb.ListLedgerEntriesResponse:
        async with self._owned(require_user(), request.account_id) as (session, row):
            entries, token = await offset_listing(
                session,
                request,
                account_store.list_ledger_entries,
                convert.ledger_entry,
                account_id=row["id"],
                time_range=request.time_range if request.HasField("time_range") else None,
                reasons=enum_names(ledger_pb2.LedgerEntryReason, request.reasons),
            )
        return api_pb.ListLedgerEntriesResponse(entries=entries, next_page_token=token)

    async def RequestWithdrawal(
        self, request: api_pb.RequestWithdrawalRequest, context: Context
    ) -> api_pb.RequestWithdrawalResponse:
        caller = require_user()
        async with self._owned(caller, request.account_id, write=True) as (session, account):
            if caller.api_key_id is not None:
                raise DomainError(
                    _R.ERROR_REASON_PERMISSION_DENIED, "API keys cannot request withdrawals"
                )
            user = await store.user_row(session, str(account["user_id"]))
            assert user is not None
            check_may_withdraw(user["kyc_status"], user["status"], account["status"])
            currency = account["currency"].strip()
            amount = parse_amount(request.amount, currency, "amount", positive=True)
            locked = await ledger.lock_balance(session, account["id"])
            # After the lock, so two retries with one key cannot both pass this check.
            existing = await withdrawal_store.withdrawal_by_key(
                session, account["id"], request.idempotency_key
            )
            if existing is not None:
                check_same_amount(existing["amount"], amount, request.idempotency_key)
                return api_pb.RequestWithdrawalResponse(withdrawal=convert.withdrawal(existing))
            withdrawal_id = withdrawals.withdrawal_id_of(account["id"], request.idempotency_key)
            # Money that backs open positions stays: the risk service reserves the amount
            # against the free margin (racing orders and withdrawals included) while this
            # transaction holds the balance lock; refused, nothing changes.
            await self.margin.reserve_withdrawal(
                str(account["id"]),
                str(withdrawal_id),
                format_money(amount, currency),
                locked.last_sequence,
            )
            actor = audit.actor_of(caller)
            posted = await ledger.post(
                session,
                account_id=account["id"],
                reason=Reason.WITHDRAWAL,
                amount=-amount,
                reference_type="withdrawal",
                reference_id=str(withdrawal_id),
                actor=actor,
                description="Withdrawal",
                references=ledger.References(withdrawal_id=str(withdrawal_id)),
                correlation_id=caller.request_id,
                locked=locked,
            )
            row = await withdrawal_store.insert_withdrawal(
                session,
                withdrawal_id=withdrawal_id,
                account_id=account["id"],
                amount=amount,
                currency=currency,
                status=WithdrawalStatus.PENDING,
                idempotency_key=request.idempotency_key,
                ledger_entry_id=uuid.UUID(posted.entry.id),
                balance_after=locked.balance,
                requested_by=actor,
            )
            withdrawal = convert.withdrawal(row)
            await events.emit(
                session,
                "account.withdrawal.requested",
                ev.WithdrawalRequested(
                    metadata=events.metadata(actor, aggregate_version=1),
                    withdrawal=withdrawal,
                    **withdrawal_event_fields(account),
                ),
            )
            await audit_change(session, caller, "withdrawal.request", withdrawal)
        return api_pb.RequestWithdrawalResponse(withdrawal=withdrawal)

    async def ListWithdrawals(
        self, request: api_pb.ListWithdrawalsRequest, context: Context
    ) -> api_pb.ListWithdrawalsResponse:
        async with self._owned(require_user(), request.account_id) as (session, row):
            found, token = await search_withdrawals(
                session,
                request,
                account_id=row["id"],
                statuses=request.statuses,
                time_range=request.time_range if request.HasField("time_range") else None,
            )
        return api_pb.ListWithdrawalsResponse(withdrawals=found, next_page_token=token)

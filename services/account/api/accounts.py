# ruff: noqa: N802  # servicer methods carry the contract's RPC names
"""Trading accounts as staff manage them: CreateTradingAccount, GetTradingAccount,
ListTradingAccounts, UpdateTradingAccountStatus."""

from __future__ import annotations

import uuid
from typing import Final

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.account import convert
from services.account import events
from services.account import store
from services.account.api.common import ANY_STAFF
from services.account.api.common import MONEY_STAFF
from services.account.api.common import AdminPart
from services.account.api.common import Context
from services.account.api.common import audit_change
from services.account.api.common import enum_names
from services.account.api.common import event_metadata
from services.account.api.status import StatusChanges
from services.account.api.status import change_status
from services.account.convert import Row
from services.account.domain import TRADING_ACCOUNT_STATUS_STEPS
from services.account.domain import UNFINISHED_WITHDRAWAL_STATUSES
from services.account.domain import TradingAccountStatus
from services.account.domain import UserStatus
from services.account.domain import check_account_may_close
from services.account.store import accounts as account_store
from services.account.store import ledger
from services.account.store import withdrawals as withdrawal_store
from services.platform.access import require_roles
from services.platform.enums import enum_name
from services.platform.errors import DomainError
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb
from tradingmesh.account.v1 import account_events_pb2 as ev
from tradingmesh.account.v1 import account_pb2 as pb
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = ["TradingAccountAdmin"]

_R = ErrorReason


class TradingAccountAdmin(AdminPart):
    """The trading account RPCs of AccountAdminService."""

    async def CreateTradingAccount(
        self, request: admin_pb.CreateTradingAccountRequest, context: Context
    ) -> admin_pb.CreateTradingAccountResponse:
        caller = require_roles(MONEY_STAFF)
        async with self.resources.db.transaction() as session:
            if request.idempotency_key:
                existing = await account_store.account_by_idempotency_key(
                    session, request.idempotency_key
                )
                if existing is not None:
                    return admin_pb.CreateTradingAccountResponse(
                        account=convert.trading_account(existing)
                    )
            user = await store.require_user_row(session, request.user_id, lock=True)
            group = await store.require_group_row(session, request.group_id)
            if user["status"] != UserStatus.ACTIVE:
                raise DomainError(_R.ERROR_REASON_INVALID_STATE, "the user is not ACTIVE")
            position_mode = (
                enum_name(types_pb2.PositionMode, request.position_mode)
                if request.position_mode
                else group["position_mode"]
            )
            account_id = uuid.uuid4()
            try:
                row = await account_store.insert_account(
                    session,
                    account_id=account_id,
                    user_id=user["id"],
                    group_id=group["id"],
                    currency=group["currency"],
                    position_mode=position_mode,
                    status=TradingAccountStatus.ACTIVE,
                    idempotency_key=request.idempotency_key or None,
                )
            except IntegrityError:
                raise DomainError(
                    _R.ERROR_REASON_CONCURRENT_MODIFICATION,
                    "a request with this idempotency key is in progress; retry",
                ) from None
            account = convert.trading_account(row)
            await events.emit(
                session,
                "account.trading_account.created",
                ev.TradingAccountCreated(
                    metadata=event_metadata(caller, version=1), account=account
                ),
            )
            await audit_change(session, caller, "trading_account.create", account)
        return admin_pb.CreateTradingAccountResponse(account=account)

    async def GetTradingAccount(
        self, request: admin_pb.GetTradingAccountRequest, context: Context
    ) -> admin_pb.GetTradingAccountResponse:
        require_roles(ANY_STAFF)
        async with self.resources.db.read_session() as session:
            row = await store.require_account_row(session, request.account_id)
            summary = await self.margin.summary(session, row)
        return admin_pb.GetTradingAccountResponse(
            account=convert.trading_account(row), summary=summary
        )

    async def ListTradingAccounts(
        self, request: admin_pb.ListTradingAccountsRequest, context: Context
    ) -> admin_pb.ListTradingAccountsResponse:
        require_roles(ANY_STAFF)
        accounts, token = await self.listing(
            request,
            account_store.list_accounts,
            convert.trading_account,
            user_id=uuid.UUID(request.user_id) if request.user_id else None,
            group_id=uuid.UUID(request.group_id) if request.group_id else None,
            account_number=request.account_number,
            statuses=enum_names(pb.TradingAccountStatus, request.statuses),
        )
        return admin_pb.ListTradingAccountsResponse(accounts=accounts, next_page_token=token)

    async def UpdateTradingAccountStatus(
        self, request: admin_pb.UpdateTradingAccountStatusRequest, context: Context
    ) -> admin_pb.UpdateTradingAccountStatusResponse:
        caller = require_roles(MONEY_STAFF)
        requested = TradingAccountStatus(enum_name(pb.TradingAccountStatus, request.status))
        async with self.resources.db.transaction() as session:
            row = await store.require_account_row(session, request.account_id, lock=True)
            account = await change_status(
                TRADING_ACCOUNT_STATUS, session, caller, row, requested, request.reason
            )
        return admin_pb.UpdateTradingAccountStatusResponse(account=account)


async def _check_account_may_close(session: AsyncSession, row: Row) -> None:
    locked = await ledger.lock_balance(session, row["id"])
    unfinished = await withdrawal_store.count_withdrawals_in(
        session, row["id"], UNFINISHED_WITHDRAWAL_STATUSES
    )
    check_account_may_close(locked.balance, locked.currency, unfinished)


TRADING_ACCOUNT_STATUS: Final = StatusChanges(
    entity="trading_account",
    noun="account",
    table=store.ACCOUNTS,
    steps=TRADING_ACCOUNT_STATUS_STEPS,
    status=TradingAccountStatus,
    message=convert.trading_account,
    check_close=_check_account_may_close,
    event=lambda metadata, after, before, reason: ev.TradingAccountStatusChanged(
        metadata=metadata, account=after, previous_status=before.status, reason=reason
    ),
)

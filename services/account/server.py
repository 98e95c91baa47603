# ruff: noqa: N802  # servicer methods carry the contract's RPC names
"""gRPC servicers of the account service: map request -> domain -> response.

Each inherits the generated servicer, whose every RPC not defined here answers UNIMPLEMENTED.
Every change runs in one transaction (`db.transaction()`): the change, its ledger legs, its
audit record and its outbox events commit together or not at all.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import Any

import grpc.aio
from argon2 import PasswordHasher
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.account import audit, convert, events, ledger, store, withdrawals
from services.account.auth.api import KeyAdministration
from services.account.domain import (
    AdjustmentStatus,
    Reason,
    WithdrawalStatus,
    format_money,
    parse_amount,
)
from services.account.margin import MarginFigures
from services.account.webhooks import WebhookReceiver
from services.account.withdrawals import withdrawal_event_fields
from services.platform.access import (
    ADMIN,
    BACKOFFICE,
    DEALER,
    STAFF_ROLES,
    require_account,
    require_roles,
    require_user,
)
from services.platform.errors import DomainError
from services.platform.identity import Caller, current_caller
from services.platform.resources import Resources
from tradingmesh.account.v1 import (
    account_admin_service_pb2 as admin_pb,
)
from tradingmesh.account.v1 import (
    account_admin_service_pb2_grpc,
    account_service_pb2_grpc,
    webhook_service_pb2_grpc,
)
from tradingmesh.account.v1 import account_events_pb2 as ev
from tradingmesh.account.v1 import account_pb2 as pb
from tradingmesh.account.v1 import account_service_pb2 as api_pb
from tradingmesh.account.v1 import webhook_service_pb2 as wh_pb
from tradingmesh.common.v1 import ledger_pb2, pricing_pb2, types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason

_R = ErrorReason
Context = grpc.aio.ServicerContext[Any, Any]
ANY_STAFF = (ADMIN, DEALER, BACKOFFICE)


async def _audit(
    session: AsyncSession,
    caller: Caller,
    action: str,
    after: Any,
    *,
    before: Any = None,
    note: Mapping[str, Any] | None = None,
) -> None:
    """The audit record of a change to `after` (an entity with an `id`), in the change's
    transaction; the entity type is the action's prefix ("user" of "user.create")."""
    await audit.append_audit(
        session,
        actor=caller,
        action=action,
        entity_type=action.rpartition(".")[0],
        entity_id=after.id,
        before=None if before is None else convert.snapshot(before),
        after={**convert.snapshot(after), **(note or {})},
    )


MONEY_STAFF = (ADMIN, BACKOFFICE)
_HASHER = PasswordHasher()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _enum_names(wrapper: Any, values: Any) -> list[str]:
    return [convert.enum_name(wrapper, v) for v in values]


# ---------------------------------------------------------------------------------------------
# AccountService: the caller's own data
# ---------------------------------------------------------------------------------------------


class AccountService(account_service_pb2_grpc.AccountServiceServicer):
    """tradingmesh.account.v1.AccountService."""

    def __init__(self, resources: Resources, margin: MarginFigures) -> None:
        self.resources = resources
        self.margin = margin

    async def _own_account(self, session: Any, caller: Caller, account_id: str) -> Any:
        row = await store.account_row(session, account_id)
        require_account(account_id, None if row is None else str(row["user_id"]), caller)
        return row

    async def GetMe(self, request: api_pb.GetMeRequest, context: Context) -> api_pb.GetMeResponse:
        caller = require_user()
        async with self.resources.db.read_session() as session:
            row = await store.user_row(session, caller.subject)
        if row is None:
            raise store.user_not_found(caller.subject)
        return api_pb.GetMeResponse(user=convert.user(row))

    async def ListAccounts(
        self, request: api_pb.ListAccountsRequest, context: Context
    ) -> api_pb.ListAccountsResponse:
        caller = require_user()
        user_id = store.as_uuid(caller.subject)
        if user_id is None:
            return api_pb.ListAccountsResponse()
        limit, offset = store.page(request.page_size, request.page_token)
        params: dict[str, Any] = {"user_id": user_id, "limit": limit, "offset": offset}
        clauses = ["user_id = :user_id"]
        if caller.api_key_id is not None:
            clauses.append("id::text = ANY(:scoped)")
            params["scoped"] = sorted(caller.account_ids)
        async with self.resources.db.read_session() as session:
            rows = await store.many(
                session,
                f"SELECT {store.ACCOUNT_COLUMNS} FROM account.trading_accounts"
                f"{store.where(clauses)} ORDER BY created_at DESC, id LIMIT :limit OFFSET :offset",
                params,
            )
        return api_pb.ListAccountsResponse(
            accounts=[convert.trading_account(r) for r in rows],
            next_page_token=store.next_token(offset, limit, len(rows)),
        )

    async def GetAccount(
        self, request: api_pb.GetAccountRequest, context: Context
    ) -> api_pb.GetAccountResponse:
        caller = require_user()
        async with self.resources.db.read_session() as session:
            row = await self._own_account(session, caller, request.account_id)
            summary = await self.margin.summary(session, row)
        return api_pb.GetAccountResponse(account=convert.trading_account(row), summary=summary)

    async def ListLedgerEntries(
        self, request: api_pb.ListLedgerEntriesRequest, context: Context
    ) -> api_pb.ListLedgerEntriesResponse:
        caller = require_user()
        limit, offset = store.page(request.page_size, request.page_token)
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        async with self.resources.db.read_session() as session:
            row = await self._own_account(session, caller, request.account_id)
            params["account_id"] = row["id"]
            clauses = ["account_id = :account_id"]
            clauses += store.time_filter(
                "created_at", request.time_range, request.HasField("time_range"), params
            )
            if request.reasons:
                clauses.append("reason = ANY(:reasons)")
                params["reasons"] = _enum_names(ledger_pb2.LedgerEntryReason, request.reasons)
            rows = await store.many(
                session,
                f"SELECT {ledger.ENTRY_COLUMNS} FROM account.ledger_entries"
                f"{store.where(clauses)} ORDER BY sequence DESC LIMIT :limit OFFSET :offset",
                params,
            )
        return api_pb.ListLedgerEntriesResponse(
            entries=[convert.ledger_entry(r) for r in rows],
            next_page_token=store.next_token(offset, limit, len(rows)),
        )

    async def RequestWithdrawal(
        self, request: api_pb.RequestWithdrawalRequest, context: Context
    ) -> api_pb.RequestWithdrawalResponse:
        caller = require_user()
        async with self.resources.db.transaction() as session:
            account = await self._own_account(session, caller, request.account_id)
            if caller.api_key_id is not None:
                raise DomainError(
                    _R.ERROR_REASON_PERMISSION_DENIED, "API keys cannot request withdrawals"
                )
            user = await store.user_row(session, str(account["user_id"]))
            assert user is not None
            if user["kyc_status"] != "APPROVED":
                raise DomainError(
                    _R.ERROR_REASON_PERMISSION_DENIED,
                    "withdrawals need an approved identity verification (KYC)",
                    metadata={"kyc_status": user["kyc_status"]},
                )
            if user["status"] != "ACTIVE" or account["status"] in ("DISABLED", "CLOSED"):
                raise DomainError(
                    _R.ERROR_REASON_ACCOUNT_DISABLED,
                    "the account or its user is disabled",
                    metadata={"account_status": account["status"]},
                )
            currency = account["currency"].strip()
            amount = parse_amount(request.amount, currency, "amount", positive=True)
            locked = await ledger.lock_balance(session, account["id"])
            # After the lock, so two retries with one key cannot both pass this check.
            existing = await store.one(
                session,
                f"SELECT {store.WITHDRAWAL_COLUMNS} FROM account.withdrawals"
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
            kind, actor_id = convert.actor_columns(actor)
            row = await store.one(
                session,
                f"INSERT INTO account.withdrawals (id, account_id, amount, currency, status,"
                " idempotency_key, ledger_entry_id, balance_after, requested_by_kind,"
                " requested_by_id) VALUES (:id, :a, :amount, :currency, 'PENDING', :k, :entry,"
                f" :after, :kind, :actor) RETURNING {store.WITHDRAWAL_COLUMNS}",
                {
                    "id": withdrawal_id,
                    "a": account["id"],
                    "amount": amount,
                    "currency": currency,
                    "k": request.idempotency_key,
                    "entry": uuid.UUID(posted.entry.id),
                    "after": locked.balance,
                    "kind": kind,
                    "actor": actor_id,
                },
            )
            assert row is not None
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
            await _audit(session, caller, "withdrawal.request", withdrawal)
        return api_pb.RequestWithdrawalResponse(withdrawal=withdrawal)

    async def ListWithdrawals(
        self, request: api_pb.ListWithdrawalsRequest, context: Context
    ) -> api_pb.ListWithdrawalsResponse:
        caller = require_user()
        async with self.resources.db.read_session() as session:
            row = await self._own_account(session, caller, request.account_id)
            found, token = await _search_withdrawals(
                session,
                account_id=row["id"],
                statuses=request.statuses,
                time_range=request.time_range if request.HasField("time_range") else None,
                page_size=request.page_size,
                page_token=request.page_token,
            )
        return api_pb.ListWithdrawalsResponse(withdrawals=found, next_page_token=token)


async def _search_withdrawals(
    session: Any,
    *,
    account_id: uuid.UUID | None,
    statuses: Any,
    time_range: types_pb2.TimeRange | None,
    page_size: int,
    page_token: str,
) -> tuple[list[pb.Withdrawal], str]:
    limit, offset = store.page(page_size, page_token)
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    clauses: list[str] = []
    if account_id is not None:
        clauses.append("account_id = :account_id")
        params["account_id"] = account_id
    if statuses:
        clauses.append("status = ANY(:statuses)")
        params["statuses"] = _enum_names(pb.WithdrawalStatus, statuses)
    if time_range is not None:
        clauses += store.time_filter("created_at", time_range, True, params)
    rows = await store.many(
        session,
        f"SELECT {store.WITHDRAWAL_COLUMNS} FROM account.withdrawals{store.where(clauses)}"
        " ORDER BY created_at DESC, id LIMIT :limit OFFSET :offset",
        params,
    )
    return [convert.withdrawal(r) for r in rows], store.next_token(offset, limit, len(rows))


# ---------------------------------------------------------------------------------------------
# AccountAdminService: staff
# ---------------------------------------------------------------------------------------------


class AccountAdminService(
    KeyAdministration, account_admin_service_pb2_grpc.AccountAdminServiceServicer
):
    """tradingmesh.account.v1.AccountAdminService (key RPCs in services/account/auth)."""

    def __init__(self, resources: Resources, margin: MarginFigures) -> None:
        self.resources = resources
        self.margin = margin

    # -- users -------------------------------------------------------------------------------

    async def CreateUser(
        self, request: admin_pb.CreateUserRequest, context: Context
    ) -> admin_pb.CreateUserResponse:
        caller = require_roles(MONEY_STAFF)
        roles = [convert.role_claim(r) for r in request.roles]
        if set(roles) & STAFF_ROLES and not caller.has_role(ADMIN):
            raise DomainError(
                _R.ERROR_REASON_PERMISSION_DENIED, "only an admin may grant a staff role"
            )
        password_hash = _HASHER.hash(request.initial_password)
        try:
            async with self.resources.db.transaction() as session:
                row = await store.one(
                    session,
                    "INSERT INTO account.users (id, username, email, display_name,"
                    " password_hash, roles, kyc_status, status) VALUES (:id, :username,"
                    " :email, :display_name, :hash, :roles, 'NOT_STARTED', 'ACTIVE')"
                    f" RETURNING {store.USER_COLUMNS}",
                    {
                        "id": uuid.uuid4(),
                        "username": request.username,
                        "email": request.email.lower(),
                        "display_name": request.display_name,
                        "hash": password_hash,
                        "roles": roles,
                    },
                )
                assert row is not None
                user = convert.user(row)
                await events.emit(
                    session,
                    "account.user.created",
                    ev.UserCreated(metadata=_meta(caller), user=user),
                )
                await _audit(session, caller, "user.create", user)
        except IntegrityError:
            raise DomainError(
                _R.ERROR_REASON_ALREADY_EXISTS, "the username or email is taken"
            ) from None
        return admin_pb.CreateUserResponse(user=user)

    async def GetUser(
        self, request: admin_pb.GetUserRequest, context: Context
    ) -> admin_pb.GetUserResponse:
        require_roles(ANY_STAFF)
        async with self.resources.db.read_session() as session:
            row = await store.user_row(session, request.user_id)
        if row is None:
            raise store.user_not_found(request.user_id)
        return admin_pb.GetUserResponse(user=convert.user(row))

    async def ListUsers(
        self, request: admin_pb.ListUsersRequest, context: Context
    ) -> admin_pb.ListUsersResponse:
        require_roles(ANY_STAFF)
        limit, offset = store.page(request.page_size, request.page_token)
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        clauses: list[str] = []
        if request.query:
            clauses.append("(lower(username) LIKE :q OR lower(email) LIKE :q)")
            escaped = request.query.lower().replace("\\", "\\\\").replace("%", "\\%")
            params["q"] = escaped.replace("_", "\\_") + "%"
        if request.statuses:
            clauses.append("status = ANY(:statuses)")
            params["statuses"] = _enum_names(pb.UserStatus, request.statuses)
        if request.kyc_statuses:
            clauses.append("kyc_status = ANY(:kyc)")
            params["kyc"] = _enum_names(pb.KycStatus, request.kyc_statuses)
        if request.roles:
            clauses.append("roles && :roles")
            params["roles"] = [convert.role_claim(r) for r in request.roles]
        async with self.resources.db.read_session() as session:
            rows = await store.many(
                session,
                f"SELECT {store.USER_COLUMNS} FROM account.users{store.where(clauses)}"
                " ORDER BY created_at DESC, id LIMIT :limit OFFSET :offset",
                params,
            )
        return admin_pb.ListUsersResponse(
            users=[convert.user(r) for r in rows],
            next_page_token=store.next_token(offset, limit, len(rows)),
        )

    async def UpdateUserStatus(
        self, request: admin_pb.UpdateUserStatusRequest, context: Context
    ) -> admin_pb.UpdateUserStatusResponse:
        caller = require_roles(MONEY_STAFF)
        new_status = convert.enum_name(pb.UserStatus, request.status)
        async with self.resources.db.transaction() as session:
            row = await store.user_row(session, request.user_id, lock=True)
            if row is None:
                raise store.user_not_found(request.user_id)
            if row["status"] == new_status:
                return admin_pb.UpdateUserStatusResponse(user=convert.user(row))
            if row["status"] == "CLOSED":
                raise DomainError(_R.ERROR_REASON_INVALID_STATE, "the user is closed for good")
            if new_status == "CLOSED":
                open_accounts = await store.one(
                    session,
                    "SELECT count(*) AS n FROM account.trading_accounts"
                    " WHERE user_id = :id AND status <> 'CLOSED'",
                    {"id": row["id"]},
                )
                if open_accounts is not None and open_accounts["n"]:
                    raise DomainError(
                        _R.ERROR_REASON_INVALID_STATE,
                        "the user still has trading accounts that are not closed",
                    )
            before = convert.user(row)
            updated = await store.one(
                session,
                "UPDATE account.users SET status = :status, updated_at = now() WHERE id = :id"
                f" RETURNING {store.USER_COLUMNS}",
                {"status": new_status, "id": row["id"]},
            )
            assert updated is not None
            user = convert.user(updated)
            # Revoking the user's refresh token families is the auth side's (ADR 0005); it reads
            # the user's status on every refresh and API-key exchange.
            await events.emit(
                session,
                "account.user.status_changed",
                ev.UserStatusChanged(
                    metadata=_meta(caller),
                    user=user,
                    previous_status=before.status,
                    reason=request.reason,
                ),
            )
            await _audit(
                session,
                caller,
                "user.update_status",
                user,
                before=before,
                note={"reason": request.reason},
            )
        return admin_pb.UpdateUserStatusResponse(user=user)

    # -- trading accounts ----------------------------------------------------------------------

    async def CreateTradingAccount(
        self, request: admin_pb.CreateTradingAccountRequest, context: Context
    ) -> admin_pb.CreateTradingAccountResponse:
        caller = require_roles(MONEY_STAFF)
        async with self.resources.db.transaction() as session:
            if request.idempotency_key:
                existing = await store.one(
                    session,
                    f"SELECT {store.ACCOUNT_COLUMNS} FROM account.trading_accounts"
                    " WHERE idempotency_key = :k",
                    {"k": request.idempotency_key},
                )
                if existing is not None:
                    return admin_pb.CreateTradingAccountResponse(
                        account=convert.trading_account(existing)
                    )
            user = await store.user_row(session, request.user_id, lock=True)
            if user is None:
                raise store.user_not_found(request.user_id)
            group = await store.group_row(session, request.group_id)
            if group is None:
                raise store.group_not_found(request.group_id)
            if user["status"] != "ACTIVE":
                raise DomainError(_R.ERROR_REASON_INVALID_STATE, "the user is not ACTIVE")
            position_mode = (
                convert.enum_name(types_pb2.PositionMode, request.position_mode)
                if request.position_mode
                else group["position_mode"]
            )
            account_id = uuid.uuid4()
            try:
                async with session.begin_nested():
                    row = await store.one(
                        session,
                        "INSERT INTO account.trading_accounts (id, account_number, user_id,"
                        " group_id, currency, position_mode, status, idempotency_key) VALUES"
                        " (:id, nextval('account.account_number_seq')::text, :user, :group,"
                        " :currency, :mode, 'ACTIVE', :k)"
                        f" RETURNING {store.ACCOUNT_COLUMNS}",
                        {
                            "id": account_id,
                            "user": user["id"],
                            "group": group["id"],
                            "currency": group["currency"],
                            "mode": position_mode,
                            "k": request.idempotency_key or None,
                        },
                    )
            except IntegrityError:
                raise DomainError(
                    _R.ERROR_REASON_CONCURRENT_MODIFICATION,
                    "a request with this idempotency key is in progress; retry",
                ) from None
            assert row is not None
            await store.one(
                session,
                "INSERT INTO account.balances (account_id, currency) VALUES (:id, :currency)"
                " RETURNING account_id",
                {"id": account_id, "currency": group["currency"]},
            )
            account = convert.trading_account(row)
            await events.emit(
                session,
                "account.trading_account.created",
                ev.TradingAccountCreated(metadata=_meta(caller, version=1), account=account),
            )
            await _audit(session, caller, "trading_account.create", account)
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
        limit, offset = store.page(request.page_size, request.page_token)
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        clauses: list[str] = []
        if request.user_id:
            clauses.append("user_id = :user_id")
            params["user_id"] = uuid.UUID(request.user_id)
        if request.group_id:
            clauses.append("group_id = :group_id")
            params["group_id"] = uuid.UUID(request.group_id)
        if request.account_number:
            clauses.append("account_number = :number")
            params["number"] = request.account_number
        if request.statuses:
            clauses.append("status = ANY(:statuses)")
            params["statuses"] = _enum_names(pb.TradingAccountStatus, request.statuses)
        async with self.resources.db.read_session() as session:
            rows = await store.many(
                session,
                f"SELECT {store.ACCOUNT_COLUMNS} FROM account.trading_accounts"
                f"{store.where(clauses)} ORDER BY created_at DESC, id LIMIT :limit OFFSET :offset",
                params,
            )
        return admin_pb.ListTradingAccountsResponse(
            accounts=[convert.trading_account(r) for r in rows],
            next_page_token=store.next_token(offset, limit, len(rows)),
        )

    async def UpdateTradingAccountStatus(
        self, request: admin_pb.UpdateTradingAccountStatusRequest, context: Context
    ) -> admin_pb.UpdateTradingAccountStatusResponse:
        caller = require_roles(MONEY_STAFF)
        new_status = convert.enum_name(pb.TradingAccountStatus, request.status)
        async with self.resources.db.transaction() as session:
            row = await store.require_account_row(session, request.account_id, lock=True)
            if row["status"] == new_status:
                return admin_pb.UpdateTradingAccountStatusResponse(
                    account=convert.trading_account(row)
                )
            if row["status"] == "CLOSED":
                raise DomainError(_R.ERROR_REASON_INVALID_STATE, "the account is closed for good")
            if new_status == "CLOSED":
                locked = await ledger.lock_balance(session, row["id"])
                unfinished = await store.one(
                    session,
                    "SELECT count(*) AS n FROM account.withdrawals WHERE account_id = :id"
                    " AND status IN ('PENDING', 'PROCESSING')",
                    {"id": row["id"]},
                )
                # Open positions and working orders are the OMS's; it refuses to trade a CLOSED
                # account, and checking them here needs its API (a later issue).
                if locked.balance != 0 or (unfinished is not None and unfinished["n"]):
                    raise DomainError(
                        _R.ERROR_REASON_INVALID_STATE,
                        "only an account with a zero balance and no unfinished withdrawals"
                        " can be closed",
                        metadata={"balance": format_money(locked.balance, locked.currency)},
                    )
            before = convert.trading_account(row)
            updated = await store.one(
                session,
                "UPDATE account.trading_accounts SET status = :status, updated_at = now()"
                f" WHERE id = :id RETURNING {store.ACCOUNT_COLUMNS}",
                {"status": new_status, "id": row["id"]},
            )
            assert updated is not None
            account = convert.trading_account(updated)
            await events.emit(
                session,
                "account.trading_account.status_changed",
                ev.TradingAccountStatusChanged(
                    metadata=_meta(caller),
                    account=account,
                    previous_status=before.status,
                    reason=request.reason,
                ),
            )
            await _audit(
                session,
                caller,
                "trading_account.update_status",
                account,
                before=before,
                note={"reason": request.reason},
            )
        return admin_pb.UpdateTradingAccountStatusResponse(account=account)

    # -- withdrawals ---------------------------------------------------------------------------

    async def SearchWithdrawals(
        self, request: admin_pb.SearchWithdrawalsRequest, context: Context
    ) -> admin_pb.SearchWithdrawalsResponse:
        require_roles(MONEY_STAFF)
        async with self.resources.db.read_session() as session:
            found, token = await _search_withdrawals(
                session,
                account_id=uuid.UUID(request.account_id) if request.account_id else None,
                statuses=request.statuses,
                time_range=request.time_range if request.HasField("time_range") else None,
                page_size=request.page_size,
                page_token=request.page_token,
            )
        return admin_pb.SearchWithdrawalsResponse(withdrawals=found, next_page_token=token)

    async def RejectWithdrawal(
        self, request: admin_pb.RejectWithdrawalRequest, context: Context
    ) -> admin_pb.RejectWithdrawalResponse:
        caller = require_roles(MONEY_STAFF)
        async with self.resources.db.transaction() as session:
            row = await store.one(
                session,
                f"SELECT {store.WITHDRAWAL_COLUMNS} FROM account.withdrawals WHERE id = :id"
                " FOR UPDATE",
                {"id": uuid.UUID(request.withdrawal_id)},
            )
            if row is None:
                raise DomainError(
                    _R.ERROR_REASON_NOT_FOUND,
                    f"withdrawal {request.withdrawal_id} not found",
                    metadata={"withdrawal_id": request.withdrawal_id},
                )
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
            await _audit(session, caller, "withdrawal.reject", withdrawal, before=before)
        return admin_pb.RejectWithdrawalResponse(withdrawal=withdrawal)

    # -- client groups ---------------------------------------------------------------------------

    async def CreateClientGroup(
        self, request: admin_pb.CreateClientGroupRequest, context: Context
    ) -> admin_pb.CreateClientGroupResponse:
        caller = require_roles((ADMIN,))
        given = request.client_group
        _check_levels(given.margin_call_level, given.stop_out_level)
        try:
            async with self.resources.db.transaction() as session:
                row = await store.one(
                    session,
                    "INSERT INTO account.client_groups (id, name, description, currency,"
                    " leverage, margin_call_level, stop_out_level, execution_mode,"
                    " position_mode, spread_markup_type, spread_markup, commission_per_lot,"
                    " max_deviation_points) VALUES (:id, :name, :description, :currency,"
                    " :leverage, :call, :stop, :execution, :position, :markup_type, :markup,"
                    f" :commission, :deviation) RETURNING {store.GROUP_COLUMNS}",
                    {
                        "id": uuid.uuid4(),
                        "name": given.name,
                        "description": given.description,
                        "currency": given.currency,
                        "leverage": given.leverage,
                        "call": _decimal(given.margin_call_level),
                        "stop": _decimal(given.stop_out_level),
                        "execution": convert.enum_name(
                            types_pb2.ExecutionMode, given.execution_mode
                        ),
                        "position": convert.enum_name(types_pb2.PositionMode, given.position_mode),
                        "markup_type": convert.enum_name(
                            pricing_pb2.MarkupType, given.spread_markup_type
                        ),
                        "markup": _decimal(given.spread_markup),
                        "commission": _decimal(given.commission_per_lot),
                        "deviation": given.max_deviation_points,
                    },
                )
                assert row is not None
                group = convert.client_group(row)
                await events.emit(
                    session,
                    "account.client_group.changed",
                    ev.ClientGroupChanged(metadata=_meta(caller, version=1), client_group=group),
                )
                await _audit(session, caller, "client_group.create", group)
        except IntegrityError:
            raise DomainError(
                _R.ERROR_REASON_ALREADY_EXISTS, f"a client group named {given.name} exists"
            ) from None
        return admin_pb.CreateClientGroupResponse(client_group=group)

    async def GetClientGroup(
        self, request: admin_pb.GetClientGroupRequest, context: Context
    ) -> admin_pb.GetClientGroupResponse:
        require_roles(ANY_STAFF)
        async with self.resources.db.read_session() as session:
            row = await store.group_row(session, request.group_id)
        if row is None:
            raise store.group_not_found(request.group_id)
        return admin_pb.GetClientGroupResponse(client_group=convert.client_group(row))

    async def ListClientGroups(
        self, request: admin_pb.ListClientGroupsRequest, context: Context
    ) -> admin_pb.ListClientGroupsResponse:
        require_roles(ANY_STAFF)
        limit, offset = store.page(request.page_size, request.page_token)
        async with self.resources.db.read_session() as session:
            rows = await store.many(
                session,
                f"SELECT {store.GROUP_COLUMNS} FROM account.client_groups"
                " ORDER BY created_at DESC, id LIMIT :limit OFFSET :offset",
                {"limit": limit, "offset": offset},
            )
        return admin_pb.ListClientGroupsResponse(
            client_groups=[convert.client_group(r) for r in rows],
            next_page_token=store.next_token(offset, limit, len(rows)),
        )

    async def UpdateClientGroup(
        self, request: admin_pb.UpdateClientGroupRequest, context: Context
    ) -> admin_pb.UpdateClientGroupResponse:
        caller = require_roles((ADMIN,))
        given = request.client_group
        paths = list(dict.fromkeys(request.update_mask.paths))
        try:
            async with self.resources.db.transaction() as session:
                row = await store.group_row(session, given.id, lock=True)
                if row is None:
                    raise store.group_not_found(given.id)
                before = convert.client_group(row)
                after = pb.ClientGroup()
                after.CopyFrom(before)
                for path in paths:
                    setattr(after, path, getattr(given, path))
                if not after.name:
                    raise DomainError(
                        _R.ERROR_REASON_VALIDATION_FAILED,
                        "client_group.name must not be empty",
                        field_violations=[("client_group.name", "must not be empty")],
                    )
                _check_levels(after.margin_call_level, after.stop_out_level)
                updated = await store.one(
                    session,
                    "UPDATE account.client_groups SET name = :name, description = :description,"
                    " leverage = :leverage, margin_call_level = :call, stop_out_level = :stop,"
                    " execution_mode = :execution, position_mode = :position,"
                    " spread_markup_type = :markup_type, spread_markup = :markup,"
                    " commission_per_lot = :commission, max_deviation_points = :deviation,"
                    " version = version + 1, updated_at = now() WHERE id = :id"
                    f" RETURNING {store.GROUP_COLUMNS}",
                    {
                        "id": row["id"],
                        "name": after.name,
                        "description": after.description,
                        "leverage": after.leverage,
                        "call": _decimal(after.margin_call_level),
                        "stop": _decimal(after.stop_out_level),
                        "execution": convert.enum_name(
                            types_pb2.ExecutionMode, after.execution_mode
                        ),
                        "position": convert.enum_name(types_pb2.PositionMode, after.position_mode),
                        "markup_type": convert.enum_name(
                            pricing_pb2.MarkupType, after.spread_markup_type
                        ),
                        "markup": _decimal(after.spread_markup),
                        "commission": _decimal(after.commission_per_lot),
                        "deviation": after.max_deviation_points,
                    },
                )
                assert updated is not None
                group = convert.client_group(updated)
                changed = [p for p in paths if getattr(before, p) != getattr(group, p)]
                await events.emit(
                    session,
                    "account.client_group.changed",
                    ev.ClientGroupChanged(
                        metadata=_meta(caller, version=int(updated["version"])),
                        client_group=group,
                        previous=before,
                        changed_fields=changed,
                    ),
                )
                await _audit(session, caller, "client_group.update", group, before=before)
        except IntegrityError:
            raise DomainError(
                _R.ERROR_REASON_ALREADY_EXISTS, f"a client group named {given.name} exists"
            ) from None
        return admin_pb.UpdateClientGroupResponse(client_group=group)

    async def SetGroupInstrumentSettings(
        self, request: admin_pb.SetGroupInstrumentSettingsRequest, context: Context
    ) -> admin_pb.SetGroupInstrumentSettingsResponse:
        caller = require_roles((ADMIN, DEALER))
        given = request.settings
        async with self.resources.db.transaction() as session:
            group = await store.group_row(session, given.group_id)
            if group is None:
                raise store.group_not_found(given.group_id)
            # Checked against the service's own copy of pricing's catalogue (instruments.py): a
            # symbol created a moment ago is unknown until its event has arrived.
            instrument = await store.one(
                session,
                "SELECT lot_step FROM account.instruments WHERE symbol = :s",
                {"s": given.symbol},
            )
            if instrument is None:
                raise DomainError(
                    _R.ERROR_REASON_UNKNOWN_INSTRUMENT,
                    f"{given.symbol} is not in the instrument catalog",
                    metadata={"symbol": given.symbol},
                )
            _check_instrument_settings(given, instrument["lot_step"])
            previous = await store.one(
                session,
                f"SELECT {store.SETTINGS_COLUMNS} FROM account.group_instrument_settings"
                " WHERE group_id = :g AND symbol = :s FOR UPDATE",
                {"g": group["id"], "s": given.symbol},
            )
            row = await store.one(
                session,
                "INSERT INTO account.group_instrument_settings (group_id, symbol, enabled,"
                " spread_markup_type, spread_markup, commission_per_lot, execution_mode,"
                " max_deviation_points, max_order_size, max_position, margin_rate, updated_at)"
                " VALUES (:g, :s, :enabled, :markup_type, :markup, :commission, :execution,"
                " :deviation, :max_order, :max_position, :margin_rate, now())"
                " ON CONFLICT (group_id, symbol) DO UPDATE SET enabled = EXCLUDED.enabled,"
                " spread_markup_type = EXCLUDED.spread_markup_type,"
                " spread_markup = EXCLUDED.spread_markup,"
                " commission_per_lot = EXCLUDED.commission_per_lot,"
                " execution_mode = EXCLUDED.execution_mode,"
                " max_deviation_points = EXCLUDED.max_deviation_points,"
                " max_order_size = EXCLUDED.max_order_size,"
                " max_position = EXCLUDED.max_position, margin_rate = EXCLUDED.margin_rate,"
                f" updated_at = now() RETURNING {store.SETTINGS_COLUMNS}",
                {
                    "g": group["id"],
                    "s": given.symbol,
                    "enabled": given.enabled,
                    "markup_type": (
                        convert.enum_name(pricing_pb2.MarkupType, given.spread_markup_type)
                        if given.spread_markup_type
                        else None
                    ),
                    "markup": _optional_decimal(given, "spread_markup"),
                    "commission": _optional_decimal(given, "commission_per_lot"),
                    "execution": (
                        convert.enum_name(types_pb2.ExecutionMode, given.execution_mode)
                        if given.execution_mode
                        else None
                    ),
                    "deviation": (
                        given.max_deviation_points
                        if given.HasField("max_deviation_points")
                        else None
                    ),
                    "max_order": _optional_decimal(given, "max_order_size"),
                    "max_position": _optional_decimal(given, "max_position"),
                    "margin_rate": _optional_decimal(given, "margin_rate"),
                },
            )
            assert row is not None
            settings = convert.instrument_settings(row)
            event = ev.GroupInstrumentSettingsChanged(metadata=_meta(caller), settings=settings)
            if previous is not None:
                event.previous.CopyFrom(convert.instrument_settings(previous))
            await events.emit(session, "account.client_group.instrument_settings_changed", event)
            await audit.append_audit(
                session,
                actor=caller,
                action="group_instrument_settings.set",
                entity_type="group_instrument_settings",
                entity_id=f"{settings.group_id}/{settings.symbol}",
                before=None if previous is None else convert.snapshot(event.previous),
                after=convert.snapshot(settings),
            )
        return admin_pb.SetGroupInstrumentSettingsResponse(settings=settings)

    async def ListGroupInstrumentSettings(
        self, request: admin_pb.ListGroupInstrumentSettingsRequest, context: Context
    ) -> admin_pb.ListGroupInstrumentSettingsResponse:
        require_roles(ANY_STAFF)
        limit, offset = store.page(request.page_size, request.page_token)
        async with self.resources.db.read_session() as session:
            group = await store.group_row(session, request.group_id)
            if group is None:
                raise store.group_not_found(request.group_id)
            rows = await store.many(
                session,
                f"SELECT {store.SETTINGS_COLUMNS} FROM account.group_instrument_settings"
                " WHERE group_id = :g ORDER BY symbol LIMIT :limit OFFSET :offset",
                {"g": group["id"], "limit": limit, "offset": offset},
            )
        return admin_pb.ListGroupInstrumentSettingsResponse(
            settings=[convert.instrument_settings(r) for r in rows],
            next_page_token=store.next_token(offset, limit, len(rows)),
        )

    # -- balance adjustments (maker-checker) -------------------------------------------------------

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
                    metadata=_meta(caller, version=1), balance_adjustment=adjustment
                ),
            )
            await _audit(session, caller, "balance_adjustment.request", adjustment)
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
                    metadata=_meta(caller, version=2), balance_adjustment=adjustment
                ),
            )
            await _audit(session, caller, "balance_adjustment.approve", adjustment, before=before)
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
                    metadata=_meta(caller, version=2), balance_adjustment=adjustment
                ),
            )
            await _audit(session, caller, "balance_adjustment.reject", adjustment, before=before)
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
            params["statuses"] = _enum_names(pb.BalanceAdjustmentStatus, request.statuses)
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

    # -- audit -----------------------------------------------------------------------------------

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


def _meta(caller: Caller, *, version: int = 0) -> Any:
    return events.metadata(
        audit.actor_of(caller), aggregate_version=version, correlation_id=caller.request_id
    )


def _decimal(text: str) -> Any:
    from decimal import Decimal

    return Decimal(text) if text else Decimal(0)


def _optional_decimal(message: Any, field: str) -> Any:
    return _decimal(getattr(message, field)) if message.HasField(field) else None


def _check_levels(margin_call_level: str, stop_out_level: str) -> None:
    if _decimal(margin_call_level) <= _decimal(stop_out_level):
        raise DomainError(
            _R.ERROR_REASON_VALIDATION_FAILED,
            "margin_call_level must be greater than stop_out_level",
            field_violations=[
                ("client_group.margin_call_level", "must be greater than stop_out_level")
            ],
        )


def _check_instrument_settings(settings: pb.GroupInstrumentSettings, lot_step: Any) -> None:
    problems: list[tuple[str, str]] = []
    if (
        settings.HasField("spread_markup")
        and settings.spread_markup_type == pricing_pb2.MarkupType.MARKUP_TYPE_POINTS
        and _decimal(settings.spread_markup) % 1 != 0
    ):
        problems.append(("settings.spread_markup", "a POINTS markup must be a whole number"))
    for field in ("max_order_size", "max_position"):
        if settings.HasField(field) and _decimal(getattr(settings, field)) % lot_step != 0:
            problems.append((f"settings.{field}", f"must be a multiple of the lot step {lot_step}"))
    if problems:
        raise DomainError(
            _R.ERROR_REASON_TOO_MANY_DECIMALS, problems[0][1], field_violations=problems
        )


# ---------------------------------------------------------------------------------------------
# WebhookService: payment and KYC providers
# ---------------------------------------------------------------------------------------------


class WebhookService(webhook_service_pb2_grpc.WebhookServiceServicer):
    """tradingmesh.account.v1.WebhookService (the logic is in services/account/webhooks.py)."""

    def __init__(self, resources: Resources, receiver: WebhookReceiver) -> None:
        self.resources = resources
        self.receiver = receiver

    async def ReceivePaymentEvent(
        self, request: wh_pb.ReceivePaymentEventRequest, context: Context
    ) -> wh_pb.ReceivePaymentEventResponse:
        event_id, outcome = await self.receiver.receive(
            "payment", request.provider, request.body.data, context, current_caller()
        )
        return wh_pb.ReceivePaymentEventResponse(event_id=event_id, outcome=outcome)

    async def ReceiveKycEvent(
        self, request: wh_pb.ReceiveKycEventRequest, context: Context
    ) -> wh_pb.ReceiveKycEventResponse:
        event_id, outcome = await self.receiver.receive(
            "kyc", request.provider, request.body.data, context, current_caller()
        )
        return wh_pb.ReceiveKycEventResponse(event_id=event_id, outcome=outcome)

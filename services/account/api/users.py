# ruff: noqa: N802  # servicer methods carry the contract's RPC names
"""Users as staff manage them: CreateUser, GetUser, ListUsers, UpdateUserStatus."""

from __future__ import annotations

from typing import Final

from argon2 import PasswordHasher
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
from services.account.domain import USER_STATUS_STEPS
from services.account.domain import KycStatus
from services.account.domain import TradingAccountStatus
from services.account.domain import UserStatus
from services.account.domain import check_user_may_close
from services.account.store import accounts as account_store
from services.account.store import users as user_store
from services.platform.access import ADMIN
from services.platform.access import STAFF_ROLES
from services.platform.access import require_roles
from services.platform.enums import enum_name
from services.platform.errors import DomainError
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb
from tradingmesh.account.v1 import account_events_pb2 as ev
from tradingmesh.account.v1 import account_pb2 as pb
from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = ["UserAdmin"]

_R = ErrorReason
_HASHER = PasswordHasher()


class UserAdmin(AdminPart):
    """The user RPCs of AccountAdminService."""

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
                row = await user_store.insert_user(
                    session,
                    username=request.username,
                    email=request.email.lower(),
                    display_name=request.display_name,
                    password_hash=password_hash,
                    roles=roles,
                    kyc_status=KycStatus.NOT_STARTED,
                    status=UserStatus.ACTIVE,
                )
                user = convert.user(row)
                await events.emit(
                    session,
                    "account.user.created",
                    ev.UserCreated(metadata=event_metadata(caller), user=user),
                )
                await audit_change(session, caller, "user.create", user)
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
            row = await store.require_user_row(session, request.user_id)
        return admin_pb.GetUserResponse(user=convert.user(row))

    async def ListUsers(
        self, request: admin_pb.ListUsersRequest, context: Context
    ) -> admin_pb.ListUsersResponse:
        require_roles(ANY_STAFF)
        users, token = await self.listing(
            request,
            user_store.list_users,
            convert.user,
            query=request.query,
            statuses=enum_names(pb.UserStatus, request.statuses),
            kyc_statuses=enum_names(pb.KycStatus, request.kyc_statuses),
            roles=[convert.role_claim(r) for r in request.roles],
        )
        return admin_pb.ListUsersResponse(users=users, next_page_token=token)

    async def UpdateUserStatus(
        self, request: admin_pb.UpdateUserStatusRequest, context: Context
    ) -> admin_pb.UpdateUserStatusResponse:
        caller = require_roles(MONEY_STAFF)
        requested = UserStatus(enum_name(pb.UserStatus, request.status))
        async with self.resources.db.transaction() as session:
            row = await store.require_user_row(session, request.user_id, lock=True)
            user = await change_status(USER_STATUS, session, caller, row, requested, request.reason)
        return admin_pb.UpdateUserStatusResponse(user=user)


async def _check_user_may_close(session: AsyncSession, row: Row) -> None:
    check_user_may_close(
        await account_store.count_accounts_not_in(session, row["id"], TradingAccountStatus.CLOSED)
    )


# Revoking the user's refresh token families is the auth side's (ADR 0005); it reads the user's
# status on every refresh and API-key exchange.
USER_STATUS: Final = StatusChanges(
    entity="user",
    noun="user",
    table=store.USERS,
    steps=USER_STATUS_STEPS,
    status=UserStatus,
    message=convert.user,
    check_close=_check_user_may_close,
    event=lambda metadata, after, before, reason: ev.UserStatusChanged(
        metadata=metadata, user=after, previous_status=before.status, reason=reason
    ),
)

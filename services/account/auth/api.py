"""gRPC servicers for authentication: AuthService, and the key RPCs of AccountAdminService.

`KeyAdministration` holds the AccountAdminService RPCs about API keys and signing keys; the
AccountAdminService servicer (services/account/api/admin.py) inherits it first, so the RPCs it
defines take precedence over the generated UNIMPLEMENTED ones. Both map messages to `AuthCore`
(core.py) and back, nothing more.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any
from typing import TypeAlias
from typing import TypedDict

import grpc.aio
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from services.account.auth.api_keys import ApiKeyStatus
from services.account.auth.core import AuthCore
from services.account.auth.keys import KeyStatus
from services.account.auth.keys import SigningKeyRecord
from services.account.auth.tokens import Issued
from services.account.auth.tokens import utc_now
from services.account.store.auth import ApiKeyRow
from services.platform.enums import enum_name
from services.platform.identity import current_caller
from services.platform.messages import timestamp
from services.platform.resources import Resources
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb2
from tradingmesh.account.v1 import account_pb2
from tradingmesh.account.v1 import auth_service_pb2 as auth_pb2
from tradingmesh.account.v1 import auth_service_pb2_grpc

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

_BEARER = "Bearer"


def _duration_until(issued: Issued) -> Duration:
    duration = Duration()
    duration.FromTimedelta(issued.claims.lifetime)
    return duration


class _AccessToken(TypedDict):
    """The fields of every response that issues an access token."""

    access_token: str
    token_type: str
    expires_in: Duration
    access_token_expire_time: Timestamp | None


def _access_token(issued: Issued) -> _AccessToken:
    return _AccessToken(
        access_token=issued.access_token,
        token_type=_BEARER,
        expires_in=_duration_until(issued),
        access_token_expire_time=timestamp(issued.claims.expires_at),
    )


class _Core:
    """One AuthCore per servicer, made on first use (the resources open after construction)."""

    resources: Resources
    _auth_core: AuthCore | None = None

    @property
    def core(self) -> AuthCore:
        if self._auth_core is None:
            self._auth_core = AuthCore(self.resources)
        return self._auth_core


class AuthService(_Core, auth_service_pb2_grpc.AuthServiceServicer):
    """tradingmesh.account.v1.AuthService."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

    async def Login(  # noqa: N802  # the contract's name
        self, request: auth_pb2.LoginRequest, context: Context
    ) -> auth_pb2.LoginResponse:
        caller = current_caller()
        issued = await self.core.login(
            request.username, request.password, caller.client_ip, caller.request_id
        )
        return auth_pb2.LoginResponse(
            **_access_token(issued),
            refresh_token=issued.refresh_token,
            refresh_token_expire_time=timestamp(issued.refresh_expires_at),
            user_id=issued.claims.subject,
        )

    async def RefreshToken(  # noqa: N802  # the contract's name
        self, request: auth_pb2.RefreshTokenRequest, context: Context
    ) -> auth_pb2.RefreshTokenResponse:
        caller = current_caller()
        issued = await self.core.refresh(request.refresh_token, caller.client_ip, caller)
        return auth_pb2.RefreshTokenResponse(
            **_access_token(issued),
            refresh_token=issued.refresh_token,
            refresh_token_expire_time=timestamp(issued.refresh_expires_at),
        )

    async def Logout(  # noqa: N802  # the contract's name
        self, request: auth_pb2.LogoutRequest, context: Context
    ) -> auth_pb2.LogoutResponse:
        revoked = await self.core.logout(current_caller(), request.all_sessions)
        return auth_pb2.LogoutResponse(revoked_session_count=revoked)

    async def GetJwks(  # noqa: N802  # the contract's name
        self, request: auth_pb2.GetJwksRequest, context: Context
    ) -> auth_pb2.GetJwksResponse:
        keys = [account_pb2.JsonWebKey(**jwk) for jwk in await self.core.signing.jwks()]
        return auth_pb2.GetJwksResponse(keys=keys)

    async def ExchangeApiKey(  # noqa: N802  # the contract's name
        self, request: auth_pb2.ExchangeApiKeyRequest, context: Context
    ) -> auth_pb2.ExchangeApiKeyResponse:
        issued, key = await self.core.api_keys.exchange_api_key(request.api_key_id, request.secret)
        return auth_pb2.ExchangeApiKeyResponse(
            **_access_token(issued),
            scopes=[account_pb2.ApiKeyScope.Value(f"API_KEY_SCOPE_{s}") for s in key.scopes],
            account_ids=list(issued.claims.account_ids),
        )

    async def ChangePassword(  # noqa: N802  # the contract's name
        self, request: auth_pb2.ChangePasswordRequest, context: Context
    ) -> auth_pb2.ChangePasswordResponse:
        revoked = await self.core.change_password(
            current_caller(), request.current_password, request.new_password
        )
        return auth_pb2.ChangePasswordResponse(revoked_session_count=revoked)


def api_key_message(key: ApiKeyRow, now: datetime) -> account_pb2.ApiKey:
    return account_pb2.ApiKey(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        user_id=key.user_id,
        scopes=[account_pb2.ApiKeyScope.Value(f"API_KEY_SCOPE_{s}") for s in key.scopes],
        account_ids=list(key.account_ids),
        status=account_pb2.ApiKeyStatus.Value(f"API_KEY_STATUS_{ApiKeyStatus.of(key, now)}"),
        create_time=timestamp(key.created_at),
        last_used_time=timestamp(key.last_used_at),
        expire_time=timestamp(key.expire_at),
        revoke_time=timestamp(key.revoked_at),
    )


def signing_key_message(key: SigningKeyRecord, now: datetime) -> account_pb2.SigningKey:
    status = key.status(now)
    # A key superseded before it signed has no activation time; its removal is its end.
    return account_pb2.SigningKey(
        kid=key.kid,
        alg="RS256",
        status=account_pb2.SigningKeyStatus.Value(f"SIGNING_KEY_STATUS_{status.value}"),
        create_time=timestamp(key.created_at),
        activate_time=timestamp(key.activate_at),
        retire_time=timestamp(key.retire_at),
        remove_time=timestamp(key.remove_at),
    )


class KeyAdministration(_Core):
    """CreateApiKey, ListApiKeys, RevokeApiKey, RotateSigningKey and ListSigningKeys."""

    async def CreateApiKey(  # noqa: N802  # the contract's name
        self, request: admin_pb2.CreateApiKeyRequest, context: Context
    ) -> admin_pb2.CreateApiKeyResponse:
        key, secret = await self.core.api_keys.create_api_key(
            current_caller(),
            user_id=request.user_id,
            name=request.name,
            scopes=[enum_name(account_pb2.ApiKeyScope, s) for s in request.scopes],
            account_ids=list(request.account_ids),
            expire_at=request.expire_time.ToDatetime(tzinfo=UTC)
            if request.HasField("expire_time")
            else None,
        )
        return admin_pb2.CreateApiKeyResponse(
            api_key=api_key_message(key, utc_now()), secret=secret
        )

    async def ListApiKeys(  # noqa: N802  # the contract's name
        self, request: admin_pb2.ListApiKeysRequest, context: Context
    ) -> admin_pb2.ListApiKeysResponse:
        keys, following = await self.core.api_keys.list_api_keys(
            current_caller(),
            user_id=request.user_id or None,
            statuses=frozenset(
                account_pb2.ApiKeyStatus.Name(s).removeprefix("API_KEY_STATUS_")
                for s in request.statuses
            ),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        now = utc_now()
        return admin_pb2.ListApiKeysResponse(
            api_keys=[api_key_message(k, now) for k in keys], next_page_token=following
        )

    async def RevokeApiKey(  # noqa: N802  # the contract's name
        self, request: admin_pb2.RevokeApiKeyRequest, context: Context
    ) -> admin_pb2.RevokeApiKeyResponse:
        key = await self.core.api_keys.revoke_api_key(
            current_caller(), request.api_key_id, request.reason
        )
        return admin_pb2.RevokeApiKeyResponse(api_key=api_key_message(key, utc_now()))

    async def RotateSigningKey(  # noqa: N802  # the contract's name
        self, request: admin_pb2.RotateSigningKeyRequest, context: Context
    ) -> admin_pb2.RotateSigningKeyResponse:
        rotation = await self.core.signing.rotate_signing_key(
            current_caller(),
            revoke_previous_key=request.revoke_previous_key,
            reason=request.reason,
        )
        now = utc_now()
        return admin_pb2.RotateSigningKeyResponse(
            new_key=signing_key_message(rotation.new_key, now),
            previous_key=signing_key_message(rotation.previous_key, now)
            if rotation.previous_key
            else None,
        )

    async def ListSigningKeys(  # noqa: N802  # the contract's name
        self, request: admin_pb2.ListSigningKeysRequest, context: Context
    ) -> admin_pb2.ListSigningKeysResponse:
        keys, following = await self.core.signing.list_signing_keys(
            current_caller(), page_size=request.page_size, page_token=request.page_token
        )
        now = utc_now()
        return admin_pb2.ListSigningKeysResponse(
            signing_keys=[
                signing_key_message(k, now) for k in keys if k.status(now) is not KeyStatus.REMOVED
            ],
            next_page_token=following,
        )

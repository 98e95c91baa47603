"""Partner API keys (ADR 0005): created, listed and revoked by administrators, exchanged by a
partner for an access token of the key's scopes and accounts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from typing import Final

from services.account.audit import append_audit
from services.account.auth import passwords
from services.account.auth.signing import SigningKeys
from services.account.auth.tokens import ACTIVE_USER
from services.account.auth.tokens import Issued
from services.account.auth.tokens import api_key_claims
from services.account.auth.tokens import invalid_credentials
from services.account.auth.tokens import new_api_key_secret
from services.account.auth.tokens import utc_now
from services.account.store import auth as auth_store
from services.platform.access import ADMIN
from services.platform.access import require_roles
from services.platform.errors import DomainError
from services.platform.errors import not_found
from services.platform.identity import Caller
from services.platform.paging import bad_token
from services.platform.paging import decode_token
from services.platform.paging import encode_token
from services.platform.paging import page_size as paged
from services.platform.resources import Resources
from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = ["ApiKeyStatus", "ApiKeys", "api_key_json"]

_R = ErrorReason


class ApiKeyStatus:
    ACTIVE: Final = "ACTIVE"
    REVOKED: Final = "REVOKED"
    EXPIRED: Final = "EXPIRED"

    @staticmethod
    def of(key: auth_store.ApiKeyRow, now: datetime) -> str:
        if key.revoked_at is not None:
            return ApiKeyStatus.REVOKED
        if key.expire_at is not None and key.expire_at <= now:
            return ApiKeyStatus.EXPIRED
        return ApiKeyStatus.ACTIVE


class ApiKeys:
    def __init__(self, resources: Resources, signing: SigningKeys) -> None:
        self._resources = resources
        self._signing = signing

    async def exchange_api_key(
        self, key_id: str, secret: str
    ) -> tuple[Issued, auth_store.ApiKeyRow]:
        async with self._resources.db.read_session() as session:
            key = await auth_store.api_key(session, key_id)
        matches = await asyncio.to_thread(
            passwords.verify_password, key.secret_hash if key else None, secret
        )
        if key is None or not matches:
            raise invalid_credentials()
        now = utc_now()
        if ApiKeyStatus.of(key, now) != ApiKeyStatus.ACTIVE:
            raise DomainError(
                _R.ERROR_REASON_ACCOUNT_DISABLED, "this API key is revoked or expired"
            )
        async with self._resources.db.transaction() as session:
            user = await auth_store.user_by_id(session, key.user_id)
            if user is None or user.status != ACTIVE_USER:
                raise DomainError(_R.ERROR_REASON_ACCOUNT_DISABLED, "the key's user is not active")
            await auth_store.touch_api_key(session, key.id, now)
        claims = api_key_claims(
            user_id=key.user_id,
            user_roles=user.roles,
            api_key_id=key.id,
            scopes=(scope.lower() for scope in key.scopes),
            account_ids=key.account_ids,
            key_expires_at=key.expire_at,
            now=now,
        )
        return Issued(await self._signing.sign(claims), claims), key

    async def create_api_key(
        self,
        caller: Caller,
        *,
        user_id: str,
        name: str,
        scopes: Iterable[str],
        account_ids: Sequence[str],
        expire_at: datetime | None,
    ) -> tuple[auth_store.ApiKeyRow, str]:
        caller = require_roles([ADMIN], caller)
        now = utc_now()
        if expire_at is not None and expire_at <= now:
            raise DomainError(
                _R.ERROR_REASON_VALIDATION_FAILED,
                "expire_time must be in the future",
                field_violations=[("expire_time", "must be in the future")],
            )
        secret, prefix = new_api_key_secret()
        secret_hash = await asyncio.to_thread(passwords.hash_password, secret)
        key = auth_store.ApiKeyRow(
            id=str(uuid.uuid4()),
            user_id=user_id,
            name=name,
            prefix=prefix,
            secret_hash=secret_hash,
            scopes=tuple(scopes),
            account_ids=tuple(account_ids),
            created_at=now,
            last_used_at=None,
            expire_at=expire_at,
            revoked_at=None,
            revoke_reason="",
        )
        async with self._resources.db.transaction() as session:
            user = await auth_store.user_by_id(session, user_id)
            if user is None:
                raise not_found("user", "user_id", user_id)
            if user.status != ACTIVE_USER:
                raise DomainError(_R.ERROR_REASON_INVALID_STATE, f"user {user_id} is not ACTIVE")
            owned = await auth_store.accounts_of_user(session, user_id, account_ids)
            foreign = [a for a in account_ids if a not in owned]
            if foreign:
                raise not_found("trading account", "account_id", foreign[0])
            await auth_store.insert_api_key(session, key)
            await append_audit(
                session,
                actor=caller,
                action="api_key.create",
                entity_type="api_key",
                entity_id=key.id,
                before=None,
                after=api_key_json(key, now),
            )
        return key, secret

    async def list_api_keys(
        self,
        caller: Caller,
        *,
        user_id: str | None,
        statuses: frozenset[str],
        page_size: int,
        page_token: str,
    ) -> tuple[list[auth_store.ApiKeyRow], str]:
        require_roles([ADMIN], caller)
        after = _decode_key_page(page_token)
        limit = paged(page_size)
        async with self._resources.db.read_session() as session:
            keys = await auth_store.list_api_keys(
                session,
                user_id=user_id,
                statuses=statuses,
                now=utc_now(),
                after=after,
                limit=limit + 1,
            )
        following = ""
        if len(keys) > limit:
            keys = keys[:limit]
            following = _encode_key_page(keys[-1])
        return keys, following

    async def revoke_api_key(
        self, caller: Caller, key_id: str, reason: str
    ) -> auth_store.ApiKeyRow:
        caller = require_roles([ADMIN], caller)
        now = utc_now()
        async with self._resources.db.transaction() as session:
            key = await auth_store.api_key(session, key_id, for_update=True)
            if key is None:
                raise not_found("API key", "api_key_id", key_id)
            if ApiKeyStatus.of(key, now) != ApiKeyStatus.ACTIVE:
                return key
            await auth_store.revoke_api_key(session, key_id, now, reason)
            revoked = await auth_store.api_key(session, key_id)
            assert revoked is not None
            await append_audit(
                session,
                actor=caller,
                action="api_key.revoke",
                entity_type="api_key",
                entity_id=key_id,
                before=api_key_json(key, now),
                after=api_key_json(revoked, now),
            )
        return revoked


def api_key_json(key: auth_store.ApiKeyRow, now: datetime) -> dict[str, Any]:
    """An API key for the audit log: everything but the secret's hash."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "user_id": key.user_id,
        "scopes": list(key.scopes),
        "account_ids": list(key.account_ids),
        "status": ApiKeyStatus.of(key, now),
        "expire_time": key.expire_at.isoformat() if key.expire_at else None,
        "revoke_reason": key.revoke_reason,
    }


def _encode_key_page(key: auth_store.ApiKeyRow) -> str:
    return encode_token(key.created_at.isoformat(), str(key.id))


def _decode_key_page(token: str) -> tuple[datetime, str] | None:
    parts = decode_token(token, 2)
    if parts is None:
        return None
    try:
        return datetime.fromisoformat(parts[0]), str(uuid.UUID(parts[1]))
    except ValueError:
        raise bad_token() from None

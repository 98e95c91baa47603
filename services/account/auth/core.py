"""Authentication: sign-in, refresh rotation, sign-out, API keys and signing keys (ADR 0005).

`AuthCore` does the work behind the servicers in api.py, which only map messages. It holds no
state of its own: keys are in Vault and PostgreSQL, live refresh state in Redis, so any number
of service instances share it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Gauge

from services.account.audit import actor_of, append_audit
from services.account.auth import passwords, repo
from services.account.auth.keys import (
    Rotation,
    RotationRefusedError,
    SigningKeyRecord,
    active_key,
    jwk_of,
    plan_rotation,
    published_keys,
)
from services.account.auth.sessions import RefreshStore, SpendOutcome
from services.account.auth.tokens import (
    REFRESH_FAMILY_LIFETIME,
    REFRESH_TOKEN_LIFETIME,
    AccessClaims,
    api_key_claims,
    new_api_key_secret,
    new_refresh_token,
    parse_refresh_token,
    signing_input,
    user_claims,
    utc_now,
)
from services.account.auth.transit import Transit
from services.platform.access import ADMIN, require_roles, require_user
from services.platform.errors import DomainError
from services.platform.identity import Caller
from services.platform.metrics import REGISTRY
from services.platform.outbox import add_event, event_metadata
from services.platform.paging import bad_token, decode_token, encode_token
from services.platform.paging import page_size as paged
from services.platform.resources import Resources
from tradingmesh.account.v1.account_events_pb2 import (
    TokenFamilyRevoked,
    TokenFamilyRevokeReason,
    UserSignedIn,
)
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.types_pb2 import Actor, ActorKind

__all__ = ["ApiKeyStatus", "AuthCore", "Issued"]

_log = logging.getLogger(__name__)
SIGNING_KEY_ACTIVATED = Gauge(
    "tradingmesh_account_signing_key_activated_timestamp_seconds",
    "When the key that signs access tokens now became active (Unix time): its age tells when "
    "a scheduled rotation is due (ADR 0005); set at each signing",
    registry=REGISTRY,
)
_R = ErrorReason

ACTIVE_USER: Final = "ACTIVE"
TOKEN_FAMILY_REVOKED: Final = "account.token_family.revoked"
USER_SIGNED_IN: Final = "account.user.signed_in"
# Failed sign-ins per username before the username is refused for a while (guessing passwords
# from many addresses; Envoy limits each address).
LOGIN_FAILURES_ALLOWED: Final = 10
LOGIN_FAILURE_WINDOW: Final = timedelta(minutes=15)


class ApiKeyStatus:
    ACTIVE: Final = "ACTIVE"
    REVOKED: Final = "REVOKED"
    EXPIRED: Final = "EXPIRED"

    @staticmethod
    def of(key: repo.ApiKeyRow, now: datetime) -> str:
        if key.revoked_at is not None:
            return ApiKeyStatus.REVOKED
        if key.expire_at is not None and key.expire_at <= now:
            return ApiKeyStatus.EXPIRED
        return ApiKeyStatus.ACTIVE


@dataclass(frozen=True)
class Issued:
    """An access token, and for password sign-ins the refresh token that goes with it."""

    access_token: str
    claims: AccessClaims
    refresh_token: str = ""
    refresh_expires_at: datetime | None = None


def _invalid_credentials() -> DomainError:
    return DomainError(_R.ERROR_REASON_INVALID_CREDENTIALS, "the credentials are not valid")


def _unknown_refresh_token() -> DomainError:
    return DomainError(
        _R.ERROR_REASON_UNAUTHENTICATED, "the refresh token is unknown or expired; sign in again"
    )


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


class AuthCore:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._transit = Transit(resources.vault)
        self._keys_checked = False
        self._keys_lock = asyncio.Lock()
        self._store: RefreshStore | None = None

    @property
    def _store_(self) -> RefreshStore:
        if self._store is None:
            self._store = RefreshStore(self._resources.redis)
        return self._store

    # ---- signing ----------------------------------------------------------------------------

    async def ensure_keys(self) -> None:
        """Registers the transit key's latest version as the first ACTIVE key if none is known.

        If the known keys are not transit's (a new dev OpenBao, whose keys live in memory), they
        can sign nothing any more: they are dropped and the current version registered.
        """
        if self._keys_checked:
            return
        async with self._keys_lock:
            if self._keys_checked:
                return
            versions = await self._transit.public_keys()
            now = utc_now()
            async with self._resources.db.transaction() as session:
                await repo.lock_signing_keys(session)
                known = await repo.signing_keys(session)
                stale = [k for k in known if versions.get(k.version) != k.public_key_pem]
                if stale:
                    _log.warning(
                        "signing keys unknown to Vault transit were dropped",
                        extra={"kids": [k.kid for k in stale]},
                    )
                    await repo.delete_signing_keys(session)
                    known = []
                if not known:
                    latest = max(versions)
                    first = SigningKeyRecord(latest, versions[latest], now, activate_at=now)
                    await repo.insert_signing_key(session, first)
            self._keys_checked = True

    async def _keys(self) -> list[SigningKeyRecord]:
        await self.ensure_keys()
        async with self._resources.db.read_session() as session:
            return await repo.signing_keys(session)

    async def sign(self, claims: AccessClaims) -> str:
        """The compact JWS of `claims`, signed by the key ACTIVE now (never simply the latest)."""
        key = active_key(await self._keys(), utc_now())
        if key is None:
            raise DomainError(
                _R.ERROR_REASON_DEPENDENCY_UNAVAILABLE, "no token signing key is active"
            )
        if key.activate_at is not None:
            SIGNING_KEY_ACTIVATED.set(key.activate_at.timestamp())
        message = signing_input(key.kid, claims.payload())
        signature = await self._transit.sign(key.version, message)
        return f"{message.decode('ascii')}.{signature}"

    async def jwks(self) -> list[dict[str, str]]:
        """The keys that verify tokens now (PUBLISHED, ACTIVE, RETIRED), newest first."""
        return [
            jwk_of(k.kid, k.public_key_pem) for k in published_keys(await self._keys(), utc_now())
        ]

    # ---- password sign-in and sessions ------------------------------------------------------

    async def login(
        self, username: str, password: str, client_ip: str = "", request_id: str = ""
    ) -> Issued:
        redis = self._resources.redis
        failures_key = f"auth:login-failures:{username}"
        failures = int(await redis.get(failures_key) or 0)
        if failures >= LOGIN_FAILURES_ALLOWED:
            ttl = max(int(await redis.ttl(failures_key)), 1)
            raise DomainError(
                _R.ERROR_REASON_RATE_LIMITED,
                "too many failed sign-ins for this username; try again later",
                retry_after=timedelta(seconds=ttl),
            )
        async with self._resources.db.read_session() as session:
            user = await repo.user_by_username(session, username)
        matches = await asyncio.to_thread(
            passwords.verify_password, user.password_hash if user else None, password
        )
        if user is None or not matches:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.incr(failures_key)
                pipe.expire(failures_key, int(LOGIN_FAILURE_WINDOW.total_seconds()), nx=True)
                await pipe.execute()
            raise _invalid_credentials()
        if user.status != ACTIVE_USER:
            raise DomainError(_R.ERROR_REASON_ACCOUNT_DISABLED, "this user cannot sign in")
        await redis.delete(failures_key)
        now = utc_now()
        family_id = uuid.uuid4()
        family_expires = now + REFRESH_FAMILY_LIFETIME
        refresh = new_refresh_token(family_id)
        refresh_expires = min(now + REFRESH_TOKEN_LIFETIME, family_expires)
        async with self._resources.db.transaction() as session:
            account_ids, group = await repo.user_accounts(session, user.id)
            await repo.insert_family(session, family_id, user.id, now, family_expires)
            await repo.insert_refresh_token(session, refresh.hash, family_id, now, refresh_expires)
            # The notification service warns of a sign-in from an address it has not seen.
            signed_in = UserSignedIn(
                metadata=event_metadata(
                    "account",
                    Actor(kind=ActorKind.ACTOR_KIND_USER, id=user.id),
                    now,
                    correlation_id=request_id,
                ),
                user_id=user.id,
                token_family_id=str(family_id),
                source_ip=client_ip,
            )
            await add_event(session, "account", USER_SIGNED_IN, signed_in)
            if passwords.needs_rehash(user.password_hash):
                new_hash = await asyncio.to_thread(passwords.hash_password, password)
                await repo.set_password_hash(session, user.id, new_hash)
        await self._store_.add_family(family_id, family_expires)
        await self._store_.add_token(refresh.hash, family_id, refresh_expires)
        claims = user_claims(
            user_id=user.id,
            roles=user.roles,
            account_ids=account_ids,
            group=group,
            session_id=str(family_id),
            now=now,
        )
        return Issued(await self.sign(claims), claims, refresh.text, refresh_expires)

    async def refresh(self, text: str, client_ip: str, caller: Caller) -> Issued:
        token = parse_refresh_token(text)
        if token is None:
            raise _unknown_refresh_token()
        store = self._store_
        outcome = await store.spend(token.hash, token.family_id)
        if outcome is SpendOutcome.UNKNOWN:
            outcome = await self._spend_from_database(token.hash, token.family_id)
        if outcome in (SpendOutcome.REUSED, SpendOutcome.REVOKED):
            await self._revoke_after_reuse(token.hash, token.family_id, client_ip, caller)
            raise DomainError(
                _R.ERROR_REASON_REFRESH_TOKEN_REUSED,
                "this refresh token was already used or its session was revoked; the session is"
                " now signed out everywhere",
            )
        now = utc_now()
        async with self._resources.db.transaction() as session:
            row = await repo.refresh_token(session, token.hash)
            if row is None:
                raise _unknown_refresh_token()
            await repo.mark_spent(session, token.hash, now)
        if row.family_expires_at <= now or row.expires_at <= now:
            raise _unknown_refresh_token()
        following = new_refresh_token(token.family_id)
        following_expires = min(now + REFRESH_TOKEN_LIFETIME, row.family_expires_at)
        async with self._resources.db.transaction() as session:
            user = await repo.user_by_id(session, row.user_id)
            if user is None or user.status != ACTIVE_USER:
                raise DomainError(_R.ERROR_REASON_ACCOUNT_DISABLED, "this user cannot sign in")
            account_ids, group = await repo.user_accounts(session, user.id)
            await repo.insert_refresh_token(
                session, following.hash, token.family_id, now, following_expires
            )
        await store.add_token(following.hash, token.family_id, following_expires)
        claims = user_claims(
            user_id=user.id,
            roles=user.roles,
            account_ids=account_ids,
            group=group,
            session_id=str(token.family_id),
            now=now,
        )
        return Issued(await self.sign(claims), claims, following.text, following_expires)

    async def _spend_from_database(self, token_hash: str, family_id: uuid.UUID) -> SpendOutcome:
        """Redis does not know the token: PostgreSQL decides, and Redis learns it again."""
        async with self._resources.db.read_session() as session:
            row = await repo.refresh_token(session, token_hash)
        now = utc_now()
        if row is None or row.family_id != family_id:
            raise _unknown_refresh_token()
        if row.expires_at <= now or row.family_expires_at <= now:
            raise _unknown_refresh_token()
        await self._store_.restore(
            token_hash=token_hash,
            family_id=family_id,
            spent=row.spent,
            token_expires_at=row.expires_at,
            family_revoked=row.family_revoked,
            family_expires_at=row.family_expires_at,
        )
        outcome = await self._store_.spend(token_hash, family_id)
        if outcome is SpendOutcome.UNKNOWN:
            raise _unknown_refresh_token()
        return outcome

    async def _revoke_after_reuse(
        self, token_hash: str, family_id: uuid.UUID, client_ip: str, caller: Caller
    ) -> None:
        await self._store_.revoke_family(family_id)
        async with self._resources.db.transaction() as session:
            row = await repo.refresh_token(session, token_hash)
            if row is None:
                return
            await self._revoke(
                session,
                user_id=row.user_id,
                family_ids=[family_id],
                reason=TokenFamilyRevokeReason.TOKEN_FAMILY_REVOKE_REASON_REUSE_DETECTED,
                caller=None,  # the system detected it; the presenter is not a trusted actor
                request_id=caller.request_id,
                source_ip=client_ip,
            )

    async def _revoke(
        self,
        session: Any,
        *,
        user_id: str,
        family_ids: Sequence[uuid.UUID] | None,
        reason: TokenFamilyRevokeReason.ValueType,
        caller: Caller | None,
        request_id: str,
        source_ip: str = "",
        keep: uuid.UUID | None = None,
    ) -> list[uuid.UUID]:
        """Revokes families in PostgreSQL with one event each (same transaction), then Redis."""
        now = utc_now()
        revoked = await repo.revoke_families(
            session,
            user_id=user_id,
            family_ids=family_ids,
            reason=TokenFamilyRevokeReason.Name(reason).removeprefix("TOKEN_FAMILY_REVOKE_REASON_"),
            now=now,
            source_ip=source_ip,
            keep=keep,
        )
        for family_id in revoked:
            event = TokenFamilyRevoked(
                metadata=event_metadata(
                    "account", actor_of(caller), now, correlation_id=request_id
                ),
                user_id=user_id,
                token_family_id=str(family_id),
                reason=reason,
                source_ip=source_ip
                if reason == TokenFamilyRevokeReason.TOKEN_FAMILY_REVOKE_REASON_REUSE_DETECTED
                else "",
            )
            await add_event(session, "account", TOKEN_FAMILY_REVOKED, event)
        for family_id in revoked:
            await self._store_.revoke_family(family_id)
        return revoked

    async def logout(self, caller: Caller, all_sessions: bool) -> int:
        caller = require_user(caller)
        if all_sessions:
            family_ids: list[uuid.UUID] | None = None
        elif caller.session_id is None:
            return 0  # an API key's token has no session
        else:
            family_ids = [_uuid_or_none(caller.session_id) or uuid.UUID(int=0)]
        async with self._resources.db.transaction() as session:
            revoked = await self._revoke(
                session,
                user_id=caller.subject,
                family_ids=family_ids,
                reason=TokenFamilyRevokeReason.TOKEN_FAMILY_REVOKE_REASON_LOGOUT,
                caller=caller,
                request_id=caller.request_id,
            )
        return len(revoked)

    async def change_password(self, caller: Caller, current: str, new: str) -> int:
        caller = require_user(caller)
        if caller.api_key_id is not None:
            raise DomainError(
                _R.ERROR_REASON_PERMISSION_DENIED, "an API key cannot change a password"
            )
        if passwords.breached(new):
            raise DomainError(
                _R.ERROR_REASON_VALIDATION_FAILED,
                "the new password is too common",
                field_violations=[("new_password", "appears in lists of breached passwords")],
            )
        async with self._resources.db.read_session() as session:
            user = await repo.user_by_id(session, caller.subject)
        if user is None:
            raise _invalid_credentials()
        if not await asyncio.to_thread(passwords.verify_password, user.password_hash, current):
            raise _invalid_credentials()
        new_hash = await asyncio.to_thread(passwords.hash_password, new)
        async with self._resources.db.transaction() as session:
            await repo.set_password_hash(session, user.id, new_hash)
            revoked = await self._revoke(
                session,
                user_id=user.id,
                family_ids=None,
                reason=TokenFamilyRevokeReason.TOKEN_FAMILY_REVOKE_REASON_PASSWORD_CHANGED,
                caller=caller,
                request_id=caller.request_id,
                keep=_uuid_or_none(caller.session_id),
            )
            await append_audit(
                session,
                actor=caller,
                action="user.change_password",
                entity_type="user",
                entity_id=user.id,
                before={"password": "set"},
                after={"password": "changed", "sessions_signed_out": len(revoked)},
            )
        return len(revoked)

    # ---- partner API keys -------------------------------------------------------------------

    async def exchange_api_key(self, key_id: str, secret: str) -> tuple[Issued, repo.ApiKeyRow]:
        async with self._resources.db.read_session() as session:
            key = await repo.api_key(session, key_id)
        matches = await asyncio.to_thread(
            passwords.verify_password, key.secret_hash if key else None, secret
        )
        if key is None or not matches:
            raise _invalid_credentials()
        now = utc_now()
        if ApiKeyStatus.of(key, now) != ApiKeyStatus.ACTIVE:
            raise DomainError(
                _R.ERROR_REASON_ACCOUNT_DISABLED, "this API key is revoked or expired"
            )
        async with self._resources.db.transaction() as session:
            user = await repo.user_by_id(session, key.user_id)
            if user is None or user.status != ACTIVE_USER:
                raise DomainError(_R.ERROR_REASON_ACCOUNT_DISABLED, "the key's user is not active")
            await repo.touch_api_key(session, key.id, now)
        claims = api_key_claims(
            user_id=key.user_id,
            user_roles=user.roles,
            api_key_id=key.id,
            scopes=(scope.lower() for scope in key.scopes),
            account_ids=key.account_ids,
            key_expires_at=key.expire_at,
            now=now,
        )
        return Issued(await self.sign(claims), claims), key

    async def create_api_key(
        self,
        caller: Caller,
        *,
        user_id: str,
        name: str,
        scopes: Iterable[str],
        account_ids: Sequence[str],
        expire_at: datetime | None,
    ) -> tuple[repo.ApiKeyRow, str]:
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
        key = repo.ApiKeyRow(
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
            user = await repo.user_by_id(session, user_id)
            if user is None:
                raise DomainError(
                    _R.ERROR_REASON_NOT_FOUND,
                    f"user {user_id} not found",
                    metadata={"user_id": user_id},
                )
            if user.status != ACTIVE_USER:
                raise DomainError(_R.ERROR_REASON_INVALID_STATE, f"user {user_id} is not ACTIVE")
            owned = await repo.accounts_of_user(session, user_id, account_ids)
            foreign = [a for a in account_ids if a not in owned]
            if foreign:
                raise DomainError(
                    _R.ERROR_REASON_NOT_FOUND,
                    f"trading account {foreign[0]} not found",
                    metadata={"account_id": foreign[0]},
                )
            await repo.insert_api_key(session, key)
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
    ) -> tuple[list[repo.ApiKeyRow], str]:
        require_roles([ADMIN], caller)
        after = _decode_key_page(page_token)
        limit = paged(page_size)
        async with self._resources.db.read_session() as session:
            keys = await repo.list_api_keys(
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

    async def revoke_api_key(self, caller: Caller, key_id: str, reason: str) -> repo.ApiKeyRow:
        caller = require_roles([ADMIN], caller)
        now = utc_now()
        async with self._resources.db.transaction() as session:
            key = await repo.api_key(session, key_id, for_update=True)
            if key is None:
                raise DomainError(
                    _R.ERROR_REASON_NOT_FOUND,
                    f"API key {key_id} not found",
                    metadata={"api_key_id": key_id},
                )
            if ApiKeyStatus.of(key, now) != ApiKeyStatus.ACTIVE:
                return key
            await repo.revoke_api_key(session, key_id, now, reason)
            revoked = await repo.api_key(session, key_id)
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

    # ---- signing key administration ---------------------------------------------------------

    async def rotate_signing_key(
        self, caller: Caller, *, revoke_previous_key: bool, reason: str
    ) -> Rotation:
        caller = require_roles([ADMIN], caller)
        await self.ensure_keys()
        async with self._resources.db.transaction() as session:
            await repo.lock_signing_keys(session)
            keys = await repo.signing_keys(session)
            now = utc_now()
            newest = max((k.version for k in keys), default=0)
            try:
                # Checked before Vault makes a version that would then never be used.
                plan_rotation(
                    keys,
                    new_version=newest + 1,
                    new_public_key_pem="",
                    now=now,
                    revoke_previous_key=revoke_previous_key,
                )
                version = await self._transit.rotate()
                pem = (await self._transit.public_keys())[version]
                rotation = plan_rotation(
                    keys,
                    new_version=version,
                    new_public_key_pem=pem,
                    now=now,
                    revoke_previous_key=revoke_previous_key,
                )
            except RotationRefusedError as refused:
                raise DomainError(_R.ERROR_REASON_INVALID_STATE, str(refused)) from refused
            before = {k.version: k for k in keys}
            await repo.insert_signing_key(session, rotation.new_key)
            await append_audit(
                session,
                actor=caller,
                action="signing_key.rotate",
                entity_type="signing_key",
                entity_id=rotation.new_key.kid,
                before=None,
                after={
                    **signing_key_json(rotation.new_key, now),
                    "revoke_previous_key": revoke_previous_key,
                    "reason": reason,
                },
            )
            for changed in rotation.changed:
                await repo.update_signing_key_times(session, changed)
                # Removed now (an emergency rotation), or retiring on the new key's activation.
                await append_audit(
                    session,
                    actor=caller,
                    action="signing_key.remove"
                    if changed.remove_at == now
                    else "signing_key.retire",
                    entity_type="signing_key",
                    entity_id=changed.kid,
                    before=signing_key_json(before[changed.version], now),
                    after={**signing_key_json(changed, now), "reason": reason},
                )
        return rotation

    async def list_signing_keys(
        self, caller: Caller, *, page_size: int, page_token: str
    ) -> tuple[list[SigningKeyRecord], str]:
        require_roles([ADMIN], caller)
        now = utc_now()
        keys = published_keys(await self._keys(), now)
        if page_token:
            try:
                below = int(page_token)
            except ValueError:
                raise bad_token() from None
            keys = [k for k in keys if k.version < below]
        limit = paged(page_size)
        following = str(keys[limit - 1].version) if len(keys) > limit else ""
        return keys[:limit], following


def api_key_json(key: repo.ApiKeyRow, now: datetime) -> dict[str, Any]:
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


def signing_key_json(key: SigningKeyRecord, now: datetime) -> dict[str, Any]:
    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "kid": key.kid,
        "status": key.status(now).value,
        "activate_time": iso(key.activate_at),
        "retire_time": iso(key.retire_at),
        "remove_time": iso(key.remove_at),
    }


def _uuid_or_none(text: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None


def _encode_key_page(key: repo.ApiKeyRow) -> str:
    return encode_token(key.created_at.isoformat(), str(key.id))


def _decode_key_page(token: str) -> tuple[datetime, str] | None:
    parts = decode_token(token, 2)
    if parts is None:
        return None
    try:
        return datetime.fromisoformat(parts[0]), str(uuid.UUID(parts[1]))
    except ValueError:
        raise bad_token() from None

"""Authentication: sign-in, refresh rotation and sign-out (ADR 0005); API keys (api_keys.py) and
signing keys (signing.py) are its parts.

`AuthCore` does the work behind the servicers in api.py, which only map messages. It holds no
state of its own: keys are in Vault and PostgreSQL, live refresh state in Redis, so any number
of service instances share it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from typing import Final

from services.account.audit import actor_of
from services.account.audit import append_audit
from services.account.auth import passwords
from services.account.auth.api_keys import ApiKeys
from services.account.auth.sessions import RefreshStore
from services.account.auth.sessions import SpendOutcome
from services.account.auth.signing import SigningKeys
from services.account.auth.tokens import ACTIVE_USER
from services.account.auth.tokens import REFRESH_FAMILY_LIFETIME
from services.account.auth.tokens import REFRESH_TOKEN_LIFETIME
from services.account.auth.tokens import Issued
from services.account.auth.tokens import invalid_credentials
from services.account.auth.tokens import new_refresh_token
from services.account.auth.tokens import parse_refresh_token
from services.account.auth.tokens import user_claims
from services.account.auth.tokens import utc_now
from services.account.store import auth as auth_store
from services.platform.access import require_user
from services.platform.enums import enum_name
from services.platform.errors import DomainError
from services.platform.identity import Caller
from services.platform.outbox import add_event
from services.platform.outbox import event_metadata
from services.platform.resources import Resources
from tradingmesh.account.v1.account_events_pb2 import TokenFamilyRevoked
from tradingmesh.account.v1.account_events_pb2 import TokenFamilyRevokeReason
from tradingmesh.account.v1.account_events_pb2 import UserSignedIn
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.common.v1.types_pb2 import ActorKind

__all__ = ["AuthCore"]

_log = logging.getLogger(__name__)
_R = ErrorReason

TOKEN_FAMILY_REVOKED: Final = "account.token_family.revoked"
USER_SIGNED_IN: Final = "account.user.signed_in"
# Failed sign-ins per username before the username is refused for a while (guessing passwords
# from many addresses; Envoy limits each address).
LOGIN_FAILURES_ALLOWED: Final = 10
LOGIN_FAILURE_WINDOW: Final = timedelta(minutes=15)


def _unknown_refresh_token() -> DomainError:
    return DomainError(
        _R.ERROR_REASON_UNAUTHENTICATED, "the refresh token is unknown or expired; sign in again"
    )


class AuthCore:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self.signing = SigningKeys(resources)
        self.api_keys = ApiKeys(resources, self.signing)
        self._store: RefreshStore | None = None

    @property
    def _store_(self) -> RefreshStore:
        if self._store is None:
            self._store = RefreshStore(self._resources.redis)
        return self._store

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
            user = await auth_store.user_by_username(session, username)
        matches = await asyncio.to_thread(
            passwords.verify_password, user.password_hash if user else None, password
        )
        if user is None or not matches:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.incr(failures_key)
                pipe.expire(failures_key, int(LOGIN_FAILURE_WINDOW.total_seconds()), nx=True)
                await pipe.execute()
            raise invalid_credentials()
        if user.status != ACTIVE_USER:
            raise DomainError(_R.ERROR_REASON_ACCOUNT_DISABLED, "this user cannot sign in")
        await redis.delete(failures_key)
        now = utc_now()
        family_id = uuid.uuid4()
        family_expires = now + REFRESH_FAMILY_LIFETIME
        refresh = new_refresh_token(family_id)
        refresh_expires = min(now + REFRESH_TOKEN_LIFETIME, family_expires)
        async with self._resources.db.transaction() as session:
            account_ids, group = await auth_store.user_accounts(session, user.id)
            await auth_store.insert_family(session, family_id, user.id, now, family_expires)
            await auth_store.insert_refresh_token(
                session, refresh.hash, family_id, now, refresh_expires
            )
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
                await auth_store.set_password_hash(session, user.id, new_hash)
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
        return Issued(await self.signing.sign(claims), claims, refresh.text, refresh_expires)

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
            row = await auth_store.refresh_token(session, token.hash)
            if row is None:
                raise _unknown_refresh_token()
            await auth_store.mark_spent(session, token.hash, now)
        if row.family_expires_at <= now or row.expires_at <= now:
            raise _unknown_refresh_token()
        following = new_refresh_token(token.family_id)
        following_expires = min(now + REFRESH_TOKEN_LIFETIME, row.family_expires_at)
        async with self._resources.db.transaction() as session:
            user = await auth_store.user_by_id(session, row.user_id)
            if user is None or user.status != ACTIVE_USER:
                raise DomainError(_R.ERROR_REASON_ACCOUNT_DISABLED, "this user cannot sign in")
            account_ids, group = await auth_store.user_accounts(session, user.id)
            await auth_store.insert_refresh_token(
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
        return Issued(await self.signing.sign(claims), claims, following.text, following_expires)

    async def _spend_from_database(self, token_hash: str, family_id: uuid.UUID) -> SpendOutcome:
        """Redis does not know the token: PostgreSQL decides, and Redis learns it again."""
        async with self._resources.db.read_session() as session:
            row = await auth_store.refresh_token(session, token_hash)
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
            row = await auth_store.refresh_token(session, token_hash)
            if row is None:
                return
            await self._revoke(
                session,
                caller,
                TokenFamilyRevokeReason.TOKEN_FAMILY_REVOKE_REASON_REUSE_DETECTED,
                family_ids=[family_id],
                user_id=row.user_id,
                source_ip=client_ip,
            )

    async def _revoke(
        self,
        session: Any,
        caller: Caller,
        reason: TokenFamilyRevokeReason.ValueType,
        *,
        family_ids: Sequence[uuid.UUID] | None = None,
        keep: uuid.UUID | None = None,
        user_id: str | None = None,
        source_ip: str = "",
    ) -> list[uuid.UUID]:
        """Revokes the user's live families (`family_ids`, or every one but `keep`) in
        PostgreSQL with one event each (same transaction), then in Redis. The user is the
        caller unless `user_id` names another (a reused token's owner). The actor is the
        caller, but this service for a reuse it detected: the presenter of a reused token is
        not a trusted actor; the event then carries the presenter's `source_ip`."""
        reuse = reason == TokenFamilyRevokeReason.TOKEN_FAMILY_REVOKE_REASON_REUSE_DETECTED
        owner = caller.subject if user_id is None else user_id
        now = utc_now()
        revoked = await auth_store.revoke_families(
            session,
            user_id=owner,
            family_ids=family_ids,
            reason=enum_name(TokenFamilyRevokeReason, reason),
            now=now,
            source_ip=source_ip,
            keep=keep,
        )
        for family_id in revoked:
            event = TokenFamilyRevoked(
                metadata=event_metadata(
                    "account",
                    actor_of(None if reuse else caller),
                    now,
                    correlation_id=caller.request_id,
                ),
                user_id=owner,
                token_family_id=str(family_id),
                reason=reason,
                source_ip=source_ip if reuse else "",
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
                caller,
                TokenFamilyRevokeReason.TOKEN_FAMILY_REVOKE_REASON_LOGOUT,
                family_ids=family_ids,
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
            user = await auth_store.user_by_id(session, caller.subject)
        if user is None:
            raise invalid_credentials()
        if not await asyncio.to_thread(passwords.verify_password, user.password_hash, current):
            raise invalid_credentials()
        new_hash = await asyncio.to_thread(passwords.hash_password, new)
        async with self._resources.db.transaction() as session:
            await auth_store.set_password_hash(session, user.id, new_hash)
            revoked = await self._revoke(
                session,
                caller,
                TokenFamilyRevokeReason.TOKEN_FAMILY_REVOKE_REASON_PASSWORD_CHANGED,
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


def _uuid_or_none(text: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None

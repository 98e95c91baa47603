"""SQL of authentication: users' credentials, signing keys, refresh token audit rows, API keys.

Every function takes the caller's session, so a change and its audit record share a transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.account.auth.keys import SigningKeyRecord

__all__ = [
    "ApiKeyRow",
    "RefreshTokenRow",
    "UserCredentials",
]

ACTIVE = "ACTIVE"


@dataclass(frozen=True)
class UserCredentials:
    id: str
    username: str
    password_hash: str
    roles: tuple[str, ...]
    status: str


_USER_COLUMNS = "id::text, username, password_hash, roles, status"


def _user(row: Sequence[Any] | None) -> UserCredentials | None:
    if row is None:
        return None
    return UserCredentials(str(row[0]), str(row[1]), str(row[2]), tuple(row[3]), str(row[4]))


async def user_by_username(session: AsyncSession, username: str) -> UserCredentials | None:
    result = await session.execute(
        text(f"SELECT {_USER_COLUMNS} FROM account.users WHERE username = :username"),
        {"username": username},
    )
    return _user(result.first())


async def user_by_id(session: AsyncSession, user_id: str) -> UserCredentials | None:
    result = await session.execute(
        text(f"SELECT {_USER_COLUMNS} FROM account.users WHERE id = :id"), {"id": user_id}
    )
    return _user(result.first())


async def set_password_hash(session: AsyncSession, user_id: str, password_hash: str) -> None:
    await session.execute(
        text("UPDATE account.users SET password_hash = :hash, updated_at = now() WHERE id = :id"),
        {"hash": password_hash, "id": user_id},
    )


async def user_accounts(session: AsyncSession, user_id: str) -> tuple[list[str], str | None]:
    """The user's trading accounts that are not closed, and their client group's name when they
    all share one (the `group` claim)."""
    result = await session.execute(
        text(
            "SELECT a.id::text, g.name FROM account.trading_accounts a"
            " JOIN account.client_groups g ON g.id = a.group_id"
            " WHERE a.user_id = :user_id AND a.status <> 'CLOSED' ORDER BY a.created_at"
        ),
        {"user_id": user_id},
    )
    rows = result.all()
    groups = {str(row[1]) for row in rows}
    return [str(row[0]) for row in rows], (groups.pop() if len(groups) == 1 else None)


# ---- signing keys ---------------------------------------------------------------------------

_KEY_COLUMNS = "key_version, public_key_pem, created_at, activate_at, retire_at, remove_at"


async def signing_keys(session: AsyncSession) -> list[SigningKeyRecord]:
    result = await session.execute(
        text(f"SELECT {_KEY_COLUMNS} FROM account.signing_keys ORDER BY key_version")
    )
    return [SigningKeyRecord(int(r[0]), str(r[1]), r[2], r[3], r[4], r[5]) for r in result.all()]


async def lock_signing_keys(session: AsyncSession) -> None:
    """Serializes rotations (and the first key's registration) across service instances."""
    await session.execute(text("LOCK TABLE account.signing_keys IN SHARE ROW EXCLUSIVE MODE"))


async def insert_signing_key(session: AsyncSession, key: SigningKeyRecord) -> None:
    await session.execute(
        text(
            f"INSERT INTO account.signing_keys (kid, {_KEY_COLUMNS})"
            " VALUES (:kid, :version, :pem, :created, :activate, :retire, :remove)"
        ),
        {
            "kid": key.kid,
            "version": key.version,
            "pem": key.public_key_pem,
            "created": key.created_at,
            "activate": key.activate_at,
            "retire": key.retire_at,
            "remove": key.remove_at,
        },
    )


async def update_signing_key_times(session: AsyncSession, key: SigningKeyRecord) -> None:
    await session.execute(
        text(
            "UPDATE account.signing_keys SET activate_at = :activate, retire_at = :retire,"
            " remove_at = :remove WHERE kid = :kid"
        ),
        {
            "kid": key.kid,
            "activate": key.activate_at,
            "retire": key.retire_at,
            "remove": key.remove_at,
        },
    )


async def delete_signing_keys(session: AsyncSession) -> None:
    await session.execute(text("DELETE FROM account.signing_keys"))


# ---- refresh token families and tokens ------------------------------------------------------


async def insert_family(
    session: AsyncSession, family_id: uuid.UUID, user_id: str, now: datetime, expires_at: datetime
) -> None:
    await session.execute(
        text(
            "INSERT INTO account.refresh_families (id, user_id, created_at, expires_at)"
            " VALUES (:id, :user_id, :now, :expires_at)"
        ),
        {"id": family_id, "user_id": user_id, "now": now, "expires_at": expires_at},
    )


async def insert_refresh_token(
    session: AsyncSession,
    token_hash: str,
    family_id: uuid.UUID,
    now: datetime,
    expires_at: datetime,
) -> None:
    await session.execute(
        text(
            "INSERT INTO account.refresh_tokens (token_hash, family_id, issued_at, expires_at)"
            " VALUES (:hash, :family, :now, :expires_at)"
        ),
        {"hash": token_hash, "family": family_id, "now": now, "expires_at": expires_at},
    )


@dataclass(frozen=True)
class RefreshTokenRow:
    family_id: uuid.UUID
    user_id: str
    expires_at: datetime
    spent: bool
    family_expires_at: datetime
    family_revoked: bool


async def refresh_token(session: AsyncSession, token_hash: str) -> RefreshTokenRow | None:
    result = await session.execute(
        text(
            "SELECT t.family_id, f.user_id::text, t.expires_at, t.spent_at IS NOT NULL,"
            " f.expires_at, f.revoked_at IS NOT NULL"
            " FROM account.refresh_tokens t JOIN account.refresh_families f ON f.id = t.family_id"
            " WHERE t.token_hash = :hash"
        ),
        {"hash": token_hash},
    )
    row = result.first()
    if row is None:
        return None
    return RefreshTokenRow(row[0], str(row[1]), row[2], bool(row[3]), row[4], bool(row[5]))


async def mark_spent(session: AsyncSession, token_hash: str, now: datetime) -> None:
    await session.execute(
        text(
            "UPDATE account.refresh_tokens SET spent_at = :now"
            " WHERE token_hash = :hash AND spent_at IS NULL"
        ),
        {"hash": token_hash, "now": now},
    )


async def revoke_families(
    session: AsyncSession,
    *,
    user_id: str,
    family_ids: Sequence[uuid.UUID] | None,
    reason: str,
    now: datetime,
    source_ip: str = "",
    keep: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Revokes the user's given live families (every live one if `family_ids` is None) but
    `keep`; returns those it revoked now."""
    result = await session.execute(
        text(
            "UPDATE account.refresh_families SET revoked_at = :now, revoke_reason = :reason,"
            " revoked_from_ip = :ip"
            " WHERE user_id = :user_id AND revoked_at IS NULL AND expires_at > :now"
            " AND (CAST(:all AS BOOLEAN) OR id = ANY(:ids))"
            " AND (CAST(:keep AS UUID) IS NULL OR id <> CAST(:keep AS UUID))"
            " RETURNING id"
        ),
        {
            "now": now,
            "reason": reason,
            "ip": source_ip,
            "user_id": user_id,
            "all": family_ids is None,
            "ids": list(family_ids or ()),
            "keep": keep,
        },
    )
    return [row[0] for row in result.all()]


# ---- API keys -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiKeyRow:
    id: str
    user_id: str
    name: str
    prefix: str
    secret_hash: str
    scopes: tuple[str, ...]
    account_ids: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    expire_at: datetime | None
    revoked_at: datetime | None
    revoke_reason: str


_API_KEY_COLUMNS = (
    "id::text, user_id::text, name, prefix, secret_hash, scopes, account_ids::text[], created_at,"
    " last_used_at, expire_at, revoked_at, revoke_reason"
)


def _api_key(row: Sequence[Any]) -> ApiKeyRow:
    return ApiKeyRow(
        id=str(row[0]),
        user_id=str(row[1]),
        name=str(row[2]),
        prefix=str(row[3]),
        secret_hash=str(row[4]),
        scopes=tuple(row[5]),
        account_ids=tuple(row[6]),
        created_at=row[7],
        last_used_at=row[8],
        expire_at=row[9],
        revoked_at=row[10],
        revoke_reason=str(row[11]),
    )


async def insert_api_key(session: AsyncSession, key: ApiKeyRow) -> None:
    await session.execute(
        text(
            "INSERT INTO account.api_keys (id, user_id, name, prefix, secret_hash, scopes,"
            " account_ids, created_at, expire_at)"
            " VALUES (:id, :user_id, :name, :prefix, :hash, :scopes, CAST(:accounts AS UUID[]),"
            " :created, :expire)"
        ),
        {
            "id": key.id,
            "user_id": key.user_id,
            "name": key.name,
            "prefix": key.prefix,
            "hash": key.secret_hash,
            "scopes": list(key.scopes),
            "accounts": list(key.account_ids),
            "created": key.created_at,
            "expire": key.expire_at,
        },
    )


async def api_key(
    session: AsyncSession, key_id: str, *, for_update: bool = False
) -> ApiKeyRow | None:
    lock = " FOR UPDATE" if for_update else ""
    result = await session.execute(
        text(f"SELECT {_API_KEY_COLUMNS} FROM account.api_keys WHERE id = :id{lock}"),
        {"id": key_id},
    )
    row = result.first()
    return _api_key(row) if row is not None else None


async def list_api_keys(
    session: AsyncSession,
    *,
    user_id: str | None,
    statuses: frozenset[str],
    now: datetime,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[ApiKeyRow]:
    """Newest first, in `statuses` (ACTIVE, REVOKED, EXPIRED; empty: all); `after` is the
    (created_at, id) of the last key of the previous page."""
    result = await session.execute(
        text(
            f"SELECT {_API_KEY_COLUMNS} FROM account.api_keys"
            " WHERE (CAST(:user_id AS UUID) IS NULL OR user_id = CAST(:user_id AS UUID))"
            " AND (CAST(:any_status AS BOOLEAN)"
            "      OR (:revoked AND revoked_at IS NOT NULL)"
            "      OR (:expired AND revoked_at IS NULL AND expire_at <= :now)"
            "      OR (:active AND revoked_at IS NULL AND (expire_at IS NULL OR expire_at > :now)))"
            " AND (CAST(:after_time AS TIMESTAMPTZ) IS NULL OR (created_at, id)"
            "      < (CAST(:after_time AS TIMESTAMPTZ), CAST(:after_id AS UUID)))"
            " ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        {
            "user_id": user_id,
            "any_status": not statuses,
            "revoked": "REVOKED" in statuses,
            "expired": "EXPIRED" in statuses,
            "active": "ACTIVE" in statuses,
            "now": now,
            "after_time": after[0] if after else None,
            "after_id": after[1] if after else None,
            "limit": limit,
        },
    )
    return [_api_key(row) for row in result.all()]


async def revoke_api_key(session: AsyncSession, key_id: str, now: datetime, reason: str) -> None:
    await session.execute(
        text(
            "UPDATE account.api_keys SET revoked_at = :now, revoke_reason = :reason"
            " WHERE id = :id AND revoked_at IS NULL"
        ),
        {"id": key_id, "now": now, "reason": reason},
    )


async def touch_api_key(session: AsyncSession, key_id: str, now: datetime) -> None:
    await session.execute(
        text("UPDATE account.api_keys SET last_used_at = :now WHERE id = :id"),
        {"id": key_id, "now": now},
    )


async def accounts_of_user(
    session: AsyncSession, user_id: str, account_ids: Sequence[str]
) -> set[str]:
    """Which of `account_ids` are trading accounts of the user."""
    result = await session.execute(
        text(
            "SELECT id::text FROM account.trading_accounts"
            " WHERE user_id = :user_id AND id = ANY(CAST(:ids AS UUID[]))"
        ),
        {"user_id": user_id, "ids": list(account_ids)},
    )
    return {str(row[0]) for row in result.all()}

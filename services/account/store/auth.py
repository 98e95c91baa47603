"""SQL of authentication: users' credentials, signing keys, refresh token audit rows, API keys.

Every function takes the caller's session, so a change and its audit record share a transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.account.auth.keys import SigningKeyRecord
from services.account.store import Row
from services.account.store import execute
from services.account.store import insert
from services.account.store import many
from services.account.store import one

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


_USER_COLUMNS = "id::text AS id, username, password_hash, roles, status"


def _user(row: Row | None) -> UserCredentials | None:
    if row is None:
        return None
    return UserCredentials(
        row["id"], row["username"], row["password_hash"], tuple(row["roles"]), row["status"]
    )


async def user_by_username(session: AsyncSession, username: str) -> UserCredentials | None:
    return _user(
        await one(
            session,
            f"SELECT {_USER_COLUMNS} FROM account.users WHERE username = :username",
            {"username": username},
        )
    )


async def user_by_id(session: AsyncSession, user_id: str) -> UserCredentials | None:
    return _user(
        await one(
            session, f"SELECT {_USER_COLUMNS} FROM account.users WHERE id = :id", {"id": user_id}
        )
    )


async def set_password_hash(session: AsyncSession, user_id: str, password_hash: str) -> None:
    await execute(
        session,
        "UPDATE account.users SET password_hash = :hash, updated_at = now() WHERE id = :id",
        {"hash": password_hash, "id": user_id},
    )


async def user_accounts(session: AsyncSession, user_id: str) -> tuple[list[str], str | None]:
    """The user's trading accounts that are not closed, and their client group's name when they
    all share one (the `group` claim)."""
    rows = await many(
        session,
        "SELECT a.id::text AS id, g.name AS group_name FROM account.trading_accounts a"
        " JOIN account.client_groups g ON g.id = a.group_id"
        " WHERE a.user_id = :user_id AND a.status <> 'CLOSED' ORDER BY a.created_at",
        {"user_id": user_id},
    )
    groups = {row["group_name"] for row in rows}
    return [row["id"] for row in rows], (groups.pop() if len(groups) == 1 else None)


# ---- signing keys ---------------------------------------------------------------------------

# A SigningKeyRecord's fields.
_KEY_COLUMNS = (
    "key_version AS version, public_key_pem, created_at, activate_at, retire_at, remove_at"
)


async def signing_keys(session: AsyncSession) -> list[SigningKeyRecord]:
    rows = await many(
        session, f"SELECT {_KEY_COLUMNS} FROM account.signing_keys ORDER BY key_version"
    )
    return [SigningKeyRecord(**row) for row in rows]


async def lock_signing_keys(session: AsyncSession) -> None:
    """Serializes rotations (and the first key's registration) across service instances."""
    await execute(session, "LOCK TABLE account.signing_keys IN SHARE ROW EXCLUSIVE MODE")


async def insert_signing_key(session: AsyncSession, key: SigningKeyRecord) -> None:
    columns = asdict(key)
    columns["key_version"] = columns.pop("version")
    await insert(session, "account.signing_keys", {"kid": key.kid, **columns})


async def update_signing_key_times(session: AsyncSession, key: SigningKeyRecord) -> None:
    await execute(
        session,
        "UPDATE account.signing_keys SET activate_at = :activate, retire_at = :retire,"
        " remove_at = :remove WHERE kid = :kid",
        {
            "kid": key.kid,
            "activate": key.activate_at,
            "retire": key.retire_at,
            "remove": key.remove_at,
        },
    )


async def delete_signing_keys(session: AsyncSession) -> None:
    await execute(session, "DELETE FROM account.signing_keys")


# ---- refresh token families and tokens ------------------------------------------------------


async def insert_family(
    session: AsyncSession, family_id: uuid.UUID, user_id: str, now: datetime, expires_at: datetime
) -> None:
    await insert(
        session,
        "account.refresh_families",
        {"id": family_id, "user_id": user_id, "created_at": now, "expires_at": expires_at},
    )


async def insert_refresh_token(
    session: AsyncSession,
    token_hash: str,
    family_id: uuid.UUID,
    now: datetime,
    expires_at: datetime,
) -> None:
    await insert(
        session,
        "account.refresh_tokens",
        {
            "token_hash": token_hash,
            "family_id": family_id,
            "issued_at": now,
            "expires_at": expires_at,
        },
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
    row = await one(
        session,
        "SELECT t.family_id, f.user_id::text AS user_id, t.expires_at,"
        " t.spent_at IS NOT NULL AS spent, f.expires_at AS family_expires_at,"
        " f.revoked_at IS NOT NULL AS family_revoked"
        " FROM account.refresh_tokens t JOIN account.refresh_families f ON f.id = t.family_id"
        " WHERE t.token_hash = :hash",
        {"hash": token_hash},
    )
    return None if row is None else RefreshTokenRow(**row)


async def mark_spent(session: AsyncSession, token_hash: str, now: datetime) -> None:
    await execute(
        session,
        "UPDATE account.refresh_tokens SET spent_at = :now"
        " WHERE token_hash = :hash AND spent_at IS NULL",
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
    rows = await many(
        session,
        "UPDATE account.refresh_families SET revoked_at = :now, revoke_reason = :reason,"
        " revoked_from_ip = :ip"
        " WHERE user_id = :user_id AND revoked_at IS NULL AND expires_at > :now"
        " AND (CAST(:all AS BOOLEAN) OR id = ANY(:ids))"
        " AND (CAST(:keep AS UUID) IS NULL OR id <> CAST(:keep AS UUID))"
        " RETURNING id",
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
    return [row["id"] for row in rows]


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
    "id::text AS id, user_id::text AS user_id, name, prefix, secret_hash, scopes,"
    " account_ids::text[] AS account_ids, created_at, last_used_at, expire_at, revoked_at,"
    " revoke_reason"
)


def _api_key(row: Row) -> ApiKeyRow:
    return ApiKeyRow(
        **{**row, "scopes": tuple(row["scopes"]), "account_ids": tuple(row["account_ids"])}
    )


async def insert_api_key(session: AsyncSession, key: ApiKeyRow) -> None:
    await insert(
        session,
        "account.api_keys",
        {
            **asdict(key),
            "scopes": list(key.scopes),
            "account_ids": [uuid.UUID(a) for a in key.account_ids],
        },
    )


async def api_key(
    session: AsyncSession, key_id: str, *, for_update: bool = False
) -> ApiKeyRow | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await one(
        session,
        f"SELECT {_API_KEY_COLUMNS} FROM account.api_keys WHERE id = :id{lock}",
        {"id": key_id},
    )
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
    rows = await many(
        session,
        f"SELECT {_API_KEY_COLUMNS} FROM account.api_keys"
        " WHERE (CAST(:user_id AS UUID) IS NULL OR user_id = CAST(:user_id AS UUID))"
        " AND (CAST(:any_status AS BOOLEAN)"
        "      OR (:revoked AND revoked_at IS NOT NULL)"
        "      OR (:expired AND revoked_at IS NULL AND expire_at <= :now)"
        "      OR (:active AND revoked_at IS NULL AND (expire_at IS NULL OR expire_at > :now)))"
        " AND (CAST(:after_time AS TIMESTAMPTZ) IS NULL OR (created_at, id)"
        "      < (CAST(:after_time AS TIMESTAMPTZ), CAST(:after_id AS UUID)))"
        " ORDER BY created_at DESC, id DESC LIMIT :limit",
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
    return [_api_key(row) for row in rows]


async def revoke_api_key(session: AsyncSession, key_id: str, now: datetime, reason: str) -> None:
    await execute(
        session,
        "UPDATE account.api_keys SET revoked_at = :now, revoke_reason = :reason"
        " WHERE id = :id AND revoked_at IS NULL",
        {"id": key_id, "now": now, "reason": reason},
    )


async def touch_api_key(session: AsyncSession, key_id: str, now: datetime) -> None:
    await execute(
        session,
        "UPDATE account.api_keys SET last_used_at = :now WHERE id = :id",
        {"id": key_id, "now": now},
    )


async def accounts_of_user(
    session: AsyncSession, user_id: str, account_ids: Sequence[str]
) -> set[str]:
    """Which of `account_ids` are trading accounts of the user."""
    rows = await many(
        session,
        "SELECT id::text AS id FROM account.trading_accounts"
        " WHERE user_id = :user_id AND id = ANY(CAST(:ids AS UUID[]))",
        {"user_id": user_id, "ids": list(account_ids)},
    )
    return {row["id"] for row in rows}

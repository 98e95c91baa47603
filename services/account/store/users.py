"""SQL of users (`account.users`) for the servicers: create, list, change status."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.account.convert import Row
from services.account.store import USERS


async def insert_user(
    session: AsyncSession,
    *,
    username: str,
    email: str,
    display_name: str,
    password_hash: str,
    roles: Sequence[str],
    kyc_status: str,
    status: str,
) -> Row:
    """The new user's row; IntegrityError when the username or email is taken."""
    return await USERS.insert(
        session,
        {
            "id": uuid.uuid4(),
            "username": username,
            "email": email,
            "display_name": display_name,
            "password_hash": password_hash,
            "roles": list(roles),
            "kyc_status": kyc_status,
            "status": status,
        },
    )


async def list_users(
    session: AsyncSession,
    *,
    query: str,
    statuses: Sequence[str],
    kyc_statuses: Sequence[str],
    roles: Sequence[str],
    limit: int,
    offset: int,
) -> list[Row]:
    """Users newest first: `query` a prefix of the username or email (case-insensitive), the
    other filters any of their values; an empty filter is no filter."""
    params: dict[str, Any] = {}
    clauses: list[str] = []
    if query:
        clauses.append("(lower(username) LIKE :q OR lower(email) LIKE :q)")
        escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%")
        params["q"] = escaped.replace("_", "\\_") + "%"
    if statuses:
        clauses.append("status = ANY(:statuses)")
        params["statuses"] = list(statuses)
    if kyc_statuses:
        clauses.append("kyc_status = ANY(:kyc)")
        params["kyc"] = list(kyc_statuses)
    if roles:
        clauses.append("roles && :roles")
        params["roles"] = list(roles)
    return await USERS.page(session, clauses, params, limit=limit, offset=offset)

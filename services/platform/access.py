"""Authorization: what the current caller may do (ADR 0005). Handlers call these first.

Three kinds of caller reach a service through the edge:
- a signed-in user (roles such as "trader"), who owns the trading accounts whose user is them;
- a partner API key, limited to its scoped accounts (`Caller.account_ids`) and scopes;
- staff (roles "admin", "dealer", "backoffice"), who may use the admin RPCs their role allows.

Another user's account is reported as NOT_FOUND, never PERMISSION_DENIED: a caller must not learn
which ids exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from services.platform.errors import DomainError
from services.platform.errors import not_found
from services.platform.identity import Caller
from services.platform.identity import current_caller
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.common.v1.types_pb2 import ActorKind

__all__ = [
    "ADMIN",
    "BACKOFFICE",
    "DEALER",
    "STAFF_ROLES",
    "TRADER",
    "account_not_found",
    "actor_of",
    "require_account",
    "require_roles",
    "require_user",
]

TRADER: Final = "trader"
ADMIN: Final = "admin"
DEALER: Final = "dealer"
BACKOFFICE: Final = "backoffice"
STAFF_ROLES: Final = frozenset({ADMIN, DEALER, BACKOFFICE})


def actor_of(caller: Caller | None, system_id: str) -> Actor:
    """Who a caller is in audit records and events: an API key, a staff member (OPERATOR), a
    user, or the service itself (SYSTEM, as `system_id`) for a call without a signed-in
    caller."""
    if caller is None or not caller.authenticated:
        return Actor(kind=ActorKind.ACTOR_KIND_SYSTEM, id=system_id)
    if caller.api_key_id is not None:
        return Actor(kind=ActorKind.ACTOR_KIND_API_KEY, id=caller.api_key_id)
    if caller.roles & STAFF_ROLES:
        return Actor(kind=ActorKind.ACTOR_KIND_OPERATOR, id=caller.subject)
    return Actor(kind=ActorKind.ACTOR_KIND_USER, id=caller.subject)


def require_user(caller: Caller | None = None) -> Caller:
    """The caller, who must be a signed-in user or an API key (not an anonymous call)."""
    caller = caller or current_caller()
    if not caller.authenticated:
        raise DomainError(
            ErrorReason.ERROR_REASON_UNAUTHENTICATED, "this call needs an access token"
        )
    return caller


def require_roles(roles: Iterable[str], caller: Caller | None = None) -> Caller:
    """The caller, who must hold at least one of `roles` (admin RPCs). API keys never do."""
    caller = require_user(caller)
    wanted = frozenset(roles)
    if caller.api_key_id is not None or not (caller.roles & wanted):
        raise DomainError(
            ErrorReason.ERROR_REASON_PERMISSION_DENIED,
            f"this call needs one of the roles {', '.join(sorted(wanted))}",
        )
    return caller


def account_not_found(account_id: str) -> DomainError:
    """The one error for an account that does not exist or is not the caller's."""
    return not_found("trading account", "account_id", account_id)


def require_account(
    account_id: str, owner_user_id: str | None, caller: Caller | None = None
) -> Caller:
    """The caller, who must be allowed to act on trading account `account_id`.

    `owner_user_id` is the account's user as the calling service knows it (None when the account
    does not exist). Staff may touch any account; a user only their own; an API key only the
    accounts in its scope, and only of its own user.
    """
    caller = require_user(caller)
    if owner_user_id is None:
        raise account_not_found(account_id)
    if caller.api_key_id is None and caller.roles & STAFF_ROLES:
        return caller
    if owner_user_id != caller.subject:
        raise account_not_found(account_id)
    if caller.api_key_id is not None and not caller.owns_account(account_id):
        raise account_not_found(account_id)
    return caller

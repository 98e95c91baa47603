"""Who is calling, as the edge (Envoy) says, and whether the call came through the edge at all.

Envoy strips every `x-tm-*` header a client sends, then adds `x-tm-edge-token` (a secret shared
with the services through Vault) and the claims of the verified JWT: `x-tm-subject` (`sub`),
`x-tm-roles` (`roles`), `x-tm-accounts` (`account_ids`), `x-tm-session-id` (`sid`, password
sign-ins), `x-tm-api-key-id` (`api_key_id`) and `x-tm-scopes` (`scope`) for partner API keys
(ADR 0004, 0005), and the client's address `x-tm-client-ip`. Lists are comma-separated (roles,
accounts; envoy/edge.yaml.tmpl joins the JWT's arrays) except scopes, which keep the `scope`
claim's spaces. Services trust these headers only together with the right edge token. Handlers
read the caller with `current_caller()`.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final

from services.platform.secrets import Secret

__all__ = [
    "ACCOUNTS_HEADER",
    "API_KEY_ID_HEADER",
    "CLIENT_IP_HEADER",
    "EDGE_TOKEN_HEADER",
    "IDENTITY_HEADERS",
    "ROLES_HEADER",
    "SCOPES_HEADER",
    "SESSION_ID_HEADER",
    "SUBJECT_HEADER",
    "Caller",
    "current_caller",
    "edge_token_matches",
    "set_caller",
]

EDGE_TOKEN_HEADER: Final = "x-tm-edge-token"
SUBJECT_HEADER: Final = "x-tm-subject"
ROLES_HEADER: Final = "x-tm-roles"
ACCOUNTS_HEADER: Final = "x-tm-accounts"
API_KEY_ID_HEADER: Final = "x-tm-api-key-id"
CLIENT_IP_HEADER: Final = "x-tm-client-ip"
SCOPES_HEADER: Final = "x-tm-scopes"
SESSION_ID_HEADER: Final = "x-tm-session-id"
IDENTITY_HEADERS: Final = (
    SUBJECT_HEADER,
    ROLES_HEADER,
    ACCOUNTS_HEADER,
    API_KEY_ID_HEADER,
    CLIENT_IP_HEADER,
    SCOPES_HEADER,
    SESSION_ID_HEADER,
)

_caller: ContextVar[Caller] = ContextVar("tradingmesh_caller")


@dataclass(frozen=True)
class Caller:
    """The caller of the current request, as verified by the edge.

    `subject` is empty for calls without a user: public RPCs (login, JWKS) and calls from other
    services that act on their own behalf.
    """

    subject: str
    roles: frozenset[str]
    account_ids: frozenset[str]
    api_key_id: str | None
    request_id: str
    # The address of the client as the edge saw it; empty for calls between services.
    client_ip: str = ""
    # An API key's scopes ("read", "trade"); empty for users, who are not limited by scope.
    scopes: frozenset[str] = frozenset()
    # The refresh token family (`sid`) of a password sign-in; None for API keys and services.
    session_id: str | None = None

    @property
    def authenticated(self) -> bool:
        """Whether the edge verified a user or an API key for this call."""
        return bool(self.subject)

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def owns_account(self, account_id: str) -> bool:
        """Whether the JWT or API key names this trading account as the caller's."""
        return account_id in self.account_ids

    @classmethod
    def from_metadata(cls, metadata: Iterable[tuple[str, str | bytes]], request_id: str) -> Caller:
        """The caller named by the identity headers (already checked to come from the edge).

        Raises `ValueError` when an identity header is repeated: Envoy sets each once, so a
        second value did not come from it.
        """
        headers: dict[str, str] = {}
        for key, value in metadata:
            if key in IDENTITY_HEADERS:
                if key in headers or not isinstance(value, str):
                    raise ValueError(f"the {key} header is repeated or not text")
                headers[key] = value
        return cls(
            subject=headers.get(SUBJECT_HEADER, "").strip(),
            roles=_split(headers.get(ROLES_HEADER, "")),
            account_ids=_split(headers.get(ACCOUNTS_HEADER, "")),
            api_key_id=headers.get(API_KEY_ID_HEADER, "").strip() or None,
            request_id=request_id,
            client_ip=headers.get(CLIENT_IP_HEADER, "").strip(),
            scopes=frozenset(headers.get(SCOPES_HEADER, "").split()),
            session_id=headers.get(SESSION_ID_HEADER, "").strip() or None,
        )


def edge_token_matches(metadata: Iterable[tuple[str, str | bytes]], edge_token: Secret) -> bool:
    """Whether the call carries the edge token exactly once, with the right value.

    Compared in constant time. A repeated header is refused: Envoy sets it once, so a second
    value means that something other than Envoy added one.
    """
    given = [value for key, value in metadata if key == EDGE_TOKEN_HEADER]
    if len(given) != 1 or not isinstance(given[0], str):
        return False
    return hmac.compare_digest(given[0].encode(), edge_token.reveal().encode())


def set_caller(caller: Caller) -> None:
    """Makes `caller` the current one for the rest of this task (this gRPC call)."""
    _caller.set(caller)


def current_caller() -> Caller:
    """The caller of the request being served; a `LookupError` outside a call."""
    try:
        return _caller.get()
    except LookupError:
        raise LookupError("current_caller() is only known while serving a gRPC call") from None


def _split(text: str) -> frozenset[str]:
    return frozenset(item.strip() for item in text.split(",") if item.strip())

"""Access token claims, the JWT's unsigned parts, refresh tokens and API key secrets (pure).

Nothing here signs or stores: signing is Vault transit's (transit.py), storage is
store/auth.py's and sessions.py's. What is here is exactly what a test can check without any I/O.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Final

from services.platform.errors import DomainError
from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = [
    "ACCESS_TOKEN_LIFETIME",
    "ACTIVE_USER",
    "API_KEY_SECRET_PREFIX",
    "AUDIENCE",
    "ISSUER",
    "REFRESH_FAMILY_LIFETIME",
    "REFRESH_TOKEN_LIFETIME",
    "AccessClaims",
    "Issued",
    "RefreshToken",
    "api_key_claims",
    "b64url",
    "b64url_decode",
    "invalid_credentials",
    "new_api_key_secret",
    "new_refresh_token",
    "parse_refresh_token",
    "refresh_token_hash",
    "signing_input",
    "user_claims",
]

ISSUER: Final = "tradingmesh"
AUDIENCE: Final = "trading-api"
ALGORITHM: Final = "RS256"
ACCESS_TOKEN_LIFETIME: Final = timedelta(minutes=15)
REFRESH_TOKEN_LIFETIME: Final = timedelta(days=7)
REFRESH_FAMILY_LIFETIME: Final = timedelta(days=30)
API_KEY_SECRET_PREFIX: Final = "tmk_"
ACTIVE_USER: Final = "ACTIVE"
"""The one user status that may sign in or act through an API key."""
API_KEY_SHOWN_CHARS: Final = 12  # "tmk_" and 8 characters: tells keys apart, proves nothing
# A staff role is never carried by an API key's token: keys act for partners, not for staff.
_STAFF_ROLES: Final = frozenset({"admin", "dealer", "backoffice"})


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _seconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("token times must be timezone-aware")
    return int(moment.timestamp())


@dataclass(frozen=True)
class AccessClaims:
    """The claims of one access token (auth_service.proto lists them)."""

    subject: str
    roles: tuple[str, ...]
    account_ids: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime
    jwt_id: str
    session_id: str | None = None  # `sid`: the refresh token family of a password sign-in
    group: str | None = None  # the client group of the user's trading accounts, when one
    api_key_id: str | None = None
    scopes: tuple[str, ...] = ()

    def payload(self) -> dict[str, Any]:
        """The JWT payload. Lists are JSON arrays; Envoy forwards them as x-tm-* headers."""
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": self.subject,
            "iat": _seconds(self.issued_at),
            "exp": _seconds(self.expires_at),
            "jti": self.jwt_id,
            "roles": list(self.roles),
            "account_ids": list(self.account_ids),
        }
        if self.session_id is not None:
            claims["sid"] = self.session_id
        if self.group is not None:
            claims["group"] = self.group
        if self.api_key_id is not None:
            claims["api_key_id"] = self.api_key_id
            claims["scope"] = " ".join(self.scopes)
        return claims

    @property
    def lifetime(self) -> timedelta:
        return self.expires_at - self.issued_at


def user_claims(
    *,
    user_id: str,
    roles: Iterable[str],
    account_ids: Iterable[str],
    group: str | None,
    session_id: str,
    now: datetime,
    jwt_id: str | None = None,
) -> AccessClaims:
    """The claims of a password sign-in's access token: 15 minutes, with the session's id."""
    return AccessClaims(
        subject=user_id,
        roles=tuple(sorted(set(roles))),
        account_ids=tuple(sorted(set(account_ids))),
        issued_at=now,
        expires_at=now + ACCESS_TOKEN_LIFETIME,
        jwt_id=jwt_id or str(uuid.uuid4()),
        session_id=session_id,
        group=group,
    )


def api_key_claims(
    *,
    user_id: str,
    user_roles: Iterable[str],
    api_key_id: str,
    scopes: Iterable[str],
    account_ids: Iterable[str],
    key_expires_at: datetime | None,
    now: datetime,
    jwt_id: str | None = None,
) -> AccessClaims:
    """The claims of an API key's access token: the key's scopes and accounts, no staff role,
    and 15 minutes or until the key expires, whichever is sooner."""
    expires_at = now + ACCESS_TOKEN_LIFETIME
    if key_expires_at is not None and key_expires_at < expires_at:
        expires_at = key_expires_at
    if expires_at <= now:
        raise ValueError("the API key has expired")
    return AccessClaims(
        subject=user_id,
        roles=tuple(sorted(set(user_roles) - _STAFF_ROLES)),
        account_ids=tuple(sorted(set(account_ids))),
        issued_at=now,
        expires_at=expires_at,
        jwt_id=jwt_id or str(uuid.uuid4()),
        api_key_id=api_key_id,
        scopes=tuple(sorted(set(scopes))),
    )


def signing_input(kid: str, payload: Mapping[str, Any]) -> bytes:
    """`base64url(header).base64url(payload)`: the bytes an RS256 signature covers."""
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": kid}
    parts = (json.dumps(part, separators=(",", ":")).encode() for part in (header, payload))
    return ".".join(b64url(part) for part in parts).encode("ascii")


# ---- refresh tokens -------------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshToken:
    """`<family id>.<secret>`: opaque to clients; the family id lets a spent token be traced to
    its family (to revoke it) even after Redis has forgotten the token."""

    family_id: uuid.UUID
    text: str

    @property
    def hash(self) -> str:
        return refresh_token_hash(self.text)


_REFRESH_SECRET_BYTES: Final = 32


def new_refresh_token(family_id: uuid.UUID) -> RefreshToken:
    return RefreshToken(family_id, f"{family_id}.{secrets.token_urlsafe(_REFRESH_SECRET_BYTES)}")


def refresh_token_hash(text: str) -> str:
    """What is stored of a refresh token: the hex SHA-256 of its text. The secret has 256 random
    bits, so a fast hash is enough (no password-style stretching needed)."""
    return hashlib.sha256(text.encode()).hexdigest()


def parse_refresh_token(text: str) -> RefreshToken | None:
    """The token if `text` has the shape of one of ours, else None (it is then unknown)."""
    family, dot, secret = text.partition(".")
    if not dot or len(secret) < 40 or not all(c.isalnum() or c in "-_" for c in secret):
        return None
    try:
        family_id = uuid.UUID(family)
    except ValueError:
        return None
    if str(family_id) != family:
        return None
    return RefreshToken(family_id, text)


# ---- API key secrets ------------------------------------------------------------------------


def new_api_key_secret() -> tuple[str, str]:
    """A new secret and the prefix shown to people: ("tmk_<48 characters>", "tmk_XXXXXXXX")."""
    secret = API_KEY_SECRET_PREFIX + secrets.token_urlsafe(36)
    return secret, secret[:API_KEY_SHOWN_CHARS]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Issued:
    """An access token, and for password sign-ins the refresh token that goes with it."""

    access_token: str
    claims: AccessClaims
    refresh_token: str = ""
    refresh_expires_at: datetime | None = None


def invalid_credentials() -> DomainError:
    return DomainError(
        ErrorReason.ERROR_REASON_INVALID_CREDENTIALS, "the credentials are not valid"
    )

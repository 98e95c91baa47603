"""The lifecycle of token signing keys (ADR 0005), as pure functions of time.

A key's status is derived from three times, so exactly one key is ACTIVE at any instant without
a job flipping states:

    PUBLISHED  now < activate_at             in the JWKS, not signing yet
    ACTIVE     activate_at <= now < retire_at signs new tokens
    RETIRED    retire_at <= now < remove_at   in the JWKS until its last token expires
    REMOVED    remove_at <= now               gone from the JWKS; terminal

A rotation only sets times: the new key activates after every verifier's JWKS cache has expired
(so none meets a kid it does not know), and the old key retires at that moment and leaves the
JWKS one access token lifetime later.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from datetime import datetime
from datetime import timedelta
from typing import Final

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from services.account.auth.tokens import ACCESS_TOKEN_LIFETIME
from services.account.auth.tokens import ALGORITHM
from services.account.auth.tokens import b64url

__all__ = [
    "JWKS_CACHE_LIFETIME",
    "TRANSITIONS",
    "KeyStatus",
    "Rotation",
    "RotationRefusedError",
    "SigningKeyRecord",
    "active_key",
    "jwk_of",
    "kid_for",
    "plan_rotation",
    "published_keys",
]

KEY_NAME: Final = "access-token"
JWKS_CACHE_LIFETIME: Final = timedelta(minutes=5)
"""How long a verifier may cache the JWKS (Envoy's remote_jwks cache_duration): a published key
waits this long before it signs."""


class KeyStatus(enum.Enum):
    PUBLISHED = "PUBLISHED"
    ACTIVE = "ACTIVE"
    RETIRED = "RETIRED"
    REMOVED = "REMOVED"


TRANSITIONS: Final[frozenset[tuple[KeyStatus, KeyStatus]]] = frozenset(
    {
        (KeyStatus.PUBLISHED, KeyStatus.ACTIVE),  # its activation time came
        # An emergency rotation supersedes a key that was waiting to sign: it never signed, so
        # it can leave the JWKS at once.
        (KeyStatus.PUBLISHED, KeyStatus.REMOVED),
        (KeyStatus.ACTIVE, KeyStatus.RETIRED),  # a scheduled rotation's new key took over
        # An emergency rotation (revoke_previous_key): the key may be compromised, so the tokens
        # it signed must stop verifying now.
        (KeyStatus.ACTIVE, KeyStatus.REMOVED),
        (KeyStatus.RETIRED, KeyStatus.REMOVED),  # its last token expired
    }
)
"""Every change of status a key may go through; anything else is a bug."""


def kid_for(version: int) -> str:
    """The key id of a transit key version: `access-token-v<version>`."""
    if version < 1:
        raise ValueError("transit key versions start at 1")
    return f"{KEY_NAME}-v{version}"


@dataclass(frozen=True)
class SigningKeyRecord:
    """One transit key version and its lifecycle times (a row of account.signing_keys)."""

    version: int
    public_key_pem: str
    created_at: datetime
    activate_at: datetime | None
    retire_at: datetime | None = None
    remove_at: datetime | None = None

    @property
    def kid(self) -> str:
        return kid_for(self.version)

    def status(self, now: datetime) -> KeyStatus:
        if self.remove_at is not None and self.remove_at <= now:
            return KeyStatus.REMOVED
        if self.retire_at is not None and self.retire_at <= now:
            return KeyStatus.RETIRED
        if self.activate_at is not None and self.activate_at <= now:
            return KeyStatus.ACTIVE
        return KeyStatus.PUBLISHED


def active_key(keys: Iterable[SigningKeyRecord], now: datetime) -> SigningKeyRecord | None:
    """The key that signs at `now`; the newest one should the data ever hold two."""
    active = [k for k in keys if k.status(now) is KeyStatus.ACTIVE]
    return max(active, key=lambda k: k.version, default=None)


def published_keys(keys: Iterable[SigningKeyRecord], now: datetime) -> list[SigningKeyRecord]:
    """The keys in the JWKS at `now` (all but REMOVED), newest first."""
    shown = [k for k in keys if k.status(now) is not KeyStatus.REMOVED]
    return sorted(shown, key=lambda k: k.version, reverse=True)


class RotationRefusedError(Exception):
    """A rotation that the current keys do not allow (FAILED_PRECONDITION)."""


@dataclass(frozen=True)
class Rotation:
    """What a rotation writes: the new key, and the keys whose times change."""

    new_key: SigningKeyRecord
    previous_key: SigningKeyRecord | None
    changed: tuple[SigningKeyRecord, ...]
    """Existing keys with their new times (previous_key among them)."""


def plan_rotation(
    keys: Sequence[SigningKeyRecord],
    *,
    new_version: int,
    new_public_key_pem: str,
    now: datetime,
    revoke_previous_key: bool,
    activation_delay: timedelta = JWKS_CACHE_LIFETIME,
    token_lifetime: timedelta = ACCESS_TOKEN_LIFETIME,
) -> Rotation:
    """The times that rotate to the transit key version `new_version`.

    Scheduled: the new key is PUBLISHED now and activates after `activation_delay`; the active
    key retires then and is removed `token_lifetime` later. Refused while an earlier rotation's
    key is still PUBLISHED. With `revoke_previous_key`: the new key signs now, the active key is
    REMOVED now, and a key still waiting to sign is REMOVED too (it never signed).
    Without any active key (the very first), the new key signs at once.
    """
    if any(k.version >= new_version for k in keys):
        raise ValueError(f"transit key version {new_version} is not newer than the known keys")
    current = active_key(keys, now)
    waiting = [k for k in keys if k.status(now) is KeyStatus.PUBLISHED]
    if waiting and not revoke_previous_key:
        raise RotationRefusedError(
            f"key {waiting[0].kid} from an earlier rotation is still waiting to sign"
        )
    changed: list[SigningKeyRecord] = []
    if revoke_previous_key or current is None:
        activate_at = now
        if current is not None:
            changed.append(replace(current, retire_at=now, remove_at=now))
        changed.extend(replace(k, activate_at=None, retire_at=None, remove_at=now) for k in waiting)
    else:
        activate_at = now + activation_delay
        changed.append(
            replace(current, retire_at=activate_at, remove_at=activate_at + token_lifetime)
        )
    new_key = SigningKeyRecord(
        version=new_version,
        public_key_pem=new_public_key_pem,
        created_at=now,
        activate_at=activate_at,
    )
    previous = next((k for k in changed if current and k.version == current.version), None)
    return Rotation(new_key=new_key, previous_key=previous, changed=tuple(changed))


def jwk_of(kid: str, public_key_pem: str) -> dict[str, str]:
    """The JSON Web Key (RFC 7517/7518) of an RSA public key in PEM form."""
    key = load_pem_public_key(public_key_pem.encode())
    if not isinstance(key, RSAPublicKey):
        raise ValueError(f"signing key {kid} is not an RSA key")
    numbers = key.public_numbers()
    return {
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "alg": ALGORITHM,
        "n": b64url(_unsigned(numbers.n)),
        "e": b64url(_unsigned(numbers.e)),
    }


def _unsigned(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")

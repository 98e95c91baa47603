"""Passwords: argon2id hashes (argon2-cffi's defaults, as the seed uses) and the new-password rules.

A wrong username and a wrong password take the same time: an unknown user is checked against a
fixed dummy hash, so timing does not tell which usernames exist.
"""

from __future__ import annotations

from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError
from argon2.exceptions import VerifyMismatchError

__all__ = ["breached", "hash_password", "needs_rehash", "verify_password"]

_HASHER: Final = PasswordHasher()
_DUMMY_HASH: Final = _HASHER.hash("not the password of anyone")

# The most common passwords of 12 characters or more in public breach corpora. A real deployment
# checks a full list (e.g. a k-anonymity range query); this keeps the rule testable offline.
_BREACHED: Final = frozenset(
    {
        "123456789012",
        "1234567890123",
        "password1234",
        "password12345",
        "passwordpassword",
        "qwertyuiopas",
        "qwerty123456",
        "iloveyou1234",
        "111111111111",
        "000000000000",
        "abcdefghijkl",
        "letmein12345",
        "administrator",
        "welcome12345",
        "trustno1trustno1",
    }
)


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; with no hash (unknown user) it still costs one argon2 check."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _HASHER.check_needs_rehash(password_hash)


def breached(password: str) -> bool:
    return password.lower() in _BREACHED

"""Password hashing and the new-password rules (argon2, no I/O)."""

from __future__ import annotations

from services.account.auth.passwords import breached
from services.account.auth.passwords import hash_password
from services.account.auth.passwords import verify_password


def test_a_password_verifies_against_its_hash_only() -> None:
    stored = hash_password("correct horse battery staple")

    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse battery staple")
    assert not verify_password(stored, "correct horse battery stapl")


def test_an_unknown_user_never_verifies() -> None:
    assert not verify_password(None, "not the password of anyone")
    assert not verify_password("not-a-hash", "anything")


def test_common_passwords_are_breached_whatever_their_case() -> None:
    assert breached("Password1234")
    assert not breached("a long and unusual passphrase")

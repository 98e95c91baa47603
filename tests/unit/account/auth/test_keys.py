"""The signing key lifecycle: statuses derived from times, rotations, and the JWK form."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.hazmat.primitives.serialization import PublicFormat

from services.account.auth.keys import TRANSITIONS
from services.account.auth.keys import KeyStatus
from services.account.auth.keys import RotationRefusedError
from services.account.auth.keys import SigningKeyRecord
from services.account.auth.keys import active_key
from services.account.auth.keys import jwk_of
from services.account.auth.keys import kid_for
from services.account.auth.keys import plan_rotation
from services.account.auth.keys import published_keys
from services.account.auth.tokens import b64url_decode

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
PEM = "-----BEGIN PUBLIC KEY-----\n(test)\n-----END PUBLIC KEY-----\n"


def key(
    version: int, activate_at: datetime | None = T0, **times: datetime | None
) -> SigningKeyRecord:
    return SigningKeyRecord(version, PEM, T0 - MINUTE, activate_at, **times)


def test_status_follows_the_times() -> None:
    k = key(1, T0, retire_at=T0 + 10 * MINUTE, remove_at=T0 + 25 * MINUTE)

    assert k.status(T0 - MINUTE) is KeyStatus.PUBLISHED
    assert k.status(T0) is KeyStatus.ACTIVE
    assert k.status(T0 + 10 * MINUTE) is KeyStatus.RETIRED
    assert k.status(T0 + 25 * MINUTE) is KeyStatus.REMOVED
    assert key(2, None).status(T0 + 1000 * MINUTE) is KeyStatus.PUBLISHED


def test_kid_is_the_transit_version() -> None:
    assert kid_for(7) == "access-token-v7"
    assert key(7).kid == "access-token-v7"
    with pytest.raises(ValueError, match="start at 1"):
        kid_for(0)


def test_a_scheduled_rotation_publishes_then_activates_and_keeps_the_old_key_for_its_tokens() -> (
    None
):
    old = key(1)

    rotation = plan_rotation(
        [old], new_version=2, new_public_key_pem=PEM, now=T0, revoke_previous_key=False
    )
    keys = [rotation.new_key, *rotation.changed]

    assert rotation.previous_key is not None
    assert rotation.previous_key.version == 1
    assert rotation.new_key.status(T0) is KeyStatus.PUBLISHED
    assert active_key(keys, T0) == rotation.previous_key
    assert [k.kid for k in published_keys(keys, T0)] == ["access-token-v2", "access-token-v1"]
    switch = T0 + 5 * MINUTE
    assert active_key(keys, switch - timedelta(microseconds=1)) == rotation.previous_key
    assert active_key(keys, switch) == rotation.new_key
    assert rotation.previous_key.status(switch) is KeyStatus.RETIRED
    assert rotation.previous_key.remove_at == switch + 15 * MINUTE
    assert [k.kid for k in published_keys(keys, switch + 15 * MINUTE)] == ["access-token-v2"]


def test_exactly_one_key_is_active_at_every_moment_of_a_rotation() -> None:
    rotation = plan_rotation(
        [key(1)], new_version=2, new_public_key_pem=PEM, now=T0, revoke_previous_key=False
    )
    keys = [rotation.new_key, *rotation.changed]

    for seconds in range(0, 40 * 60, 7):
        moment = T0 + timedelta(seconds=seconds)
        assert sum(k.status(moment) is KeyStatus.ACTIVE for k in keys) == 1


def test_a_second_rotation_is_refused_while_a_key_waits_to_sign() -> None:
    first = plan_rotation(
        [key(1)], new_version=2, new_public_key_pem=PEM, now=T0, revoke_previous_key=False
    )

    with pytest.raises(RotationRefusedError, match="access-token-v2"):
        plan_rotation(
            [first.new_key, *first.changed],
            new_version=3,
            new_public_key_pem=PEM,
            now=T0 + MINUTE,
            revoke_previous_key=False,
        )


def test_an_emergency_rotation_signs_at_once_and_removes_the_previous_and_waiting_keys() -> None:
    first = plan_rotation(
        [key(1)], new_version=2, new_public_key_pem=PEM, now=T0, revoke_previous_key=False
    )
    now = T0 + MINUTE

    rotation = plan_rotation(
        [first.new_key, *first.changed],
        new_version=3,
        new_public_key_pem=PEM,
        now=now,
        revoke_previous_key=True,
    )
    keys = [rotation.new_key, *rotation.changed]

    assert active_key(keys, now) == rotation.new_key
    assert rotation.previous_key is not None
    assert rotation.previous_key.version == 1
    assert {k.version: k.status(now) for k in rotation.changed} == {
        1: KeyStatus.REMOVED,
        2: KeyStatus.REMOVED,
    }
    assert [k.kid for k in published_keys(keys, now)] == ["access-token-v3"]


def test_the_first_key_signs_at_once() -> None:
    rotation = plan_rotation(
        [], new_version=1, new_public_key_pem=PEM, now=T0, revoke_previous_key=False
    )

    assert rotation.previous_key is None
    assert rotation.new_key.status(T0) is KeyStatus.ACTIVE


def test_a_version_that_is_not_newer_is_a_bug() -> None:
    with pytest.raises(ValueError, match="not newer"):
        plan_rotation(
            [key(2)], new_version=2, new_public_key_pem=PEM, now=T0, revoke_previous_key=True
        )


@pytest.mark.parametrize("revoke", [False, True])
@pytest.mark.parametrize("waiting", [False, True])
def test_every_status_change_of_a_rotation_is_an_allowed_transition(
    revoke: bool, waiting: bool
) -> None:
    keys = [key(1, T0 - 60 * MINUTE, retire_at=T0 - 30 * MINUTE, remove_at=T0 + 5 * MINUTE), key(2)]
    if waiting:
        keys.append(key(3, T0 + 4 * MINUTE))
    if waiting and not revoke:
        with pytest.raises(RotationRefusedError):
            plan_rotation(
                keys, new_version=4, new_public_key_pem=PEM, now=T0, revoke_previous_key=False
            )
        return

    rotation = plan_rotation(
        keys, new_version=4, new_public_key_pem=PEM, now=T0, revoke_previous_key=revoke
    )
    after = {k.version: k for k in rotation.changed}
    moments = [T0 + timedelta(seconds=s) for s in range(0, 60 * 60, 30)]

    for before in keys:
        planned = after.get(before.version, before)
        statuses = [before.status(T0 - timedelta(microseconds=1))] + [
            planned.status(m) for m in moments
        ]
        for earlier, later in itertools.pairwise(statuses):
            assert earlier == later or (earlier, later) in TRANSITIONS, (
                before.version,
                earlier,
                later,
            )


def test_removed_is_terminal() -> None:
    assert not any(start is KeyStatus.REMOVED for start, _ in TRANSITIONS)
    assert replace(key(1), remove_at=T0).status(T0 + 1000 * MINUTE) is KeyStatus.REMOVED


def test_jwk_of_an_rsa_key_has_its_modulus_and_exponent() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = (
        private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    )

    jwk = jwk_of("access-token-v1", pem)

    numbers = private.public_key().public_numbers()
    assert (jwk["kty"], jwk["kid"], jwk["use"], jwk["alg"], jwk["e"]) == (
        "RSA",
        "access-token-v1",
        "sig",
        "RS256",
        "AQAB",
    )
    assert int.from_bytes(b64url_decode(jwk["n"]), "big") == numbers.n


def test_jwk_of_a_non_rsa_key_is_refused() -> None:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )

    with pytest.raises(ValueError, match="not an RSA key"):
        jwk_of("k", pem)

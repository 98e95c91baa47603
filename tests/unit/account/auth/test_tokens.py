"""Access token claims, the signed bytes, refresh tokens and API key secrets (no I/O)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from services.account.auth.tokens import AccessClaims
from services.account.auth.tokens import api_key_claims
from services.account.auth.tokens import b64url
from services.account.auth.tokens import b64url_decode
from services.account.auth.tokens import new_api_key_secret
from services.account.auth.tokens import new_refresh_token
from services.account.auth.tokens import parse_refresh_token
from services.account.auth.tokens import refresh_token_hash
from services.account.auth.tokens import signing_input
from services.account.auth.tokens import user_claims

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_user_claims_carry_the_contract_claims_for_fifteen_minutes() -> None:
    claims = user_claims(
        user_id="u-1",
        roles=["trader", "trader"],
        account_ids=["b", "a"],
        group="standard",
        session_id="s-1",
        now=NOW,
        jwt_id="j-1",
    )

    assert claims.payload() == {
        "iss": "tradingmesh",
        "aud": "trading-api",
        "sub": "u-1",
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(minutes=15)).timestamp()),
        "jti": "j-1",
        "roles": ["trader"],
        "account_ids": ["a", "b"],
        "sid": "s-1",
        "group": "standard",
    }


def test_api_key_claims_drop_staff_roles_and_carry_scope_and_key() -> None:
    claims = api_key_claims(
        user_id="u-1",
        user_roles=["admin", "trader"],
        api_key_id="k-1",
        scopes=["trade", "read"],
        account_ids=["a"],
        key_expires_at=None,
        now=NOW,
    )

    payload = claims.payload()
    assert payload["roles"] == ["trader"]
    assert (payload["api_key_id"], payload["scope"], payload["account_ids"]) == (
        "k-1",
        "read trade",
        ["a"],
    )
    assert "sid" not in payload
    assert claims.lifetime == timedelta(minutes=15)


def test_an_api_key_token_never_outlives_its_key() -> None:
    soon = NOW + timedelta(minutes=3)

    claims = api_key_claims(
        user_id="u",
        user_roles=[],
        api_key_id="k",
        scopes=["read"],
        account_ids=["a"],
        key_expires_at=soon,
        now=NOW,
    )

    assert claims.expires_at == soon
    with pytest.raises(ValueError, match="expired"):
        api_key_claims(
            user_id="u",
            user_roles=[],
            api_key_id="k",
            scopes=["read"],
            account_ids=["a"],
            key_expires_at=NOW,
            now=NOW,
        )


def test_naive_times_are_refused() -> None:
    claims = AccessClaims("u", (), (), datetime(2026, 1, 1), datetime(2026, 1, 2), "j")

    with pytest.raises(ValueError, match="timezone"):
        claims.payload()


def test_signing_input_is_the_base64url_header_and_payload() -> None:
    message = signing_input("access-token-v3", {"sub": "u"}).decode()

    header, payload = message.split(".")
    assert json.loads(b64url_decode(header)) == {
        "alg": "RS256",
        "typ": "JWT",
        "kid": "access-token-v3",
    }
    assert json.loads(b64url_decode(payload)) == {"sub": "u"}
    assert "=" not in message


def test_b64url_has_no_padding_and_round_trips() -> None:
    for data in (b"", b"a", b"ab", b"abc", bytes(range(256))):
        encoded = b64url(data)
        assert "=" not in encoded
        assert b64url_decode(encoded) == data
        assert encoded == base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_refresh_tokens_name_their_family_and_are_stored_as_sha256() -> None:
    family = uuid.uuid4()
    token = new_refresh_token(family)

    parsed = parse_refresh_token(token.text)

    assert parsed == token
    assert token.text.startswith(f"{family}.")
    assert token.hash == refresh_token_hash(token.text)
    assert len(token.hash) == 64
    assert token.text not in token.hash
    assert new_refresh_token(family).text != token.text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no-dot-at-all",
        f"{uuid.uuid4()}.",
        f"{uuid.uuid4()}.short",
        f"not-a-uuid.{'a' * 43}",
        f"{str(uuid.uuid4()).upper()}.{'a' * 43}",
        f"{uuid.uuid4()}.{'a' * 42}!",
    ],
)
def test_malformed_refresh_tokens_are_unknown(text: str) -> None:
    assert parse_refresh_token(text) is None


def test_api_key_secrets_are_long_and_show_only_a_prefix() -> None:
    secret, prefix = new_api_key_secret()

    assert secret.startswith("tmk_")
    assert 48 <= len(secret) <= 56
    assert secret.startswith(prefix)
    assert len(prefix) == 12
    assert new_api_key_secret()[0] != secret

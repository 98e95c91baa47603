"""Webhook authentication and bodies (WebhookService contract), without I/O."""

from __future__ import annotations

import json

import pytest

from services.account.webhook_auth import Provider
from services.account.webhook_auth import check_source
from services.account.webhook_auth import parse_providers
from services.account.webhook_auth import sign
from services.account.webhook_auth import verify_signature
from services.account.webhook_bodies import parse_kyc
from services.account.webhook_bodies import parse_payment
from services.platform.errors import DomainError
from tradingmesh.common.v1.errors_pb2 import ErrorReason

_R = ErrorReason
NOW = 1_790_000_000
BODY = b'{"event_id":"evt_1","amount":"10.00"}'


def _provider(*secrets: str, allow: list[str] | None = None) -> Provider:
    config = {"kind": "payment", "secrets": list(secrets), "allow": allow or ["127.0.0.1/32"]}
    return parse_providers({"acmepay": json.dumps(config)})["acmepay"]


def _reason(call: object) -> int:
    assert callable(call)
    with pytest.raises(DomainError) as refused:
        call()
    return refused.value.reason


def test_a_correct_signature_is_accepted() -> None:
    provider = _provider("s3cret")
    header = f"t={NOW},v1={sign('s3cret', NOW, BODY)}"

    assert verify_signature(provider, [header], BODY, NOW + 10) == NOW


def test_the_signature_covers_the_timestamp_and_the_exact_body() -> None:
    provider = _provider("s3cret")
    header = f"t={NOW},v1={sign('s3cret', NOW, BODY)}"
    moved = f"t={NOW + 1},v1={sign('s3cret', NOW, BODY)}"

    invalid = _R.ERROR_REASON_WEBHOOK_SIGNATURE_INVALID
    assert _reason(lambda: verify_signature(provider, [header], BODY + b" ", NOW)) == invalid
    assert _reason(lambda: verify_signature(provider, [moved], BODY, NOW)) == invalid


def test_during_a_rotation_any_v1_may_match_any_current_secret() -> None:
    provider = _provider("new", "old")
    header = f"t={NOW},v1={'0' * 64},v1={sign('old', NOW, BODY)}"

    assert verify_signature(provider, [header], BODY, NOW) == NOW


@pytest.mark.parametrize(
    "headers",
    [
        [],
        ["garbage"],
        [f"t={NOW}"],
        [f"v1={'a' * 64}"],
        [f"t=abc,v1={'a' * 64}"],
        [f"t={NOW},v1=XYZ"],
        [f"t={NOW},v1={'a' * 64}", f"t={NOW},v1={'a' * 64}"],
    ],
)
def test_missing_or_malformed_signatures_are_invalid(headers: list[str]) -> None:
    provider = _provider("s3cret")

    reason = _reason(lambda: verify_signature(provider, headers, BODY, NOW))

    assert reason == _R.ERROR_REASON_WEBHOOK_SIGNATURE_INVALID


@pytest.mark.parametrize("skew", [301, -301, 10_000])
def test_a_signature_outside_300_seconds_is_stale(skew: int) -> None:
    provider = _provider("s3cret")
    header = f"t={NOW},v1={sign('s3cret', NOW, BODY)}"

    reason = _reason(lambda: verify_signature(provider, [header], BODY, NOW + skew))

    assert reason == _R.ERROR_REASON_WEBHOOK_STALE


def test_a_wrong_signature_is_invalid_even_when_also_stale() -> None:
    provider = _provider("s3cret")
    header = f"t={NOW},v1={sign('other', NOW, BODY)}"

    reason = _reason(lambda: verify_signature(provider, [header], BODY, NOW + 10_000))

    assert reason == _R.ERROR_REASON_WEBHOOK_SIGNATURE_INVALID


@pytest.mark.parametrize(
    ("address", "allowed"),
    [("127.0.0.1", True), ("10.1.2.3", True), ("10.2.0.1", False), ("", False), ("x", False)],
)
def test_the_source_must_be_on_the_allow_list(address: str, allowed: bool) -> None:
    provider = _provider("s", allow=["127.0.0.1/32", "10.1.0.0/16"])

    if allowed:
        check_source(provider, address)
    else:
        reason = _reason(lambda: check_source(provider, address))
        assert reason == _R.ERROR_REASON_WEBHOOK_SOURCE_NOT_ALLOWED


def test_a_malformed_provider_configuration_fails_fast() -> None:
    with pytest.raises(ValueError, match="acmepay"):
        parse_providers({"acmepay": json.dumps({"kind": "payment", "secrets": []})})


def _payment(**overrides: object) -> bytes:
    body: dict[str, object] = {
        "event_id": "evt_1",
        "type": "deposit",
        "account_number": "1000123",
        "amount": "250.00",
        "currency": "USD",
        "status": "completed",
        "occurred_at": "2026-11-21T10:15:30Z",
    }
    body.update(overrides)
    return json.dumps(body).encode()


def test_a_documented_payment_body_parses() -> None:
    event = parse_payment(_payment())

    assert (event.event_id, event.amount, event.status) == ("evt_1", "250.00", "completed")
    assert event.occurred_at.utcoffset() is not None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1]",
        _payment(amount="1e3"),
        _payment(amount="-5"),
        _payment(amount=5),
        _payment(amount="0"),
        _payment(type="refund"),
        _payment(status="done"),
        _payment(currency="usd"),
        _payment(event_id=""),
        _payment(event_id="x" * 129),
        _payment(occurred_at="yesterday"),
        _payment(type="withdrawal"),  # a withdrawal needs its reference
        b"{" + b" " * (64 * 1024) + b"}",
        # Found by tests/integration/test_hostile_inputs.py: nesting past Python's stack made
        # the parser raise RecursionError (INTERNAL).
        b"[" * 30_000,
        b'{"a":' * 12_000,
        # ... and text PostgreSQL cannot store made the insert fail (INTERNAL).
        _payment(event_id="a\u0000b"),
        _payment(reason="\u0000"),
        _payment(account_number="\ud800"),
    ],
)
def test_malformed_payment_bodies_are_validation_failed(body: bytes) -> None:
    assert _reason(lambda: parse_payment(body)) == _R.ERROR_REASON_VALIDATION_FAILED


def test_kyc_bodies_parse_and_refuse_unknown_statuses() -> None:
    good = {
        "event_id": "kyc_1",
        "user_id": "0b6f",
        "status": "approved",
        "occurred_at": "2026-11-21T10:15:30+00:00",
    }

    assert parse_kyc(json.dumps(good).encode()).status == "approved"
    bad = json.dumps({**good, "status": "maybe"}).encode()
    assert _reason(lambda: parse_kyc(bad)) == _R.ERROR_REASON_VALIDATION_FAILED

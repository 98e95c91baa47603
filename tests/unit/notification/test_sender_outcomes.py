"""What the email sender records after an attempt (services/notification/sender.py)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

from services.notification.domain import RetryPolicy
from services.notification.sender import EmailSender
from services.notification.sender import Relay
from services.platform.secrets import Secret

POLICY = RetryPolicy(base=timedelta(seconds=1), cap=timedelta(seconds=60), max_attempts=3)


def _sender() -> EmailSender:
    relay = Relay("127.0.0.1", 25, "u", Secret("p"), "x@y.test")
    return EmailSender(db=None, relay=relay, policy=POLICY)  # type: ignore[arg-type]


def test_a_temporary_refusal_waits_its_back_off_then_the_last_attempt_is_dead() -> None:
    sender = _sender()
    before = datetime.now(UTC)

    second = sender._failed("n", 2, "451 later", "a@b.test")
    last = sender._failed("n", 3, "451 later", "a@b.test")

    assert second.status == "PENDING"
    assert second.next_attempt_at is not None
    assert second.next_attempt_at - before >= timedelta(seconds=2)
    assert second.last_error == "451 later"
    assert (last.status, last.next_attempt_at) == ("DEAD", None)


def test_a_permanent_refusal_is_dead_at_once() -> None:
    outcome = _sender()._failed("n", 1, "550 no such user", "a@b.test", permanent=True)

    assert outcome.status == "DEAD"


def test_an_unknown_recipient_waits_beyond_the_attempts_until_a_day_has_passed() -> None:
    sender = _sender()
    now = datetime.now(UTC)

    young = sender._unaddressed("n", 10, now - timedelta(hours=23))
    old = sender._unaddressed("n", 1, now - timedelta(days=1, seconds=1))

    assert young.status == "PENDING"
    assert old.status == "DEAD"
    assert old.last_error == "recipient never known"

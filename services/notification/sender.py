"""The email sender: delivers due deliveries over SMTP, with retries and back-off (ADR 0011).

A few workers (TM_NOTIFICATION_EMAIL_WORKERS, default 2) each claim a batch of due deliveries
(one statement; `store.claim_due`; SKIP LOCKED keeps their batches apart, also across
replicas), write each email
(`email.render`), send the batch over ONE SMTP connection in a thread (the standard library's
smtplib: STARTTLS when the relay offers it, AUTH with the login from Vault), and record every
outcome with one statement. It wakes when the consumer committed new
notifications, and at least every `poll_seconds` for retries and for deliveries another replica
left behind (a claim whose lease lapsed).

Outcomes: SENT; SKIPPED when the user switched email off for the kind; PENDING again with
`RetryPolicy.delay` when the relay refused for now (4xx) or could not be reached; DEAD after the
last attempt, and at once for a permanent refusal (5xx). While the copy of the user (their
address) has not arrived, the delivery waits with the same back-off, and is DEAD only once the
notification is a day old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from email.message import Message
from email.utils import parseaddr
from typing import Final

from services.notification import store
from services.notification.domain import RetryPolicy
from services.notification.email import Mail
from services.notification.email import render
from services.platform.db import Database
from services.platform.secrets import Secret
from services.platform.tasks import cancel_and_wait

log = logging.getLogger(__name__)

_BATCH: Final = 50
UNADDRESSED_FOR: Final = timedelta(days=1)
SMTP_PATH: Final = "tradingmesh/smtp"


@dataclass(frozen=True)
class Relay:
    """The SMTP relay, from Vault (`secret/tradingmesh/smtp`)."""

    host: str
    port: int
    username: str
    password: Secret
    sender: str
    timeout: float = 10.0


@dataclass(frozen=True)
class Attempt:
    """The result of sending one email: None error means the relay accepted it."""

    notification_id: str
    recipient: str
    error: str | None = None
    permanent: bool = False


def send_batch(relay: Relay, emails: Sequence[tuple[str, str, Message]]) -> list[Attempt]:
    """Sends (notification id, recipient, email) over one SMTP connection (blocking: run it in a
    thread). A failure to connect or sign in fails every email of the batch (temporarily)."""
    results: list[Attempt] = []
    try:
        with smtplib.SMTP(relay.host, relay.port, timeout=relay.timeout) as smtp:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls()
                smtp.ehlo()
            if relay.username:
                smtp.login(relay.username, relay.password.reveal())
            envelope_from = parseaddr(relay.sender)[1]
            for notification_id, recipient, message in emails:
                try:
                    smtp.send_message(message, from_addr=envelope_from, to_addrs=[recipient])
                    results.append(Attempt(notification_id, recipient))
                except smtplib.SMTPRecipientsRefused as error:
                    code, reply = next(iter(error.recipients.values()))
                    results.append(_refused(notification_id, recipient, code, reply))
                except smtplib.SMTPResponseException as error:
                    results.append(
                        _refused(notification_id, recipient, error.smtp_code, error.smtp_error)
                    )
                    with contextlib.suppress(smtplib.SMTPException):
                        smtp.rset()
    except (OSError, smtplib.SMTPException) as error:
        done = {r.notification_id for r in results}
        results += [
            Attempt(nid, rcpt, f"relay unavailable: {error}")
            for nid, rcpt, _ in emails
            if nid not in done
        ]
    return results


def _refused(notification_id: str, recipient: str, code: int, reply: bytes | str) -> Attempt:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    return Attempt(notification_id, recipient, f"{code} {text}", permanent=500 <= code < 600)


class EmailSender:
    """The sender task; `start` after the connections open, `wake` after a commit, `stop`."""

    def __init__(
        self,
        db: Database,
        relay: Relay,
        policy: RetryPolicy,
        poll_seconds: float = 1.0,
        workers: int = 2,
    ) -> None:
        self._db = db
        self._relay = relay
        self._policy = policy
        self._poll = poll_seconds
        self._workers = workers
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"notification-email-{n}")
            for n in range(self._workers)
        ]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks = []

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.deliver_once()
            except Exception:
                log.exception("delivering email failed; trying again")
                sent = 0
            if sent >= _BATCH:
                continue  # more may be due at once
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            self._wake.clear()

    async def deliver_once(self) -> int:
        """Claims one batch of due deliveries and delivers it; the number claimed."""
        async with self._db.transaction() as session:
            due = await store.claim_due(session, _BATCH)
        if not due:
            return 0
        outcomes: list[store.Outcome] = []
        emails: list[tuple[str, str, Message]] = []
        attempts_of = {d.notification.id: d.attempts for d in due}
        for item in due:
            n = item.notification
            if item.email is None:  # whose it is, and so their setting, is not known yet
                outcomes.append(self._unaddressed(n.id, item.attempts, n.created_at))
            elif not item.email_enabled:
                outcomes.append(store.Outcome(n.id, "SKIPPED", None, "email off", ""))
            else:
                mail = Mail(
                    notification_id=n.id,
                    kind=n.kind,
                    recipient=item.email,
                    display_name=item.display_name,
                    severity=n.severity,
                    title=n.title,
                    body=n.body,
                    details=n.details,
                    created_at=n.created_at,
                )
                emails.append((n.id, item.email, render(mail, self._relay.sender)))
        if emails:
            for attempt in await asyncio.to_thread(send_batch, self._relay, emails):
                if attempt.error is None:
                    outcomes.append(
                        store.Outcome(attempt.notification_id, "SENT", None, "", attempt.recipient)
                    )
                    continue
                log.info(
                    "email not accepted",
                    extra={"notification_id": attempt.notification_id, "error": attempt.error},
                )
                outcomes.append(
                    self._failed(
                        attempt.notification_id,
                        attempts_of[attempt.notification_id],
                        attempt.error,
                        attempt.recipient,
                        permanent=attempt.permanent,
                    )
                )
        async with self._db.lone_writes() as session:
            await store.record_outcomes(session, outcomes)
        return len(due)

    def _unaddressed(
        self, notification_id: str, attempts: int, created_at: datetime
    ) -> store.Outcome:
        """The user's copy has not arrived (the account events may lag behind the others after
        a restart): tried again with the back-off, and DEAD only once the notification is a
        day old, whatever the attempts."""
        now = datetime.now(UTC)
        if now - created_at > UNADDRESSED_FOR:
            return store.Outcome(notification_id, "DEAD", None, "recipient never known", "")
        next_at = now + self._policy.delay(attempts)
        return store.Outcome(notification_id, "PENDING", next_at, "recipient not known yet", "")

    def _failed(
        self,
        notification_id: str,
        attempts: int,
        error: str,
        recipient: str,
        *,
        permanent: bool = False,
    ) -> store.Outcome:
        status = "DEAD" if permanent else self._policy.after_failure(attempts)
        next_at = datetime.now(UTC) + self._policy.delay(attempts) if status == "PENDING" else None
        return store.Outcome(notification_id, status, next_at, error, recipient)

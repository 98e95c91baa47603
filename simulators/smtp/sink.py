"""The SMTP sink: accepts mail over SMTP (AUTH required), stores every message in a Maildir, and
refuses the next N messages when told to, so that a sender's retries can be tested.

Each stored message gets `X-Sink-Mail-From` and `X-Sink-Rcpt-To` headers (the SMTP envelope)
and keeps its own headers (Message-ID, Subject, ...) as sent. A refused message is answered
`451 4.3.0` at DATA (a temporary failure: a sender should try again) and is not stored.
"""

from __future__ import annotations

import mailbox
import threading
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from email import message_from_bytes
from email import policy
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP
from aiosmtpd.smtp import AuthResult
from aiosmtpd.smtp import Envelope
from aiosmtpd.smtp import LoginPassword
from aiosmtpd.smtp import Session

REFUSED_REPLY = "451 4.3.0 refused by the sink on request, try again later"
MAX_REFUSALS = 1000


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class Mailstore:
    """The Maildir of received messages and the refusal counter, shared by the SMTP server and
    the control port (a thread)."""

    def __init__(self, directory: Path) -> None:
        # Maildir(create=True) makes its folders only when the directory itself is new; the
        # stack makes the directory (0700) beforehand.
        for folder in ("tmp", "new", "cur"):
            (directory / folder).mkdir(mode=0o700, parents=True, exist_ok=True)
        self.maildir = mailbox.Maildir(directory, create=False)
        self.lock = threading.Lock()
        self.refuse_next = 0
        self.received = 0
        self.refused = 0

    def refuse(self, count: int) -> int:
        if not 0 <= count <= MAX_REFUSALS:
            raise ValueError(f"count must be a whole number in [0, {MAX_REFUSALS}]")
        with self.lock:
            self.refuse_next = count
            return self.refuse_next

    def take(self, envelope: Envelope) -> bool:
        """Stores the message unless it is to be refused; True if stored."""
        with self.lock:
            if self.refuse_next > 0:
                self.refuse_next -= 1
                self.refused += 1
                return False
            raw = envelope.original_content or b""
            headers = (
                f"X-Sink-Mail-From: {envelope.mail_from}\r\n"
                f"X-Sink-Rcpt-To: {', '.join(envelope.rcpt_tos)}\r\n"
                f"X-Sink-Received-At: {datetime.now(UTC).isoformat()}\r\n"
            ).encode()
            self.maildir.add(mailbox.MaildirMessage(headers + raw))
            self.received += 1
            return True

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {
                "received": self.received,
                "refused": self.refused,
                "refuse_next": self.refuse_next,
                "stored": len(self.maildir),
            }

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Every stored message, oldest first, with its envelope, main headers and text parts."""
        with self.lock:
            items = [(key, self.maildir.get_bytes(key)) for key in list(self.maildir.iterkeys())]
        found = []
        for key, raw in items:
            parsed = message_from_bytes(raw, policy=policy.default)
            rcpt_tos = [a.strip() for a in str(parsed["X-Sink-Rcpt-To"] or "").split(",") if a]
            if to is not None and to not in rcpt_tos:
                continue
            text_part = parsed.get_body(preferencelist=("plain",))
            html_part = parsed.get_body(preferencelist=("html",))
            found.append(
                {
                    "key": key,
                    "mail_from": str(parsed["X-Sink-Mail-From"] or ""),
                    "rcpt_tos": rcpt_tos,
                    "received_at": str(parsed["X-Sink-Received-At"] or ""),
                    "message_id": str(parsed["Message-ID"] or ""),
                    "subject": str(parsed["Subject"] or ""),
                    "from": str(parsed["From"] or ""),
                    "to": str(parsed["To"] or ""),
                    "headers": {k: str(v) for k, v in parsed.items()},
                    "text": text_part.get_content() if text_part is not None else "",
                    "html": html_part.get_content() if html_part is not None else "",
                }
            )
        found.sort(key=lambda m: (m["received_at"], m["key"]))
        return found


class SinkHandler:
    """aiosmtpd's handler: every message goes to the store (or is refused)."""

    def __init__(self, store: Mailstore) -> None:
        self.store = store

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if not session.authenticated:
            return "530 5.7.0 authentication required"
        if not self.store.take(envelope):
            return REFUSED_REPLY
        return "250 2.0.0 stored"


class Authenticator:
    """Accepts exactly the stack's SMTP login (from Vault)."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = (
            auth_data.login.decode() == self.credentials.username
            and auth_data.password.decode() == self.credentials.password
        )
        return AuthResult(success=ok)


def smtp_factory(store: Mailstore, credentials: Credentials, hostname: str) -> SMTP:
    # Plain AUTH without TLS: the sink listens on loopback only; a production relay would
    # require STARTTLS (the sender uses it whenever the server offers it).
    return SMTP(
        SinkHandler(store),
        hostname=hostname,
        authenticator=Authenticator(credentials),
        auth_required=True,
        auth_require_tls=False,
    )

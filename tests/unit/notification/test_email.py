"""The email of a notification (services/notification/email.py)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from email import message_from_bytes
from email import policy
from email.message import EmailMessage

from services.notification.email import Mail
from services.notification.email import message_id
from services.notification.email import render

MAIL = Mail(
    notification_id="5e0c1a86-0d4b-4b8e-9a43-4e3b1c9f0a11",
    recipient="ann@example.test",
    display_name="Ann <Admin>",
    severity="WARNING",
    title="Order rejected: EURUSD",
    body="Your order to buy 1 lot EURUSD was rejected: INSUFFICIENT_MARGIN.",
    details={"order_id": "o-1", "symbol": "EURUSD", "unknown_key": "ignored"},
    created_at=datetime(2026, 12, 6, 10, 0, tzinfo=UTC),
)


def _sent(message: object) -> EmailMessage:
    """The email as a mail client reads it: its bytes parsed again."""
    raw = message.as_bytes()  # type: ignore[attr-defined]
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_a_title_beyond_ascii_is_an_encoded_subject_that_reads_back() -> None:
    message = _sent(render(Mail(**{**MAIL.__dict__, "title": "Ordre exécuté…"}), "x@y.test"))

    assert message["Subject"] == "[Warning] Ordre exécuté…"


def test_the_email_has_text_and_html_and_a_message_id_of_its_notification() -> None:
    message = _sent(render(MAIL, "TradingMesh <notifications@tradingmesh.local>"))

    assert message["Subject"] == "[Warning] Order rejected: EURUSD"
    assert message["To"] == "ann@example.test"
    assert message["Message-ID"] == message_id(MAIL.notification_id)
    assert message["Message-ID"] == (
        "<5e0c1a86-0d4b-4b8e-9a43-4e3b1c9f0a11@tradingmesh.notification>"
    )
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    plain = text.get_content()
    assert MAIL.body in plain
    assert "Order: o-1" in plain
    assert "Symbol: EURUSD" in plain
    assert "ignored" not in plain
    page = html.get_content()
    assert "Ann &lt;Admin&gt;" in page  # escaped, never markup
    assert "<code>o-1</code>" in page


def test_an_info_email_has_no_severity_prefix() -> None:
    message = _sent(
        render(
            Mail(**{**MAIL.__dict__, "severity": "INFO", "title": "Deposit received"}), "x@y.test"
        )
    )

    assert message["Subject"] == "Deposit received"

"""The SMTP sink's store (simulators/smtp/sink.py): what it keeps, and refusals on request."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiosmtpd.smtp import Envelope

from simulators.smtp.sink import Mailstore


def _envelope(subject: str) -> Envelope:
    envelope = Envelope()
    envelope.mail_from = "notifications@tradingmesh.local"
    envelope.rcpt_tos = ["ann@example.test"]
    envelope.original_content = (
        f"Subject: {subject}\r\nMessage-ID: <{subject}@x>\r\n"
        "Content-Type: text/plain\r\n\r\nhello\r\n"
    ).encode()
    return envelope


def test_the_sink_stores_each_message_with_its_envelope(tmp_path: Path) -> None:
    store = Mailstore(tmp_path)

    assert store.take(_envelope("one"))
    (message,) = store.messages()

    assert message["subject"] == "one"
    assert message["message_id"] == "<one@x>"
    assert message["mail_from"] == "notifications@tradingmesh.local"
    assert message["rcpt_tos"] == ["ann@example.test"]
    assert message["text"].strip() == "hello"
    assert store.messages(to="bob@example.test") == []
    assert store.state() == {"received": 1, "refused": 0, "refuse_next": 0, "stored": 1}


def test_the_sink_refuses_exactly_the_next_n_messages(tmp_path: Path) -> None:
    store = Mailstore(tmp_path)
    store.refuse(2)

    taken = [store.take(_envelope(f"m{n}")) for n in range(3)]

    assert taken == [False, False, True]
    assert [m["subject"] for m in store.messages()] == ["m2"]
    assert store.state()["refused"] == 2


def test_a_refusal_count_out_of_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="count"):
        Mailstore(tmp_path).refuse(-1)

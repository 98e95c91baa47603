"""The domain streams and outboxes as their consumers read them (ADR 0009).

Every message of the ACCOUNT, OMS, RISK and PRICING streams, and every outbox row's payload, is
an `EventEnvelope` holding the events of ONE committed change; the message's subject is the
envelope's headline and its `Nats-Msg-Id` the envelope's id. A test that looks for an event
therefore reads the whole domain (`published`), opens every envelope (one that is not a valid
envelope fails the test) and picks the events by their own subject (`events_on`,
`outbox_events`).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import Protocol

from services.platform.bus import MSG_ID_HEADER
from services.platform.envelope import Event
from services.platform.envelope import matches
from services.platform.envelope import open_envelope
from tests.integration.support.infra import connect_nats

__all__ = ["Login", "Message", "NatsLogin", "events_on", "outbox_events", "published"]


class NatsLogin(Protocol):
    """Where the stack's NATS is and how to sign in (an `AccountStack` is one)."""

    @property
    def nats_url(self) -> str: ...

    @property
    def nats_user(self) -> str: ...

    @property
    def nats_password(self) -> str: ...

    @property
    def nats_ca_file(self) -> str: ...


@dataclass(frozen=True)
class Login:
    nats_url: str
    nats_user: str
    nats_password: str
    nats_ca_file: str  # the stack's CA: NATS requires TLS (ADR 0018)


@dataclass(frozen=True)
class Message:
    """One message of a domain stream, opened: its subject (the envelope's headline), its
    `Nats-Msg-Id`, the envelope's id and its events in the order the change made them."""

    subject: str
    msg_id: str
    envelope_id: str
    events: tuple[Event, ...]


async def published(login: NatsLogin, stream: str, subjects: str) -> list[Message]:
    """Every message on `subjects` (e.g. "oms.>") in `stream` so far, in stream order, each
    opened and checked against the envelope's contract."""
    client = await connect_nats(
        login.nats_url, login.nats_user, login.nats_password, login.nats_ca_file
    )
    try:
        subscription = await client.jetstream().pull_subscribe(subjects, stream=stream)
        found: list[Message] = []
        while True:
            try:
                batch = await subscription.fetch(500, timeout=2)
            except TimeoutError:  # nats-py raises its own or asyncio's once drained
                break
            for message in batch:
                envelope_id, events = open_envelope(message.data, check=True)
                msg_id = (message.headers or {}).get(MSG_ID_HEADER, "")
                found.append(Message(message.subject, msg_id, envelope_id, tuple(events)))
                await message.ack()
        await subscription.unsubscribe()
    finally:
        await client.close()
    return found


def events_on(messages: Iterable[Message], subject: str) -> list[tuple[Message, Event]]:
    """The events on `subject` (a NATS subject filter) inside the messages, each with the
    message it came in: in stream order, and within a message in the order of its change."""
    return [(m, event) for m in messages for event in m.events if matches(subject, event.subject)]


def outbox_events(rows: Iterable[Sequence[Any]], subject: str) -> list[Event]:
    """The events on `subject` (a NATS subject filter) inside outbox rows whose first column is
    the payload (a serialized envelope), in the rows' order, each checked as `published` does."""
    return [
        event
        for row in rows
        for event in open_envelope(bytes(row[0]), check=True)[1]
        if matches(subject, event.subject)
    ]

"""Event envelopes (ADR 0009): the events of one committed change travel as ONE message.

A producer collects a change's events in an `Envelope` (each checked against its contract as it
is added: a malformed event fails the change, not the relay later) and writes the sealed envelope
as one outbox row; the relay publishes it as one message whose subject is the envelope's headline
and whose `Nats-Msg-Id` is the envelope's id. Consumers `open_envelope` a message into its
`Event`s, in the order the change made them, and de-duplicate on the envelope's id.

The headline: a producer names its kinds of event from the most to the least significant (the
OMS: trades, then orders, then positions); the headline is the subject of the LAST event of the
most significant kind the envelope holds, or its last event when it holds none of them. A fill
(its order events, a trade, a position event) is headlined `oms.trade.executed`; a cancel
`oms.order.cancelled`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import protovalidate
from google.protobuf.message import DecodeError
from google.protobuf.message import Message
from nats.aio.msg import Msg

from services.platform.bus import MSG_ID_HEADER
from services.platform.bus import encode_event
from tradingmesh.common.v1.events_pb2 import EnvelopedEvent
from tradingmesh.common.v1.events_pb2 import EventEnvelope

__all__ = [
    "Envelope",
    "EnvelopeError",
    "Event",
    "Sealed",
    "events_of",
    "matches",
    "open_envelope",
]

_log = logging.getLogger(__name__)
_NO_KINDS: Final[tuple[str, ...]] = ()


class EnvelopeError(ValueError):
    """A message that is not an envelope: it breaks its contract and can never apply."""


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a delivered envelope: its subject (which names its message type) and its
    serialized message; `envelope_id` is the envelope it came in."""

    subject: str
    data: bytes
    envelope_id: str = ""


@dataclass(frozen=True, slots=True)
class Sealed:
    """An envelope ready for the outbox: its id, headline subject, payload and the ids of its
    events (in order)."""

    envelope_id: str
    subject: str
    payload: bytes
    event_ids: tuple[str, ...]


class Envelope:
    """The events of one change, collected in order; `seal` once the change is complete."""

    __slots__ = ("_event_ids", "_events", "_kinds")

    def __init__(self, kinds: Sequence[str] = _NO_KINDS) -> None:
        """`kinds`: subject prefixes from the most to the least significant (e.g. "oms.trade.")."""
        self._kinds = tuple(kinds)
        self._events: list[EnvelopedEvent] = []
        self._event_ids: list[str] = []

    def __len__(self) -> int:
        return len(self._events)

    def __bool__(self) -> bool:
        return bool(self._events)

    @property
    def event_ids(self) -> tuple[str, ...]:
        return tuple(self._event_ids)

    def add(self, subject: str, event: Message) -> str:
        """Adds an event (checked against its contract: `bus.encode_event` raises ValueError for
        a malformed one); returns its id."""
        payload, headers = encode_event(event)
        event_id = headers[MSG_ID_HEADER]
        self._events.append(EnvelopedEvent(subject=subject, payload=payload))
        self._event_ids.append(event_id)
        return event_id

    def headline(self) -> str:
        subjects = [event.subject for event in self._events]
        for kind in self._kinds:
            of_kind = [subject for subject in subjects if subject.startswith(kind)]
            if of_kind:
                return of_kind[-1]
        return subjects[-1]

    def seal(self) -> Sealed:
        """The envelope with a new id; the collected events are handed over (the envelope is
        empty again)."""
        if not self._events:
            raise ValueError("an envelope holds at least one event")
        envelope_id = str(uuid.uuid4())
        subject = self.headline()
        payload = EventEnvelope(envelope_id=envelope_id, events=self._events).SerializeToString()
        sealed = Sealed(envelope_id, subject, payload, tuple(self._event_ids))
        self._events = []
        self._event_ids = []
        return sealed


def open_envelope(data: bytes, *, check: bool = False) -> tuple[str, list[Event]]:
    """The envelope's id and its events in order; EnvelopeError for a message that is not an
    envelope. `check` also validates it against its contract (tests; producers validated every
    event when they built it)."""
    try:
        envelope = EventEnvelope.FromString(data)
    except DecodeError as error:
        raise EnvelopeError("not an EventEnvelope") from error
    if check:
        violations = protovalidate.collect_violations(envelope)
        if violations:
            broken = ", ".join(v.proto.rule_id or "?" for v in violations)
            raise EnvelopeError(f"EventEnvelope breaks its contract: {broken}")
    elif not envelope.events:
        raise EnvelopeError("an EventEnvelope without events")
    envelope_id = envelope.envelope_id
    return envelope_id, [Event(e.subject, e.payload, envelope_id) for e in envelope.events]


def events_of(message: Msg) -> list[Event]:
    """The events of a message received on a core NATS subscription; none (and a log line) for
    a message that is not an envelope."""
    try:
        return open_envelope(message.data)[1]
    except EnvelopeError:
        _log.warning("not an event envelope", extra={"subject": message.subject})
        return []


def matches(pattern: str, subject: str) -> bool:
    """Whether `subject` matches a NATS subject filter (`*` one token, `>` the rest)."""
    wanted = pattern.split(".")
    tokens = subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > index
        if index >= len(tokens) or (token != "*" and token != tokens[index]):
            return False
    return len(tokens) == len(wanted)

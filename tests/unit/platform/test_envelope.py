"""Event envelopes (ADR 0009): one message per committed change, headlined by its most
significant event, opened back into its events in order."""

from __future__ import annotations

import uuid

import pytest

from services.platform.envelope import Envelope
from services.platform.envelope import EnvelopeError
from services.platform.envelope import matches
from services.platform.envelope import open_envelope
from tradingmesh.common.v1.events_pb2 import EventMetadata
from tradingmesh.pricing.v1 import pricing_events_pb2

KINDS = ("oms.trade.", "oms.order.", "oms.position.")


def _event() -> pricing_events_pb2.LiquidityProviderStatusChanged:
    event = pricing_events_pb2.LiquidityProviderStatusChanged(
        metadata=EventMetadata(event_id=str(uuid.uuid4()), producer="test")
    )
    event.metadata.occurred_at.GetCurrentTime()
    return event


@pytest.mark.parametrize(
    ("subjects", "headline"),
    [
        pytest.param(
            [
                "oms.order.created",
                "oms.order.submitted",
                "oms.order.accepted",
                "oms.order.filled",
                "oms.position.opened",
                "oms.trade.executed",
            ],
            "oms.trade.executed",
            id="a fill: its trade",
        ),
        pytest.param(
            ["oms.order.cancel_requested", "oms.order.cancelled"],
            "oms.order.cancelled",
            id="orders only: the last",
        ),
        pytest.param(["oms.position.changed"], "oms.position.changed", id="one event"),
        pytest.param(["oms.hedge_order.sent"], "oms.hedge_order.sent", id="no kind: the last"),
    ],
)
def test_the_headline_is_the_last_event_of_the_most_significant_kind(
    subjects: list[str], headline: str
) -> None:
    envelope = Envelope(KINDS)
    for subject in subjects:
        envelope.add(subject, _event())
    assert envelope.seal().subject == headline


def test_a_sealed_envelope_opens_into_its_events_in_order_each_with_its_own_id() -> None:
    envelope = Envelope(KINDS)
    events = [_event() for _ in range(3)]
    ids = [envelope.add(f"oms.order.e{i}", e) for i, e in enumerate(events)]

    sealed = envelope.seal()
    envelope_id, opened = open_envelope(sealed.payload, check=True)

    assert envelope_id == sealed.envelope_id
    assert uuid.UUID(envelope_id)
    assert sealed.event_ids == tuple(ids) == tuple(e.metadata.event_id for e in events)
    assert [e.subject for e in opened] == ["oms.order.e0", "oms.order.e1", "oms.order.e2"]
    assert [e.data for e in opened] == [e.SerializeToString() for e in events]
    assert not envelope  # handed over: the next change starts empty


def test_an_empty_envelope_cannot_be_sealed_and_garbage_does_not_open() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        Envelope().seal()
    with pytest.raises(EnvelopeError):
        open_envelope(b"\xff\xff\xff")
    with pytest.raises(EnvelopeError):
        open_envelope(b"")  # decodes as an envelope without events


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("oms.>", "oms.order.filled", True),
        ("oms.>", "oms", False),
        ("oms.order.*", "oms.order.filled", True),
        ("oms.order.*", "oms.order.filled.x", False),
        ("oms.trade.executed", "oms.trade.executed", True),
        ("oms.trade.executed", "oms.trade.booked", False),
        ("*.trade.executed", "oms.trade.executed", True),
    ],
)
def test_subject_filters_match_as_nats_does(pattern: str, subject: str, expected: bool) -> None:
    assert matches(pattern, subject) is expected

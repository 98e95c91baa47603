"""The JetStream streams of ADR 0001, and what an event message carries."""

from __future__ import annotations

import uuid

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from nats.js.api import StorageType

from services.platform.bus import STREAMS
from services.platform.bus import encode_event
from tradingmesh.common.v1 import events_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.pricing.v1 import pricing_events_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2

# One subject of each kind the contracts publish.
SUBJECTS = {
    "account.ledger_entry.posted": "ACCOUNT",
    "oms.order.filled": "OMS",
    "risk.account.margin_call_issued": "RISK",
    "pricing.instrument.updated": "PRICING",
    "pricing.liquidity_provider.status_changed": "PRICING",
    "pricing.quote.published.grp-1.EURUSD": "PRICING_QUOTES",
}


def _matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, a final `>` is one or more."""
    wanted, tokens = pattern.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > index
        if index >= len(tokens) or token not in ("*", tokens[index]):
            return False
    return len(tokens) == len(wanted)


@pytest.mark.parametrize(("subject", "stream"), SUBJECTS.items())
def test_each_subject_is_captured_by_exactly_one_stream(subject: str, stream: str) -> None:
    capturing = [s.name for s in STREAMS if any(_matches(p, subject) for p in s.subjects or [])]

    assert capturing == [stream]


def test_streams_are_durable_and_drop_duplicates_for_two_minutes() -> None:
    assert all(s.storage == StorageType.FILE for s in STREAMS)
    assert all(s.duplicate_window == 120.0 for s in STREAMS)


def test_only_the_quote_stream_keeps_just_the_last_message_per_subject() -> None:
    last_per_subject = {s.name for s in STREAMS if s.max_msgs_per_subject == 1}

    assert last_per_subject == {"PRICING_QUOTES"}


def _lp_status_changed(event_id: str) -> pricing_events_pb2.LiquidityProviderStatusChanged:
    occurred_at = Timestamp()
    occurred_at.GetCurrentTime()
    return pricing_events_pb2.LiquidityProviderStatusChanged(
        metadata=events_pb2.EventMetadata(
            event_id=event_id,
            occurred_at=occurred_at,
            producer="pricing",
            actor=types_pb2.Actor(kind=types_pb2.ACTOR_KIND_SYSTEM, id="pricing"),
        )
    )


def test_event_message_carries_its_event_id_as_the_nats_message_id() -> None:
    event_id = str(uuid.uuid4())
    event = _lp_status_changed(event_id)

    payload, headers = encode_event(event)

    assert headers == {"Nats-Msg-Id": event_id}
    assert pricing_events_pb2.LiquidityProviderStatusChanged.FromString(payload) == event


def test_event_that_breaks_its_contract_is_refused() -> None:
    with pytest.raises(ValueError, match=r"string\.uuid"):
        encode_event(_lp_status_changed(event_id="not-a-uuid"))


def test_contracts_are_checked_only_where_checks_are_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Production (TM_CHECK_EVENTS unset) skips the contract check, never the event id."""
    monkeypatch.delenv("TM_CHECK_EVENTS")
    payload, headers = encode_event(_lp_status_changed(event_id="not-a-uuid"))
    assert headers == {"Nats-Msg-Id": "not-a-uuid"}
    assert payload
    with pytest.raises(ValueError, match="no event id"):
        encode_event(_lp_status_changed(event_id=""))


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(pricing_service_pb2.GetQuoteRequest(symbol="EURUSD"), id="not an event"),
        pytest.param(pricing_events_pb2.LiquidityProviderStatusChanged(), id="metadata unset"),
    ],
)
def test_message_without_event_metadata_is_refused(message: Message) -> None:
    with pytest.raises(ValueError, match="not an event with its metadata set"):
        encode_event(message)

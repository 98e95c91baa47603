"""outbox.event_metadata: every service's events carry metadata built one way (ADR 0005)."""

from __future__ import annotations

import uuid
from datetime import UTC
from datetime import datetime

from services.platform.outbox import event_metadata
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.common.v1.types_pb2 import ActorKind


def test_metadata_names_the_event_its_producer_actor_time_and_version() -> None:
    at = datetime(2026, 12, 6, 21, 45, 1, 250_000, tzinfo=UTC)
    actor = Actor(kind=ActorKind.ACTOR_KIND_USER, id="u-1")

    first = event_metadata("oms", actor, at, version=3, correlation_id="req-1", causation_id="e-0")
    second = event_metadata("oms", actor, at)

    assert uuid.UUID(first.event_id).version == 4
    assert first.event_id != second.event_id
    assert (first.producer, first.aggregate_version) == ("oms", 3)
    assert (first.correlation_id, first.causation_id) == ("req-1", "e-0")
    assert first.actor == actor
    assert first.occurred_at.ToDatetime(tzinfo=UTC) == at
    assert (second.aggregate_version, second.correlation_id, second.causation_id) == (0, "", "")


def test_ids_longer_than_the_contract_allows_are_cut_to_128_characters() -> None:
    actor = Actor(kind=ActorKind.ACTOR_KIND_SYSTEM, id="risk")
    long = "x" * 300

    metadata = event_metadata(
        "risk", actor, datetime.now(UTC), correlation_id=long, causation_id=long
    )

    assert (len(metadata.correlation_id), len(metadata.causation_id)) == (128, 128)

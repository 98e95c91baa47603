"""The account service's copy of pricing's instruments: reading the events, and what the consumer
acknowledges, without NATS or PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from nats.aio.msg import Msg

from services.account.instruments import SUBJECTS
from services.account.instruments import InstrumentCatalogue
from services.account.instruments import InstrumentLots
from services.account.instruments import decode
from services.account.instruments import lots_of
from tests.unit.fake_db import FakeDatabase
from tests.unit.fake_db import Transaction
from tradingmesh.common.v1.events_pb2 import EnvelopedEvent
from tradingmesh.common.v1.events_pb2 import EventEnvelope
from tradingmesh.common.v1.events_pb2 import EventMetadata
from tradingmesh.pricing.v1 import pricing_events_pb2
from tradingmesh.pricing.v1 import pricing_pb2

EVENT_ID = "0b6f4f64-5a3c-4d43-9a3e-6d2f1c1e7a10"


def instrument(**changes: Any) -> pricing_pb2.Instrument:
    fields: dict[str, Any] = {
        "symbol": "EURUSD",
        "lot_step": "0.01",
        "min_lot": "0.01",
        "max_lot": "100",
    }
    fields.update(changes)
    return pricing_pb2.Instrument(**fields)


def updated(*, version: int = 2, event_id: str = EVENT_ID, **changes: Any) -> bytes:
    return pricing_events_pb2.InstrumentUpdated(
        metadata=EventMetadata(event_id=event_id, aggregate_version=version),
        instrument=instrument(**changes),
    ).SerializeToString()


def test_every_instrument_event_subject_is_read_and_nothing_else() -> None:
    assert sorted(SUBJECTS) == [
        "pricing.instrument.created",
        "pricing.instrument.trading_status_changed",
        "pricing.instrument.updated",
    ]
    assert decode("pricing.liquidity_provider.status_changed", b"\x00") is None


def test_an_update_gives_the_lot_rules_at_the_rows_version() -> None:
    event = decode("pricing.instrument.updated", updated(version=7, lot_step="0.05"))
    assert event is not None

    assert lots_of(event) == InstrumentLots(
        "EURUSD", Decimal("0.05"), Decimal("0.01"), Decimal("100"), 7
    )


def test_a_status_change_carries_the_whole_instrument_so_it_is_copied_too() -> None:
    data = pricing_events_pb2.InstrumentTradingStatusChanged(
        metadata=EventMetadata(event_id=EVENT_ID, aggregate_version=3),
        instrument=instrument(trading_status=pricing_pb2.TRADING_STATUS_HALTED),
        previous_status=pricing_pb2.TRADING_STATUS_TRADING,
    ).SerializeToString()
    event = decode("pricing.instrument.trading_status_changed", data)
    assert event is not None

    assert lots_of(event).version == 3


def test_a_payload_that_is_not_the_subjects_message_is_refused() -> None:
    with pytest.raises(ValueError, match="InstrumentCreated"):
        decode("pricing.instrument.created", b"\xff\xff\xff")


def test_an_event_without_an_id_is_refused() -> None:
    with pytest.raises(ValueError, match="without an id"):
        decode("pricing.instrument.updated", updated(event_id=""))


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"symbol": ""}, "without an instrument symbol"),
        ({"lot_step": ""}, "lot_step '' is not a positive decimal"),
        ({"lot_step": "0"}, "lot_step '0' is not"),
        ({"min_lot": "-1"}, "min_lot '-1' is not"),
        ({"max_lot": "abc"}, "max_lot 'abc' is not"),
        ({"lot_step": "NaN"}, "lot_step 'NaN' is not"),
        ({"min_lot": "5", "max_lot": "1"}, "max_lot 1 < min_lot 5"),
    ],
)
def test_an_instrument_without_valid_lot_rules_is_refused(
    changes: dict[str, Any], problem: str
) -> None:
    event = decode("pricing.instrument.updated", updated(**changes))
    assert event is not None

    with pytest.raises(ValueError, match=re.escape(problem)):
        lots_of(event)


# -- the consumer's acknowledgements -----------------------------------------------------------


class Message:
    """A message of the stream: an envelope holding one event (ADR 0009)."""

    def __init__(self, subject: str, data: bytes) -> None:
        self.subject = subject
        self.data = EventEnvelope(
            envelope_id=str(uuid.uuid4()), events=[EnvelopedEvent(subject=subject, payload=data)]
        ).SerializeToString()
        self.outcome = ""
        self.metadata = Msg.Metadata(
            sequence=Msg.Metadata.SequencePair(stream=1, consumer=1),
            num_pending=0,
            num_delivered=1,
            timestamp=datetime.now(UTC),
            stream="test",
            consumer="test",
        )

    async def ack(self) -> None:
        self.outcome = "ack"

    async def nak(self, delay: float | None = None) -> None:
        self.outcome = "nak"

    async def term(self) -> None:
        self.outcome = "term"


class Subscription:
    """Hands out one batch, then stops the consumer."""

    def __init__(self, batch: list[Message]) -> None:
        self.batches = [batch]

    async def fetch(self, batch: int, timeout: float) -> list[Message]:
        if not self.batches:
            raise asyncio.CancelledError
        return self.batches.pop(0)


class Catalogue(InstrumentCatalogue):
    def __init__(self, failing: set[str]) -> None:
        self.fake_db = FakeDatabase()
        super().__init__(db=self.fake_db)  # type: ignore[arg-type]  # apply is replaced
        self.failing = failing

    async def apply(self, session: Any, subject: str, event_id: str, lots: InstrumentLots) -> bool:
        if lots.symbol in self.failing:
            raise ConnectionError("PostgreSQL is away")
        applied: Transaction = session
        applied.applied.append(event_id)
        return True


async def test_applied_events_are_acked_failures_retried_and_broken_ones_dropped() -> None:
    good = Message("pricing.instrument.updated", updated(event_id="good"))
    failing = Message("pricing.instrument.updated", updated(event_id="later", symbol="GBPUSD"))
    broken = Message("pricing.instrument.created", b"\xff\xff\xff")
    other = Message("pricing.instrument.renamed", b"")
    catalogue = Catalogue(failing={"GBPUSD"})

    with pytest.raises(asyncio.CancelledError):
        await catalogue.consumer._run(Subscription([good, failing, broken, other]))  # type: ignore[arg-type]

    # The batch rolled back on the failure; then each envelope alone: only "good" applied. The
    # broken event is skipped (it could never apply) and its envelope acknowledged.
    assert [t for t in catalogue.fake_db.committed() if t] == [["good"]]
    assert (good.outcome, failing.outcome, broken.outcome, other.outcome) == (
        "ack",
        "nak",
        "ack",
        "ack",
    )

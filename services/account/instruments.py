"""The account service's copy of the instrument catalogue: the lot rules it checks against.

Instruments are the pricing domain's (PricingAdminService), and the account service never reads
pricing's schema (ADR 0004). It keeps `account.instruments` (migration 0007) instead: symbol, lot
step, minimum and maximum lot, and the version of pricing's row they were copied from. Pricing's
instrument events (`pricing.instrument.created`, `.updated`, `.trading_status_changed`) all
carry the instrument after the change and its row version (`metadata.aggregate_version`); a
durable JetStream consumer applies each once (its id goes into `account.inbox` in the same
transaction) and only if newer than the stored copy, so a redelivery, or an older change
delivered late, changes nothing. Several replicas may share the consumer: they write one table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from decimal import InvalidOperation
from typing import Final

from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession

from services.account.store import instruments as instrument_store
from services.platform.db import Database
from services.platform.envelope import Event
from services.platform.inbox import EventConsumer
from services.platform.inbox import Outcome
from services.platform.inbox import UndeliverableError
from services.platform.inbox import decode_known
from services.platform.inbox import first_time
from tradingmesh.pricing.v1 import pricing_events_pb2

__all__ = ["CONSUMER", "SUBJECTS", "InstrumentCatalogue", "InstrumentLots", "decode", "lots_of"]

log = logging.getLogger(__name__)

CONSUMER: Final = "account-instruments"
FILTER: Final = "pricing.instrument.>"

InstrumentEvent = (
    pricing_events_pb2.InstrumentCreated
    | pricing_events_pb2.InstrumentUpdated
    | pricing_events_pb2.InstrumentTradingStatusChanged
)
SUBJECTS: Final[dict[str, type[InstrumentEvent]]] = {
    "pricing.instrument.created": pricing_events_pb2.InstrumentCreated,
    "pricing.instrument.updated": pricing_events_pb2.InstrumentUpdated,
    "pricing.instrument.trading_status_changed": pricing_events_pb2.InstrumentTradingStatusChanged,
}


@dataclass(frozen=True)
class InstrumentLots:
    """What the account service keeps of one instrument, as of pricing's row `version`."""

    symbol: str
    lot_step: Decimal
    min_lot: Decimal
    max_lot: Decimal
    version: int


def decode(subject: str, data: bytes) -> InstrumentEvent | None:
    """The event on `subject`, or None for a subject this copy does not use. A payload that is
    not the subject's message, or has no event id, raises ValueError."""
    return decode_known(subject, data, SUBJECTS, needs_id=True)


def lots_of(event: InstrumentEvent) -> InstrumentLots:
    """The copy an event asks for; ValueError if it lacks what a copy needs (a contract
    breach: every instrument event carries the whole instrument)."""
    instrument = event.instrument
    if not instrument.symbol:
        raise ValueError(f"{event.DESCRIPTOR.full_name} without an instrument symbol")
    lots = InstrumentLots(
        symbol=instrument.symbol,
        lot_step=_positive(instrument.lot_step, "lot_step"),
        min_lot=_positive(instrument.min_lot, "min_lot"),
        max_lot=_positive(instrument.max_lot, "max_lot"),
        version=event.metadata.aggregate_version,
    )
    if lots.max_lot < lots.min_lot:
        raise ValueError(f"{lots.symbol}: max_lot {lots.max_lot} < min_lot {lots.min_lot}")
    return lots


def _positive(value: str, field: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        number = Decimal(0)
    if not number.is_finite() or number <= 0:
        raise ValueError(f"{field} {value!r} is not a positive decimal")
    return number


class InstrumentCatalogue:
    """Keeps `account.instruments` current from pricing's events; `start` after the resources
    are open, `stop` before they close."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.consumer = EventConsumer(CONSUMER, FILTER, db, self.handle)

    async def start(self, js: JetStreamContext) -> None:
        await self.consumer.start(js)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def handle(self, session: AsyncSession, message: Event) -> Outcome:
        try:
            event = decode(message.subject, message.data)
            lots = None if event is None else lots_of(event)
        except ValueError as error:  # never applicable, however often delivered
            raise UndeliverableError(str(error)) from error
        if event is None or lots is None:
            return False
        return await self.apply(session, message.subject, event.metadata.event_id, lots)

    async def apply(
        self, session: AsyncSession, subject: str, event_id: str, lots: InstrumentLots
    ) -> bool:
        """Applies one event once in the transaction; True if the stored copy changed (False
        for an event seen before, or one not newer than the copy)."""
        if not await first_time(session, "account", event_id, subject):
            return False  # seen before
        changed = await instrument_store.upsert_lots(
            session,
            symbol=lots.symbol,
            lot_step=lots.lot_step,
            min_lot=lots.min_lot,
            max_lot=lots.max_lot,
            version=lots.version,
        )
        log.info(
            "instrument event applied" if changed else "instrument event older than the copy",
            extra={"subject": subject, "symbol": lots.symbol, "version": lots.version},
        )
        return changed

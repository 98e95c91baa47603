"""The OMS's copies of other domains' data: accounts, groups, group instrument settings and
instruments (ADR 0007), kept current by their events.

The OMS never reads another service's schema (ADR 0004). It keeps `oms.accounts`, `oms.groups`,
`oms.group_instruments` and `oms.instruments` (migration 0008) from two durable JetStream
consumers, as pricing and the account service keep theirs (ADR 0005, 0006):

- `oms-reference` on `account.>`: trading accounts created or changed in status, client groups
  created or changed, a group's settings for an instrument set;
- `oms-instruments` on `pricing.instrument.>`: instruments created, updated, halted or resumed.

Each event is applied in one transaction that first records its id in `oms.inbox`
(`first_time`), so a redelivery changes nothing, and only if it is newer than the stored copy:
pricing's row version (`aggregate_version`) orders instrument events; the account domain's
events are ordered by their `occurred_at` (in microseconds), as pricing orders them. The demo
seed writes version 0, so any event supersedes it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from collections.abc import Callable
from functools import partial
from typing import Any
from typing import Final

from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.api.formats import FORMATS
from services.oms.api.formats import Scale
from services.oms.model import Instrument
from services.oms.store.changes import offered_instruments
from services.platform.copies import ACCOUNT_SUBJECTS
from services.platform.copies import INSTRUMENT_SUBJECTS
from services.platform.copies import AccountCopy
from services.platform.copies import Copy
from services.platform.copies import GroupCopy
from services.platform.copies import GroupInstrumentCopy
from services.platform.copies import InstrumentCopy
from services.platform.copies import columns
from services.platform.copies import copy_of
from services.platform.db import Database
from services.platform.envelope import Event
from services.platform.inbox import EventConsumer
from services.platform.inbox import EventConsumers
from services.platform.inbox import Outcome
from services.platform.inbox import UndeliverableError
from services.platform.inbox import decode_known
from services.platform.inbox import first_time

__all__ = [
    "ACCOUNT_CONSUMER",
    "INSTRUMENT_CONSUMER",
    "SUBJECTS",
    "OfferedInstruments",
    "ReferenceCopies",
    "decode",
    "upsert_of",
]

log = logging.getLogger(__name__)

SCHEMA: Final = "oms"
ACCOUNT_CONSUMER: Final = "oms-reference"
INSTRUMENT_CONSUMER: Final = "oms-instruments"

SUBJECTS: Final[dict[str, type[Message]]] = {**ACCOUNT_SUBJECTS, **INSTRUMENT_SUBJECTS}

_ACCOUNT_UPSERT: Final = (
    "INSERT INTO oms.accounts (account_id, user_id, group_id, currency, status, position_mode,"
    " version) VALUES (:account_id, :user_id, :group_id, :currency, :status, :position_mode,"
    " :version) ON CONFLICT (account_id) DO UPDATE SET user_id = EXCLUDED.user_id,"
    " group_id = EXCLUDED.group_id, currency = EXCLUDED.currency, status = EXCLUDED.status,"
    " position_mode = EXCLUDED.position_mode, version = EXCLUDED.version, updated_at = now()"
    " WHERE oms.accounts.version < EXCLUDED.version RETURNING account_id"
)
_GROUP_UPSERT: Final = (
    "INSERT INTO oms.groups (group_id, name, currency, leverage, margin_call_level,"
    " stop_out_level, execution_mode, position_mode, commission_per_lot, max_deviation_points,"
    " version) VALUES (:group_id, :name, :currency, :leverage, :margin_call_level,"
    " :stop_out_level, :execution_mode, :position_mode, :commission_per_lot,"
    " :max_deviation_points, :version) ON CONFLICT (group_id) DO UPDATE SET"
    " name = EXCLUDED.name, currency = EXCLUDED.currency, leverage = EXCLUDED.leverage,"
    " margin_call_level = EXCLUDED.margin_call_level, stop_out_level = EXCLUDED.stop_out_level,"
    " execution_mode = EXCLUDED.execution_mode, position_mode = EXCLUDED.position_mode,"
    " commission_per_lot = EXCLUDED.commission_per_lot,"
    " max_deviation_points = EXCLUDED.max_deviation_points, version = EXCLUDED.version,"
    " updated_at = now() WHERE oms.groups.version < EXCLUDED.version RETURNING group_id"
)
_SETTINGS_UPSERT: Final = (
    "INSERT INTO oms.group_instruments (group_id, symbol, enabled, commission_per_lot,"
    " execution_mode, max_deviation_points, max_order_size, max_position, margin_rate, version)"
    " VALUES (:group_id, :symbol, :enabled, :commission_per_lot, :execution_mode,"
    " :max_deviation_points, :max_order_size, :max_position, :margin_rate, :version)"
    " ON CONFLICT (group_id, symbol) DO UPDATE SET enabled = EXCLUDED.enabled,"
    " commission_per_lot = EXCLUDED.commission_per_lot,"
    " execution_mode = EXCLUDED.execution_mode,"
    " max_deviation_points = EXCLUDED.max_deviation_points,"
    " max_order_size = EXCLUDED.max_order_size, max_position = EXCLUDED.max_position,"
    " margin_rate = EXCLUDED.margin_rate, version = EXCLUDED.version, updated_at = now()"
    " WHERE oms.group_instruments.version < EXCLUDED.version RETURNING symbol"
)
_INSTRUMENT_UPSERT: Final = (
    "INSERT INTO oms.instruments (symbol, base_currency, quote_currency, digits, tick_size,"
    " contract_size, min_lot, max_lot, lot_step, margin_rate, trading_status, sessions, version)"
    " VALUES (:symbol, :base_currency, :quote_currency, :digits, :tick_size, :contract_size,"
    " :min_lot, :max_lot, :lot_step, :margin_rate, :trading_status, CAST(:sessions AS jsonb),"
    " :version) ON CONFLICT (symbol) DO UPDATE SET base_currency = EXCLUDED.base_currency,"
    " quote_currency = EXCLUDED.quote_currency, digits = EXCLUDED.digits,"
    " tick_size = EXCLUDED.tick_size, contract_size = EXCLUDED.contract_size,"
    " min_lot = EXCLUDED.min_lot, max_lot = EXCLUDED.max_lot, lot_step = EXCLUDED.lot_step,"
    " margin_rate = EXCLUDED.margin_rate, trading_status = EXCLUDED.trading_status,"
    " sessions = EXCLUDED.sessions, version = EXCLUDED.version, updated_at = now()"
    " WHERE oms.instruments.version < EXCLUDED.version RETURNING symbol"
)
_UPSERTS: Final[dict[type[Copy], str]] = {
    AccountCopy: _ACCOUNT_UPSERT,
    GroupCopy: _GROUP_UPSERT,
    GroupInstrumentCopy: _SETTINGS_UPSERT,
    InstrumentCopy: _INSTRUMENT_UPSERT,
}


def decode(subject: str, data: bytes) -> Message | None:
    """The event on `subject`, or None for a subject the copies do not use. A payload that is
    not the subject's message, or has no event id, raises ValueError."""
    return decode_known(subject, data, SUBJECTS, needs_id=True)


def upsert_of(event: Message) -> tuple[str, dict[str, Any]]:
    """The statement and parameters that apply `event` to its copy. ValueError when the event
    lacks what the copy needs (a breach of its contract: `services.platform.copies`)."""
    copied = copy_of(event)
    if copied is None:
        raise ValueError(f"{event.DESCRIPTOR.full_name} is not a reference event")
    copy, version = copied
    return _UPSERTS[type(copy)], {**columns(copy), "version": version}


class ReferenceCopies(EventConsumers):
    """Keeps the copies current; `start` once the connections are open, `stop` before they
    close."""

    def __init__(
        self,
        db: Database,
        on_changes: Callable[[], Awaitable[None]] | None = None,
        *,
        durable: Callable[[str], str] | None = None,
    ) -> None:
        """`durable`: the consumers' names for this instance when each instance reads the
        whole streams (several instances, ADR 0017): an event another instance applied first
        still refreshes what this one holds in memory. None: one shared consumer each."""
        self.db = db
        self.per_instance = durable is not None
        name = durable or (lambda consumer: consumer)
        self.consumers = (
            # Only the subjects copied here: the account service's ledger envelopes (one per
            # order's booking) are acknowledged without a transaction.
            EventConsumer(
                name(ACCOUNT_CONSUMER),
                "account.>",
                db,
                self.handle,
                events=SUBJECTS.__contains__,
                on_changes=on_changes,
            ),
            EventConsumer(
                name(INSTRUMENT_CONSUMER),
                "pricing.instrument.>",
                db,
                self.handle,
                events=SUBJECTS.__contains__,
                on_changes=on_changes,
            ),
        )

    async def handle(self, session: AsyncSession, message: Event) -> Outcome:
        try:
            event = decode(message.subject, message.data)
            if event is None:
                return False
            statement, params = upsert_of(event)
        except ValueError as error:  # never applicable, however often delivered
            raise UndeliverableError(str(error)) from error
        event_id: str = event.metadata.event_id  # type: ignore[attr-defined]
        return await self.apply(session, message.subject, event_id, statement, params)

    async def apply(
        self,
        session: AsyncSession,
        subject: str,
        event_id: str,
        statement: str,
        params: dict[str, Any],
    ) -> Outcome:
        """Applies one event once in the transaction; False if no copy changed."""
        if not await first_time(session, SCHEMA, event_id, subject):
            if not self.per_instance:
                return False
            # Applied by another instance (ADR 0017): what this one holds is refreshed.
            if statement is _INSTRUMENT_UPSERT:
                return partial(FORMATS.put, params["symbol"], _scale(params))
            return True
        changed = (await session.execute(text(statement), params)).first() is not None
        log.info(
            "reference event applied" if changed else "reference event older than the copy",
            extra={"subject": subject, "event_id": event_id},
        )
        if changed and statement is _INSTRUMENT_UPSERT:
            scale = _scale(params)
            return lambda: FORMATS.put(params["symbol"], scale)
        return changed


def _scale(params: dict[str, Any]) -> Scale:
    return Scale.of(params["digits"], params["lot_step"])


class OfferedInstruments:
    """The instruments each client group is offered (where order entry finds a currency
    conversion pair), read once per group and forgotten whenever the copies above change
    (`forget`, their `on_changes`): no statement per cross-currency order."""

    def __init__(self) -> None:
        self._by_group: dict[str, list[Instrument]] = {}
        self._generation = 0

    async def of(self, session: AsyncSession, group_id: str) -> list[Instrument]:
        known = self._by_group.get(group_id)
        if known is not None:
            return known
        generation = self._generation
        read = await offered_instruments(session, group_id)
        if generation == self._generation:  # nothing changed while it was read
            self._by_group[group_id] = read
        return read

    async def forget(self) -> None:
        self._generation += 1
        self._by_group.clear()

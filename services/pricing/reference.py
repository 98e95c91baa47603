"""What pricing prices with: instruments, the groups' markups and offers, account → group.

Instruments are pricing's own (`pricing.instruments`), changed by staff through
PricingAdminService (`services/pricing/admin.py`), which hands each committed change to `put`.
An instrument's trading status is derived here: HALTED when staff halted it, otherwise TRADING
inside one of its weekly sessions and CLOSED outside them; a clock re-derives it every second.

Groups, their instrument settings and the trading accounts are the account domain's: pricing
keeps a copy in its schema, fed by the account events (ADR 0006) through a durable JetStream
consumer. Each event is applied once (its id goes into `pricing.inbox` in the same transaction)
and only if newer than what is stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from typing import Any

from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform import schedule
from services.platform.db import Database
from services.platform.envelope import Event
from services.platform.inbox import EventConsumer
from services.platform.inbox import decode_known
from services.platform.inbox import first_time
from services.platform.messages import from_row
from services.platform.tasks import cancel_and_wait
from services.pricing import store
from services.pricing.engine import GroupConfig
from services.pricing.model import Markup
from services.pricing.model import MarkupKind
from tradingmesh.account.v1 import account_events_pb2
from tradingmesh.common.v1.pricing_pb2 import MarkupType
from tradingmesh.pricing.v1 import pricing_pb2

log = logging.getLogger(__name__)

CONSUMER = "pricing-reference"
_Event = (
    account_events_pb2.ClientGroupChanged
    | account_events_pb2.GroupInstrumentSettingsChanged
    | account_events_pb2.TradingAccountCreated
)
SUBJECTS: dict[str, type[_Event]] = {
    "account.client_group.changed": account_events_pb2.ClientGroupChanged,
    "account.client_group.instrument_settings_changed": (
        account_events_pb2.GroupInstrumentSettingsChanged
    ),
    "account.trading_account.created": account_events_pb2.TradingAccountCreated,
}
_KIND: dict[int, MarkupKind] = {
    MarkupType.MARKUP_TYPE_POINTS: MarkupKind.POINTS,
    MarkupType.MARKUP_TYPE_PERCENT: MarkupKind.PERCENT,
}
STATUS_CLOCK_SECONDS = 1.0


@dataclass(frozen=True)
class AccountRef:
    account_id: str
    user_id: str
    group_id: str


def _markup_kind(value: int) -> str:
    return _KIND.get(value, MarkupKind.POINTS).value


def trading_status(
    halted: bool, sessions: Iterable[pricing_pb2.TradingSession], now: datetime
) -> pricing_pb2.TradingStatus.ValueType:
    """The contract's status: a halt overrides the schedule; otherwise TRADING while `now`
    (UTC) is inside a session (its end minute excluded), else CLOSED."""
    if halted:
        return pricing_pb2.TRADING_STATUS_HALTED
    if schedule.is_open(sessions, now):
        return pricing_pb2.TRADING_STATUS_TRADING
    return pricing_pb2.TRADING_STATUS_CLOSED


def _sessions(stored: list[dict[str, Any]]) -> list[pricing_pb2.TradingSession]:
    return [from_row(pricing_pb2.TradingSession, session) for session in stored]


def instrument_from_row(row: Mapping[Any, Any], now: datetime) -> pricing_pb2.Instrument:
    """The contract's Instrument of a `pricing.instruments` row (`store.INSTRUMENT_COLUMNS`),
    with its trading status at `now`: the columns named as its fields, decimals as plain text."""
    stored = row["sessions"]
    sessions = _sessions(json.loads(stored) if isinstance(stored, str) else stored)
    halted = row["trading_status"] == "HALTED"
    return from_row(
        pricing_pb2.Instrument,
        row,
        base_currency=row["base_currency"].strip(),
        quote_currency=row["quote_currency"].strip(),
        sessions=sessions,
        trading_status=trading_status(halted, sessions, now),
        halt_reason=row["halt_reason"] if halted else "",
        update_time=row["updated_at"],
    )


class Reference:
    """In-memory copy of the reference data, loaded at start and kept current by events."""

    def __init__(self, db: Database, durable: str = CONSUMER, per_instance: bool = False) -> None:
        """`durable`, `per_instance`: this instance's own consumer when each instance reads the
        whole stream (several instances, ADR 0017); an event another instance applied first
        still refreshes what this one holds."""
        self.db = db
        self.per_instance = per_instance
        self.instruments: dict[str, pricing_pb2.Instrument] = {}
        # Shared with the engine's wiring and the stream hub, so it is only ever updated in place.
        self.digits: dict[str, int] = {}
        self.versions: dict[str, int] = {}  # symbol -> the row version held here
        self.groups: dict[str, GroupConfig] = {}
        self.accounts: dict[str, AccountRef] = {}
        self.on_groups_changed: Callable[[], None] = lambda: None
        self.on_instruments_changed: Callable[[], None] = lambda: None
        self.consumer = EventConsumer(
            durable,
            "account.>",
            db,
            self.handle,
            events=SUBJECTS.__contains__,  # not the ledger's envelopes: no transaction for them
            on_changes=self.reload_groups,
        )
        self._clock: asyncio.Task[None] | None = None

    async def load(self) -> None:
        async with self.db.read_session() as session:
            await self._load_instruments(session)
            await self._load_groups(session)
            rows = await store.load_accounts(session)
            self.accounts = {r[0]: AccountRef(r[0], r[1], r[2]) for r in rows}

    async def _load_instruments(self, session: AsyncSession) -> None:
        rows = await store.load_instruments(session)
        now = datetime.now(UTC)
        instruments, versions = {}, {}
        for r in rows:
            instruments[r["symbol"]] = instrument_from_row(r, now)
            versions[r["symbol"]] = int(r["version"])
        self.instruments = instruments
        self.versions = versions
        self.digits.clear()
        self.digits.update({s: i.digits for s, i in instruments.items()})

    async def _load_groups(self, session: AsyncSession) -> None:
        defaults = await store.load_group_markups(session)
        offers = await store.load_group_offers(session)
        markups: dict[str, dict[str, Markup]] = {g: {} for g in defaults}
        for group_id, symbol, markup in offers:
            if group_id not in defaults or symbol not in self.instruments:
                continue
            markups[group_id][symbol] = markup if markup is not None else defaults[group_id]
        self.groups = {g: GroupConfig(g, m) for g, m in markups.items()}

    def account(self, account_id: str) -> AccountRef | None:
        return self.accounts.get(account_id)

    def offered(self, group_id: str, symbol: str) -> bool:
        group = self.groups.get(group_id)
        return group is not None and symbol in group.markups

    # -- instrument changes --------------------------------------------------------------------

    def put(self, instrument: pricing_pb2.Instrument, version: int) -> bool:
        """Takes a committed change of one instrument (its row's `version`); False, changing
        nothing, when the copy here is as new already (two changes may finish out of order)."""
        symbol = instrument.symbol
        if self.versions.get(symbol, 0) >= version:
            return False
        self.instruments[symbol] = instrument
        self.versions[symbol] = version
        self.digits[symbol] = instrument.digits
        self.on_instruments_changed()
        return True

    def refresh_statuses(self, now: datetime) -> list[str]:
        """Re-derives each instrument's status at `now` (a session opened or closed); the
        symbols whose status changed."""
        changed = []
        for symbol, instrument in list(self.instruments.items()):
            halted = instrument.trading_status == pricing_pb2.TRADING_STATUS_HALTED
            status = trading_status(halted, instrument.sessions, now)
            if status != instrument.trading_status:
                fresh = pricing_pb2.Instrument()
                fresh.CopyFrom(instrument)
                fresh.trading_status = status
                self.instruments[symbol] = fresh  # replaced, never changed under a reader
                changed.append(symbol)
        return changed

    async def reload_groups(self) -> None:
        """Re-reads the groups' offers (from the primary: a replica may lag) and tells the
        engine. Needed after an instrument is created too, since offers of unknown symbols are
        skipped when loading."""
        async with self.db.transaction() as session:
            await self._load_groups(session)
        self.on_groups_changed()

    # -- events --------------------------------------------------------------------------------

    async def start(self, js: JetStreamContext) -> None:
        await self.consumer.start(js)
        self._clock = asyncio.create_task(self._status_clock(), name="pricing-status-clock")

    async def stop(self) -> None:
        await self.consumer.stop()
        await cancel_and_wait(self._clock)

    async def _status_clock(self) -> None:
        while True:
            await asyncio.sleep(STATUS_CLOCK_SECONDS)
            self.refresh_statuses(datetime.now(UTC))

    async def handle(self, session: AsyncSession, message: Event) -> bool:
        """One account event (other subjects are skipped); True if the groups' pricing may have
        changed, so the consumer reloads the groups after the batch."""
        event = decode_known(message.subject, message.data, SUBJECTS)
        if event is None:
            return False
        return await self.apply(session, message.subject, event)

    async def apply(self, session: AsyncSession, subject: str, event: _Event) -> bool:
        """Applies one event once in the transaction; True if the groups' pricing may have
        changed."""
        version = event.metadata.occurred_at.ToMicroseconds()
        if not await first_time(session, "pricing", event.metadata.event_id, subject):
            if not self.per_instance:
                return False  # seen before
            if isinstance(event, account_events_pb2.TradingAccountCreated):
                account = event.account
                self.accounts[account.id] = AccountRef(
                    account.id, account.user_id, account.group_id
                )
                return False
            return True  # applied by another instance: the groups are read again
        if isinstance(event, account_events_pb2.ClientGroupChanged):
            group = event.client_group
            await store.save_group(
                session,
                group_id=group.id,
                name=group.name,
                markup_type=_markup_kind(group.spread_markup_type),
                markup=Decimal(group.spread_markup or "0"),
                version=version,
            )
            return True
        if isinstance(event, account_events_pb2.GroupInstrumentSettingsChanged):
            settings = event.settings
            override = settings.HasField("spread_markup")
            await store.save_group_instrument(
                session,
                group_id=settings.group_id,
                symbol=settings.symbol,
                enabled=settings.enabled,
                markup_type=_markup_kind(settings.spread_markup_type) if override else None,
                markup=Decimal(settings.spread_markup) if override else None,
                version=version,
            )
            return True
        account = event.account
        await store.insert_account(
            session, account_id=account.id, user_id=account.user_id, group_id=account.group_id
        )
        self.accounts[account.id] = AccountRef(account.id, account.user_id, account.group_id)
        return False

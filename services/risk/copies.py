"""The risk service's copies of other domains' data, fed by their events (ADR 0007, "State").

Three durable consumers (`EventConsumer`: a batch of events per transaction, its inbox rows
claimed in one statement), each event starting with the inbox (`first_time`), so a redelivered
event changes nothing; what the transaction stored is then taken into memory (`RiskState`),
only after the commit:

- `risk-accounts` on account.>: trading accounts (created, status changed), client groups and
  their instrument settings, and ledger entries: the balance after each entry (only if its
  sequence is newer), and, for an entry booking a trade's realized P&L or commission, the end of
  that amount's "executed but not yet booked" life;
- `risk-instruments` on pricing.instrument.>: contract size, margin rate, currencies, sessions
  and halts, applied only if the row version is newer;
- `risk-trading` on oms.>: positions (opened, changed, closed; only if newer by version), trades
  (their realized P&L and commission count until the ledger books them), swaps charged at a
  rollover (counted the same way, as `risk.trades` rows keyed by the charge id, until the SWAP
  entry naming the charge arrives), rollovers completed (the day's snapshots become due,
  `snapshots.py`), and STP hedge fills (the broker's coverage). One consumer keeps a fill's
  trade and position events in the order the OMS committed them.

Reservations (`holds.py`) end here too, in memory only: an order's trade releases its share of
the order's margin (after its position event, which the OMS commits first); an order rejected,
cancelled, expired or resting (a working order that is not a market order in STP) releases the
rest; a withdrawal's ledger entry releases the withdrawal. These order events need no inbox row:
releasing twice changes nothing.

Several instances of the service (ADR 0017): each reads the three streams with durables of its
own (`durable`: `risk-accounts-2`, ...), so every instance's working set is complete. The first
instance to claim an envelope applies it to the stores as above; another finds it claimed and
takes into memory what the stores hold now for what the event touched (`_refresh`), and its
order events release its own reservations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import date
from decimal import Decimal
from functools import partial
from typing import Any
from typing import Final
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.copies import ACCOUNT_SUBJECTS
from services.platform.copies import INSTRUMENT_SUBJECTS
from services.platform.copies import AccountCopy
from services.platform.copies import Copy
from services.platform.copies import GroupCopy
from services.platform.copies import GroupInstrumentCopy
from services.platform.copies import columns
from services.platform.copies import copy_of
from services.platform.db import Database
from services.platform.envelope import Event
from services.platform.inbox import EventConsumer
from services.platform.inbox import EventConsumers
from services.platform.inbox import Handler
from services.platform.inbox import Outcome
from services.platform.inbox import UndeliverableError
from services.platform.inbox import decode_known
from services.platform.inbox import first_time
from services.risk import store
from services.risk.model import Position
from services.risk.model import Side
from services.risk.model import UnbookedTrade
from services.risk.state import RiskState
from tradingmesh.account.v1 import account_events_pb2 as account_events
from tradingmesh.common.v1 import ledger_pb2
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.exact import decimal_field
from tradingmesh.exact import parse_decimal
from tradingmesh.oms.v1 import oms_events_pb2 as oms_events
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.pricing.v1 import pricing_events_pb2 as pricing_events

__all__ = ["Copies"]

_T = TypeVar("_T")
log = logging.getLogger(__name__)

SCHEMA: Final = "risk"
# The trading and account consumers batch what arrives within this long (`EventConsumer`'s
# linger, ADR 0009): an order's margin stays reserved until its trade is here (`holds.py`).
LINGER_SECONDS: Final = 0.3
_ZERO: Final = Decimal(0)
_BOOKS_PNL: Final = frozenset(
    {ledger_pb2.LEDGER_ENTRY_REASON_REALIZED_PNL, ledger_pb2.LEDGER_ENTRY_REASON_STOP_OUT_LOSS}
)
_BOOKS_COMMISSION: Final = ledger_pb2.LEDGER_ENTRY_REASON_COMMISSION
_BOOKS_SWAP: Final = ledger_pb2.LEDGER_ENTRY_REASON_SWAP

_ACCOUNT_SUBJECTS: Final[dict[str, type[Message]]] = {
    **ACCOUNT_SUBJECTS,
    "account.ledger_entry.posted": account_events.LedgerEntryPosted,
}
_INSTRUMENT_SUBJECTS: Final[dict[str, type[Message]]] = dict(INSTRUMENT_SUBJECTS)
_TRADING_SUBJECTS: Final[dict[str, type[Message]]] = {
    "oms.position.opened": oms_events.PositionOpened,
    "oms.position.changed": oms_events.PositionChanged,
    "oms.position.closed": oms_events.PositionClosed,
    "oms.trade.executed": oms_events.TradeExecuted,
    "oms.hedge_order.filled": oms_events.HedgeOrderFilled,
    "oms.position.swap_charged": oms_events.PositionSwapCharged,
    "oms.rollover.completed": oms_events.RolloverCompleted,
}

# Order events that end an order's margin reservation (activated: only for an order that rests).
_RELEASING_SUBJECTS: Final[dict[str, type[Message]]] = {
    "oms.order.rejected": oms_events.OrderRejected,
    "oms.order.cancelled": oms_events.OrderCancelled,
    "oms.order.expired": oms_events.OrderExpired,
    "oms.order.activated": oms_events.OrderActivated,
}

# What a committed change does to memory, run after the commit.
Commit = Callable[[], None]


_TRADING_BATCH: Final = "risk_trading_batch"  # session.info: this transaction's _TradingBatch


@dataclass
class _TradingBatch:
    """What a transaction's trading events carry, written together before its commit; what was
    stored (newest position version stored per id, the trades' unbooked amounts) for memory."""

    positions: list[Position] = field(default_factory=list)
    trades: list[store.ExecutedTrade] = field(default_factory=list)
    swaps: list[store.ChargedSwap] = field(default_factory=list)
    stored_positions: dict[str, int] = field(default_factory=dict)
    unbooked: dict[str, UnbookedTrade] = field(default_factory=dict)


def _batch(session: AsyncSession) -> _TradingBatch:
    batch = session.info.get(_TRADING_BATCH)
    if batch is None:
        batch = session.info[_TRADING_BATCH] = _TradingBatch()
    return batch


def _decode(message: Event, subjects: dict[str, type[Message]]) -> Message | None:
    return decode_known(message.subject, message.data, subjects)


def position_of(message: oms_pb2.Position) -> Position:
    """The contract's Position as risk keeps it."""
    return Position(
        id=message.id,
        account_id=message.account_id,
        symbol=message.symbol,
        side=Side.from_proto(message.side),
        quantity=decimal_field(message, "quantity", _ZERO),
        # A closed position's open price is not needed, and may be left out.
        open_price=decimal_field(message, "open_price", _ZERO),
        open_time=message.open_time.ToDatetime(tzinfo=UTC),
        version=message.version,
        is_open=message.status == oms_pb2.POSITION_STATUS_OPEN,
    )


class Copies(EventConsumers):
    """The consumers and what they apply; `start` after the state is loaded."""

    def __init__(
        self,
        db: Database,
        state: RiskState,
        snapshots_due: Callable[[], None] = lambda: None,
        *,
        durable: Callable[[str], str] | None = None,
    ) -> None:
        """`durable`: the consumers' names for this instance when each instance reads the
        whole streams (several instances, ADR 0017); None: one shared consumer each."""
        self.db = db
        self.state = state
        self.snapshots_due = snapshots_due
        name = durable or (lambda consumer: consumer)
        elsewhere = self._refresh if durable is not None else None
        # An instance's reservations cover only the orders it checked. An account's checks all
        # go to one instance (ADR 0017 "Account affinity"), but move when it stops or comes
        # back: the others must then see an order's trade and position as soon as it is
        # stored, so no batch waits to gather more.
        linger = LINGER_SECONDS if durable is None else 0.0
        # What every consumer shares: the database, the inbox, another instance's claims.
        consumer = partial(EventConsumer, db=db, inbox=SCHEMA, elsewhere=elsewhere)
        self.consumers = [
            consumer(
                name("risk-accounts"),
                "account.>",
                handle=self._consume(_ACCOUNT_SUBJECTS),
                events=_ACCOUNT_SUBJECTS.__contains__,
                claims=_ACCOUNT_SUBJECTS.__contains__,
                linger=linger,
            ),
            consumer(
                name("risk-instruments"),
                "pricing.instrument.>",
                handle=self._consume(_INSTRUMENT_SUBJECTS),
                claims=_INSTRUMENT_SUBJECTS.__contains__,
            ),
            consumer(
                name("risk-trading"),
                "oms.>",
                handle=self._consume_trading,
                claims=_TRADING_SUBJECTS.__contains__,
                linger=linger,
                before_commit=self._write_trading,
            ),
        ]

    def _consume(self, subjects: dict[str, type[Message]]) -> Handler:
        async def handle(session: AsyncSession, message: Event) -> Outcome:
            event = _decode(message, subjects)
            if event is None:
                return False  # a subject risk does not follow
            return await self.apply(session, message.subject, event)

        return handle

    async def _consume_trading(self, session: AsyncSession, message: Event) -> Outcome:
        ending = _decode(message, _RELEASING_SUBJECTS)
        if ending is not None:
            order = ending.order  # type: ignore[attr-defined]
            if (
                message.subject == "oms.order.activated"
                and order.type == trading_pb2.ORDER_TYPE_MARKET
            ):
                return False  # a market order working in STP: its margin is spent once hedged
            holds = self.state.holds
            return lambda: holds.release_order(order.id)
        event = _decode(message, _TRADING_SUBJECTS)
        if event is None:
            return False
        return await self.apply(session, message.subject, event)

    async def apply(self, session: AsyncSession, subject: str, event: Message) -> Outcome:
        """Applies one event once in the transaction; what to take into memory after the
        commit, or False when nothing changed."""
        metadata = event.metadata  # type: ignore[attr-defined]
        if not await first_time(session, SCHEMA, metadata.event_id, subject):
            return False
        commit = await self._store(session, event)
        return False if commit is None else commit

    async def _store(self, session: Any, event: Message) -> Commit | None:
        """Writes the event's change in the open transaction; returns what to do in memory
        after the commit, or None when nothing changed."""
        state = self.state
        copied = _copy(copy_of, event)
        if copied is not None:
            return await self._save_copy(session, *copied)
        if isinstance(event, account_events.LedgerEntryPosted):
            return await self._ledger_entry(session, event)
        if isinstance(
            event,
            oms_events.PositionOpened | oms_events.PositionChanged | oms_events.PositionClosed,
        ):
            # Written with the transaction's other positions (`_write_trading`).
            position = position_of(event.position)
            batch = _batch(session)
            batch.positions.append(position)

            def positioned() -> None:
                if batch.stored_positions.get(position.id) == position.version:
                    state.put_position(position)

            return positioned
        if isinstance(event, oms_events.TradeExecuted):
            trade = event.trade
            quantity = parse_decimal(trade.quantity)
            batch = _batch(session)
            batch.trades.append(
                store.ExecutedTrade(
                    trade.id,
                    trade.account_id,
                    trade.order_id,
                    quantity,
                    decimal_field(trade, "realized_pnl", _ZERO),
                    decimal_field(trade, "commission", _ZERO),
                )
            )

            def traded() -> None:
                unbooked = batch.unbooked.get(trade.id)
                if unbooked is not None:
                    state.put_unbooked(unbooked)
                state.holds.order_filled(trade.order_id, quantity)

            return traded
        if isinstance(event, oms_events.PositionSwapCharged):
            # Counts in the balance until the ledger books it, like a trade's P&L (ADR 0010).
            position = position_of(event.position)
            batch = _batch(session)
            batch.positions.append(position)
            charge = store.ChargedSwap(
                event.charge_id, event.position.account_id, parse_decimal(event.swap)
            )
            batch.swaps.append(charge)

            def charged() -> None:
                if batch.stored_positions.get(position.id) == position.version:
                    state.put_position(position)
                unbooked = batch.unbooked.get(charge.charge_id)
                if unbooked is not None:
                    state.put_unbooked(unbooked)

            return charged
        if isinstance(event, oms_events.RolloverCompleted):
            rollover = event.rollover
            await store.record_snapshots_due(
                session,
                date.fromisoformat(rollover.trading_date),
                rollover.rollover_time.ToDatetime(tzinfo=UTC),
            )
            return self.snapshots_due
        if isinstance(event, oms_events.HedgeOrderFilled):
            hedge = event.hedge_order
            side = Side.from_proto(hedge.side)
            quantity = parse_decimal(event.fill_quantity)
            fresh = await store.save_hedge_fill(
                session,
                hedge.id,
                event.lp_execution_id,
                hedge.symbol,
                side,
                quantity,
                event.fill_time.ToDatetime(tzinfo=UTC),
            )
            signed = quantity if side is Side.BUY else quantity.copy_negate()
            return (lambda: state.add_coverage(hedge.symbol, signed)) if fresh else None
        raise UndeliverableError(f"no rule applies {type(event).__name__}")

    async def _refresh(self, session: AsyncSession, message: Event) -> Outcome:
        """An event another instance applied to the stores (its envelope was claimed): what it
        touched, as stored now, into memory after the commit; an order's end releases this
        instance's reservation as in `_consume_trading`."""
        ending = _decode(message, _RELEASING_SUBJECTS)
        if ending is not None:
            return await self._consume_trading(session, message)
        event = _decode(message, _ACCOUNT_SUBJECTS | _INSTRUMENT_SUBJECTS | _TRADING_SUBJECTS)
        if event is None:
            return False
        state, stored = self.state, store.Stored(session)
        puts: list[Commit] = []

        def put_stored(value: _T | None, put: Callable[[_T], None]) -> None:
            if value is not None:  # None: gone since, or not of this instance's concern
                puts.append(partial(put, value))

        if isinstance(
            event,
            account_events.TradingAccountCreated | account_events.TradingAccountStatusChanged,
        ):
            put_stored(await stored.account(event.account.id), state.put_account)
        elif isinstance(event, account_events.ClientGroupChanged):
            put_stored(await stored.group(event.client_group.id), state.put_group)
        elif isinstance(event, account_events.GroupInstrumentSettingsChanged):
            put_stored(
                await stored.group_instrument(event.settings.group_id, event.settings.symbol),
                state.put_group_instrument,
            )
        elif isinstance(event, account_events.LedgerEntryPosted):
            entry = event.entry
            put_stored(await stored.account(entry.account_id), state.put_account)
            for booked in (entry.swap_charge_id, entry.trade_id):
                put_stored(await stored.trade(booked) if booked else None, state.put_unbooked)
            if entry.withdrawal_id:
                puts.append(partial(state.holds.release_withdrawal, entry.withdrawal_id))
        elif isinstance(
            event,
            pricing_events.InstrumentCreated
            | pricing_events.InstrumentUpdated
            | pricing_events.InstrumentTradingStatusChanged,
        ):
            put_stored(await stored.instrument(event.instrument.symbol), state.put_instrument)
        elif isinstance(
            event,
            oms_events.PositionOpened
            | oms_events.PositionChanged
            | oms_events.PositionClosed
            | oms_events.PositionSwapCharged,
        ):
            put_stored(await stored.position(event.position.id), state.put_position)
            if isinstance(event, oms_events.PositionSwapCharged):
                put_stored(await stored.trade(event.charge_id), state.put_unbooked)
        elif isinstance(event, oms_events.TradeExecuted):
            trade = event.trade
            put_stored(await stored.trade(trade.id), state.put_unbooked)
            quantity = parse_decimal(trade.quantity)
            puts.append(partial(state.holds.order_filled, trade.order_id, quantity))
        elif isinstance(event, oms_events.HedgeOrderFilled):
            symbol = event.hedge_order.symbol
            net = await stored.coverage(symbol)
            puts.append(partial(state.coverage.__setitem__, symbol, net))
        if not puts:
            return False

        def commit() -> None:
            for put in puts:
                put()

        return commit

    async def _write_trading(self, session: AsyncSession) -> None:
        """The positions and trades the transaction's events carried, ONE multi-row statement
        each (before the commit; memory follows after it, from what they stored)."""
        batch = session.info.pop(_TRADING_BATCH, None)
        if batch is None:
            return
        stored = await store.save_positions(session, batch.positions)
        for position in batch.positions:
            if position.id in stored:
                held = batch.stored_positions.get(position.id, 0)
                batch.stored_positions[position.id] = max(held, position.version)
        batch.unbooked.update(await store.save_trades(session, batch.trades))
        batch.unbooked.update(await store.save_swaps(session, batch.swaps))

    async def _ledger_entry(
        self, session: Any, event: account_events.LedgerEntryPosted
    ) -> Commit | None:
        entry = event.entry
        try:
            account = await store.save_balance(
                session, entry.account_id, parse_decimal(event.balance), entry.sequence
            )
        except LookupError:
            # The account's creation event is behind this one: have it redelivered.
            log.info("a ledger entry for an account not copied yet", extra={"entry": entry.id})
            raise
        unbooked = None
        if entry.swap_charge_id and entry.reason == _BOOKS_SWAP:
            unbooked = await store.save_booking(
                session, entry.swap_charge_id, entry.account_id, "", commission=False
            )
        elif entry.trade_id and (entry.reason in _BOOKS_PNL or entry.reason == _BOOKS_COMMISSION):
            unbooked = await store.save_booking(
                session,
                entry.trade_id,
                entry.account_id,
                entry.order_id,
                commission=entry.reason == _BOOKS_COMMISSION,
            )
        withdrawal = entry.withdrawal_id
        if account is None and unbooked is None and not withdrawal:
            return None

        def commit() -> None:
            if account is not None:
                self.state.put_account(account)
            if unbooked is not None:
                self.state.put_unbooked(unbooked)
            if withdrawal:  # the debit is in the balance now: its reservation ends
                self.state.holds.release_withdrawal(withdrawal)

        return commit

    async def _save_copy(self, session: Any, copy: Copy, version: int) -> Commit | None:
        """Stores the copy if `version` is newer than the stored one; what to take into memory
        after the commit, or None when it is not."""
        values, state = columns(copy), self.state
        if isinstance(copy, AccountCopy):
            account = await store.save_account(session, values, version)
            return None if account is None else partial(state.put_account, account)
        if isinstance(copy, GroupCopy):
            group = await store.save_group(session, values, version)
            return None if group is None else partial(state.put_group, group)
        if isinstance(copy, GroupInstrumentCopy):
            settings = await store.save_group_instrument(session, values, version)
            return None if settings is None else partial(state.put_group_instrument, settings)
        instrument = await store.save_instrument(
            session, {**values, "halted": copy.halted}, version
        )
        return None if instrument is None else partial(state.put_instrument, instrument)


_Read = TypeVar("_Read")
_Of = TypeVar("_Of", bound=Message)


def _copy(of: Callable[[_Of], _Read], message: _Of) -> _Read:
    """`of(message)`: a copy, or an event's version; an event lacking what a copy needs (or
    its occurred_at, which orders it) breaks its contract and is skipped, not redelivered
    (`services.platform.copies`)."""
    try:
        return of(message)
    except ValueError as error:
        raise UndeliverableError(str(error)) from error

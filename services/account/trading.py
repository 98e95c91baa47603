"""Booking the trading core's results to the ledger (ADR 0007, "Booking to the ledger: by event").

A fill is committed in the OMS first; its `oms.trade.executed` event then reaches the account
service, which posts, in one transaction:
- the trade's realized P&L as REALIZED_PNL, or as STOP_OUT_LOSS when a stop-out close lost money
  (statements show forced closes), and
- its commission as a COMMISSION debit,
each idempotent on (reason, "trade", trade id) and the event on its id (`account.inbox`). Both
may take the balance below zero: they are facts, not requests (`domain.NEGATIVE_ALLOWED`).

Each swap a rollover charges (`oms.position.swap_charged`, ADR 0010) is posted as SWAP, once
per charge (reason, "swap_charge", charge id), by a consumer of the same shape.

When the risk service ends a stop-out (`risk.account.stop_out_completed`) and the balance is
below zero, the broker's negative balance protection credits it back to exactly zero
(NEGATIVE_BALANCE_CORRECTION, once per margin event). The two events come through different
streams, so the correction waits (the event is redelivered) until every closing order it names
has its trades booked (`account.trade_bookings`, migration 0010).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from typing import Final
from typing import Generic
from typing import Protocol
from typing import TypeVar
from typing import cast

from google.protobuf.message import Message
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession

from services.account.audit import actor_of
from services.account.domain import Reason
from services.account.domain import minor_unit
from services.account.store.bookings import count_booked_orders
from services.account.store.bookings import record_bookings
from services.account.store.ledger import LockedBalance
from services.account.store.ledger import References
from services.account.store.ledger import lock_balance
from services.account.store.ledger import post
from services.platform.db import Database
from services.platform.envelope import Event
from services.platform.errors import DomainError
from services.platform.inbox import EventConsumer
from services.platform.inbox import UndeliverableError
from services.platform.inbox import decode_payload
from services.platform.inbox import first_time
from tradingmesh.common.v1.events_pb2 import EventMetadata
from tradingmesh.common.v1.trading_pb2 import OrderOrigin
from tradingmesh.exact import InvalidDecimalError
from tradingmesh.exact import parse_decimal
from tradingmesh.oms.v1 import oms_events_pb2
from tradingmesh.risk.v1 import risk_events_pb2

__all__ = [
    "Booking",
    "StopOutCorrections",
    "SwapBookings",
    "TradeBookings",
    "bookings_of",
    "correction_for",
    "swap_of",
]

log = logging.getLogger(__name__)
_E = TypeVar("_E", bound=Message)
_C = TypeVar("_C")  # what an event asks for, as its consumer's `check` reads it

TRADES_CONSUMER: Final = "account-trades"
TRADES_SUBJECT: Final = "oms.trade.executed"
_BOOKED: Final = "account_trade_bookings"  # session.info: this transaction's booked trades
# Trades are booked in batches of what arrives within this long (ADR 0009).
LINGER_SECONDS: Final = 0.5
SWAPS_CONSUMER: Final = "account-swaps"
SWAPS_SUBJECT: Final = "oms.position.swap_charged"
SWAP_REFERENCE: Final = "swap_charge"  # the ledger's reference_type of a SWAP entry
STOP_OUTS_CONSUMER: Final = "account-stop-outs"
STOP_OUTS_SUBJECT: Final = "risk.account.stop_out_completed"


@dataclass(frozen=True)
class Booking:
    """One ledger posting an event asks for (a trade may ask for two)."""

    reason: Reason
    amount: Decimal


def _amount(text: str, currency: str, field: str) -> Decimal:
    try:
        value = parse_decimal(text or "0")
    except InvalidDecimalError as error:
        raise ValueError(f"{field} {text!r}: {error}") from error
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > minor_unit(currency):
        raise ValueError(f"{field} {text!r} has more decimals than {currency} allows")
    return value


def bookings_of(event: oms_events_pb2.TradeExecuted) -> list[Booking]:
    """The postings of one executed trade, in the account currency; ValueError if the event
    breaks its contract (no trade id, an amount that is not the currency's money)."""
    trade = event.trade
    if not trade.id or not trade.account_id or not event.currency:
        raise ValueError("a TradeExecuted needs the trade's id, its account and a currency")
    pnl = _amount(trade.realized_pnl, event.currency, "realized_pnl")
    commission = _amount(trade.commission, event.currency, "commission")
    if commission < 0:
        raise ValueError(f"commission {trade.commission!r} is negative")
    bookings = []
    if pnl != 0:
        stop_out_loss = trade.origin == OrderOrigin.ORDER_ORIGIN_STOP_OUT and pnl < 0
        bookings.append(
            Booking(Reason.STOP_OUT_LOSS if stop_out_loss else Reason.REALIZED_PNL, pnl)
        )
    if commission != 0:
        bookings.append(Booking(Reason.COMMISSION, -commission))
    return bookings


def correction_for(balance: Decimal) -> Decimal | None:
    """What negative balance protection credits: exactly the deficit, or nothing."""
    return -balance if balance < 0 else None


def swap_of(event: oms_events_pb2.PositionSwapCharged) -> Decimal:
    """The amount a swap charge books (positive credits), in the account currency; ValueError
    if the event breaks its contract (no charge id, position or currency, not the currency's
    money)."""
    position = event.position
    if not event.charge_id or not position.id or not position.account_id or not event.currency:
        raise ValueError("a PositionSwapCharged needs its charge id, position, account, currency")
    return _amount(event.swap, event.currency, "swap")


async def _post(
    session: AsyncSession,
    locked: LockedBalance,
    metadata: EventMetadata,
    booking: Booking,
    *,
    reference_type: str,
    reference_id: str,
    description: str,
    references: References,
) -> None:
    """Posts a booking an event (its `metadata`) asks for to the account whose balance is
    `locked`: by the event's actor (this service when it names none), under its correlation
    id."""
    await post(
        session,
        account_id=locked.account_id,
        reason=booking.reason,
        amount=booking.amount,
        reference_type=reference_type,
        reference_id=reference_id,
        actor=metadata.actor if metadata.actor.kind else actor_of(None),
        description=description,
        references=references,
        correlation_id=metadata.correlation_id,
        locked=locked,
    )


class _Booked(Protocol):
    """What every event the ledger books carries."""

    @property
    def metadata(self) -> EventMetadata: ...


class _LedgerConsumer(Generic[_E, _C]):
    """A durable consumer (`EventConsumer` with `options`) whose events of type `payload` the
    ledger books once each, in the consumer's transaction: `check` (pure) reads what an event
    asks for, or raises ValueError when the event breaks its contract (it is undeliverable);
    an event seen before (`account.inbox`) books nothing; `book` posts. `start` once the
    resources are open, `stop` before they close."""

    def __init__(
        self, db: Database, name: str, subject: str, payload: type[_E], **options: Any
    ) -> None:
        self.db = db
        self._payload = payload
        self.consumer = EventConsumer(name, subject, db, self.handle, **options)

    async def handle(self, session: AsyncSession, message: Event) -> bool:
        event = decode_payload(message.subject, message.data, self._payload, needs_id=True)
        try:
            checked = self.check(event)
        except ValueError as error:
            raise UndeliverableError(f"{message.subject}: {error}") from error
        event_id = cast(_Booked, event).metadata.event_id
        if not await first_time(session, "account", event_id, message.subject):
            return False
        return await self.book(session, event, checked)

    def check(self, event: _E) -> _C:
        """What the event asks for; ValueError when it breaks its contract."""
        raise NotImplementedError

    async def book(self, session: AsyncSession, event: _E, checked: _C) -> bool:
        """Books the event (seen for the first time); False when it books nothing."""
        raise NotImplementedError

    async def start(self, js: JetStreamContext) -> None:
        await self.consumer.start(js)

    async def stop(self) -> None:
        await self.consumer.stop()


def _check_ids(*values: str) -> None:
    """ValueError unless each value is a UUID (an id the event's contract requires)."""
    for value in values:
        uuid.UUID(value)


async def _locked(
    session: AsyncSession, account_id: uuid.UUID, what: str, currency: str | None = None
) -> LockedBalance:
    """The account's balance, locked; `what` ("trade <id>") is undeliverable to an account
    that does not exist, or in another `currency` than the account's."""
    try:
        locked = await lock_balance(session, account_id)
    except DomainError as error:
        raise UndeliverableError(f"{what}: {error.message}") from error
    if currency is not None and locked.currency != currency:
        raise UndeliverableError(
            f"{what} is in {currency}, account {account_id} in {locked.currency}"
        )
    return locked


class TradeBookings(_LedgerConsumer[oms_events_pb2.TradeExecuted, list[Booking]]):
    """Books `oms.trade.executed`."""

    def __init__(self, db: Database) -> None:
        super().__init__(
            db,
            TRADES_CONSUMER,
            TRADES_SUBJECT,
            oms_events_pb2.TradeExecuted,
            inbox="account",
            linger=LINGER_SECONDS,
            before_commit=write_bookings,
        )

    def check(self, event: oms_events_pb2.TradeExecuted) -> list[Booking]:
        bookings = bookings_of(event)
        _check_ids(event.trade.account_id, event.trade.id, event.trade.order_id)
        return bookings

    async def book(
        self,
        session: AsyncSession,
        event: oms_events_pb2.TradeExecuted,
        bookings: list[Booking],
    ) -> bool:
        trade = event.trade
        account_id = uuid.UUID(trade.account_id)
        locked = await _locked(session, account_id, f"trade {trade.id}", event.currency)
        refs = References(
            order_id=trade.order_id, trade_id=trade.id, position_id=trade.position_id or None
        )
        for booking in bookings:
            await _post(
                session,
                locked,
                event.metadata,
                booking,
                reference_type="trade",
                reference_id=trade.id,
                description=f"{trade.symbol} trade {trade.id}",
                references=refs,
            )
        # Recorded with the batch's other bookings, one statement (`write_bookings`).
        session.info.setdefault(_BOOKED, []).append(
            {"trade_id": trade.id, "order_id": trade.order_id, "account_id": account_id}
        )
        log.info(
            "trade booked",
            extra={"trade_id": trade.id, "account_id": str(account_id), "postings": len(bookings)},
        )
        return True


async def write_bookings(session: AsyncSession) -> None:
    """The trades the transaction booked, in `account.trade_bookings` with ONE statement (what
    a stop-out's correction waits for)."""
    booked = session.info.pop(_BOOKED, None)
    if booked:
        await record_bookings(session, booked)


class SwapBookings(_LedgerConsumer[oms_events_pb2.PositionSwapCharged, Decimal]):
    """Books `oms.position.swap_charged` as SWAP (ADR 0010): one posting per charge, idempotent
    on (SWAP, "swap_charge", charge id) and the envelope in the inbox; a batch of what arrives
    within LINGER_SECONDS per transaction, like the trade bookings (ADR 0009). A swap may take
    the balance below zero (a fact, like commission). `start` once the resources are open,
    `stop` before they close."""

    def __init__(self, db: Database) -> None:
        super().__init__(
            db,
            SWAPS_CONSUMER,
            SWAPS_SUBJECT,
            oms_events_pb2.PositionSwapCharged,
            inbox="account",
            linger=LINGER_SECONDS,
        )

    def check(self, event: oms_events_pb2.PositionSwapCharged) -> Decimal:
        amount = swap_of(event)
        _check_ids(event.position.account_id, event.charge_id, event.position.id)
        return amount

    async def book(
        self, session: AsyncSession, event: oms_events_pb2.PositionSwapCharged, amount: Decimal
    ) -> bool:
        position = event.position
        account_id = uuid.UUID(position.account_id)
        locked = await _locked(session, account_id, f"swap {event.charge_id}", event.currency)
        if amount == 0:
            return False
        await _post(
            session,
            locked,
            event.metadata,
            Booking(Reason.SWAP, amount),
            reference_type=SWAP_REFERENCE,
            reference_id=event.charge_id,
            description=f"{position.symbol} swap {event.trading_date or ''}".rstrip(),
            references=References(position_id=position.id),
        )
        log.info(
            "swap booked",
            extra={"charge_id": event.charge_id, "account_id": str(account_id)},
        )
        return True


class StopOutCorrections(_LedgerConsumer[risk_events_pb2.StopOutCompleted, list[str]]):
    """Credits a balance a stop-out left negative back to zero, once per stop-out."""

    def __init__(self, db: Database) -> None:
        super().__init__(
            db, STOP_OUTS_CONSUMER, STOP_OUTS_SUBJECT, risk_events_pb2.StopOutCompleted
        )

    def check(self, event: risk_events_pb2.StopOutCompleted) -> list[str]:
        """The closing orders (ids) the correction waits for."""
        margin_event = event.margin_event
        _check_ids(margin_event.account_id, margin_event.id)
        return sorted({str(uuid.UUID(o)) for o in margin_event.closing_order_ids})

    async def book(
        self, session: AsyncSession, event: risk_events_pb2.StopOutCompleted, closing: list[str]
    ) -> bool:
        margin_event = event.margin_event
        account_id = uuid.UUID(margin_event.account_id)
        if closing:
            missing = len(closing) - await count_booked_orders(session, closing)
            if missing:
                # Redelivered shortly: the closing trades' own events are still on their way.
                raise RuntimeError(
                    f"stop-out {margin_event.id}: {missing} closing orders not booked yet"
                )
        locked = await _locked(session, account_id, f"stop-out {margin_event.id}")
        credit = correction_for(locked.balance)
        if credit is None:
            return False
        await _post(
            session,
            locked,
            event.metadata,
            Booking(Reason.NEGATIVE_BALANCE_CORRECTION, credit),
            reference_type="margin_event",
            reference_id=margin_event.id,
            description=f"negative balance protection after stop-out {margin_event.id}",
            references=References(),
        )
        log.info(
            "negative balance corrected",
            extra={"account_id": str(account_id), "margin_event_id": margin_event.id},
        )
        return True

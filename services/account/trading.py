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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Generic, TypeVar

from google.protobuf.message import Message
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession

from services.account.audit import actor_of
from services.account.domain import Reason, minor_unit
from services.account.ledger import LockedBalance, References, lock_balance, post
from services.account.store.bookings import count_booked_orders, record_bookings
from services.platform.db import Database
from services.platform.envelope import Event
from services.platform.errors import DomainError
from services.platform.inbox import EventConsumer, UndeliverableError, decode_payload, first_time
from tradingmesh.common.v1.trading_pb2 import OrderOrigin
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.exact import InvalidDecimalError, parse_decimal
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
    """One ledger posting a trade asks for."""

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


def _actor(event_actor: Actor) -> Actor:
    return event_actor if event_actor.kind else actor_of(None)


class _LedgerConsumer(Generic[_E]):
    """A durable consumer (`EventConsumer` with `options`) whose events of type `payload` the
    ledger books (`book`, in the consumer's transaction); `start` once the resources are open,
    `stop` before they close."""

    def __init__(
        self, db: Database, name: str, subject: str, payload: type[_E], **options: Any
    ) -> None:
        self.db = db
        self._payload = payload
        self.consumer = EventConsumer(name, subject, db, self.handle, **options)

    async def handle(self, session: AsyncSession, message: Event) -> bool:
        event = decode_payload(message.subject, message.data, self._payload, needs_id=True)
        return await self.book(session, message, event)

    async def book(self, session: AsyncSession, message: Event, event: _E) -> bool:
        """Books the event; False when it was booked before or books nothing."""
        raise NotImplementedError

    async def start(self, js: JetStreamContext) -> None:
        await self.consumer.start(js)

    async def stop(self) -> None:
        await self.consumer.stop()


@contextmanager
def _by_contract(message: Event) -> Iterator[None]:
    """An event that breaks its contract (ValueError) is undeliverable."""
    try:
        yield
    except ValueError as error:
        raise UndeliverableError(f"{message.subject}: {error}") from error


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


class TradeBookings(_LedgerConsumer[oms_events_pb2.TradeExecuted]):
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

    async def book(
        self, session: AsyncSession, message: Event, event: oms_events_pb2.TradeExecuted
    ) -> bool:
        with _by_contract(message):
            bookings = bookings_of(event)
            account_id = uuid.UUID(event.trade.account_id)
            uuid.UUID(event.trade.id), uuid.UUID(event.trade.order_id)
        trade = event.trade
        if not await first_time(session, "account", event.metadata.event_id, message.subject):
            return False
        locked = await _locked(session, account_id, f"trade {trade.id}", event.currency)
        refs = References(
            order_id=trade.order_id, trade_id=trade.id, position_id=trade.position_id or None
        )
        for booking in bookings:
            await post(
                session,
                account_id=account_id,
                reason=booking.reason,
                amount=booking.amount,
                reference_type="trade",
                reference_id=trade.id,
                actor=_actor(event.metadata.actor),
                description=f"{trade.symbol} trade {trade.id}",
                references=refs,
                correlation_id=event.metadata.correlation_id,
                locked=locked,
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


class SwapBookings(_LedgerConsumer[oms_events_pb2.PositionSwapCharged]):
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

    async def book(
        self, session: AsyncSession, message: Event, event: oms_events_pb2.PositionSwapCharged
    ) -> bool:
        with _by_contract(message):
            amount = swap_of(event)
            account_id = uuid.UUID(event.position.account_id)
            uuid.UUID(event.charge_id), uuid.UUID(event.position.id)
        if not await first_time(session, "account", event.metadata.event_id, message.subject):
            return False
        position = event.position
        locked = await _locked(session, account_id, f"swap {event.charge_id}", event.currency)
        if amount == 0:
            return False
        await post(
            session,
            account_id=account_id,
            reason=Reason.SWAP,
            amount=amount,
            reference_type=SWAP_REFERENCE,
            reference_id=event.charge_id,
            actor=_actor(event.metadata.actor),
            description=f"{position.symbol} swap {event.trading_date or ''}".rstrip(),
            references=References(position_id=position.id),
            correlation_id=event.metadata.correlation_id,
            locked=locked,
        )
        log.info(
            "swap booked",
            extra={"charge_id": event.charge_id, "account_id": str(account_id)},
        )
        return True


class StopOutCorrections(_LedgerConsumer[risk_events_pb2.StopOutCompleted]):
    """Credits a balance a stop-out left negative back to zero, once per stop-out."""

    def __init__(self, db: Database) -> None:
        super().__init__(
            db, STOP_OUTS_CONSUMER, STOP_OUTS_SUBJECT, risk_events_pb2.StopOutCompleted
        )

    async def book(
        self, session: AsyncSession, message: Event, event: risk_events_pb2.StopOutCompleted
    ) -> bool:
        margin_event = event.margin_event
        with _by_contract(message):
            account_id = uuid.UUID(margin_event.account_id)
            closing = sorted({str(uuid.UUID(o)) for o in margin_event.closing_order_ids})
            uuid.UUID(margin_event.id)
        if not await first_time(session, "account", event.metadata.event_id, message.subject):
            return False
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
        await post(
            session,
            account_id=account_id,
            reason=Reason.NEGATIVE_BALANCE_CORRECTION,
            amount=credit,
            reference_type="margin_event",
            reference_id=margin_event.id,
            actor=_actor(event.metadata.actor),
            description=f"negative balance protection after stop-out {margin_event.id}",
            correlation_id=event.metadata.correlation_id,
            locked=locked,
        )
        log.info(
            "negative balance corrected",
            extra={"account_id": str(account_id), "margin_event_id": margin_event.id},
        )
        return True

"""The rollover job: each trading day's swaps, exactly once per position (ADR 0010).

One background task per OMS process (`RolloverJob`), like the expiry sweeper. Every
`PASS_SECONDS`, and at once when `RunRollover` starts one:

1. When `auto` is on, the latest trading day whose rollover instant has passed is started
   (`oms.rollovers`, once; `domain.swaps.RolloverClock`).
2. Each rollover not completed is worked: the accounts holding a position opened before its
   instant, still open and not charged for its day are taken `BATCH_ACCOUNTS` at a time, in
   account id order, and charged in ONE transaction per batch. Per account, under its lock
   (`AccountChange.opened`): its uncharged positions are read (locked), each gets its swap
   (`domain.swaps.swap_amount`: the group's or the instrument's terms, the nights, the live
   price and conversion where needed), and the change writes the position's new swap and
   version, an audit record (SWAP_CHARGED), an `oms.position.swap_charged` event (one envelope
   per account, the outbox) and a row of `oms.swap_charges` (key: position and day) for every
   position looked at (amount 0 where no terms apply: nothing else is written for it).
3. When no account is left, the rollover is marked completed and `oms.rollover.completed`
   announced, in one transaction; only the run whose UPDATE marks it completed announces it.

Exactly once: a charge commits with its key row or not at all; whatever a killed run committed
is found by the next (the positions read exclude charged ones, under the account's lock), and the
key refuses a second row. So several processes may work one rollover; they wait on each other's
account locks and charge each position once. A position whose swap needs a price that is not
live (percent terms, or a conversion) is left for the next pass, and the rollover stays RUNNING
until it is charged.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import date
from datetime import datetime
from decimal import Decimal
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.domain import swaps
from services.oms.domain.positions import close_price
from services.oms.entry import execution
from services.oms.feeds.quotes import QuoteBook
from services.oms.model import Account
from services.oms.model import Instrument
from services.oms.model import PositionRow
from services.oms.rollover import store
from services.oms.rollover.store import RolloverRow
from services.oms.store import events
from services.oms.store.changes import AccountChange
from services.oms.store.changes import load_account
from services.oms.store.events import system_actor
from services.oms.store.reference import load_instruments
from services.platform.db import Database
from services.platform.outbox import add_event
from services.platform.resources import Resources
from services.platform.settings import EnvReader
from services.platform.settings import whole_number
from services.platform.tasks import Repeating
from tradingmesh.common.v1.events_pb2 import EventMetadata
from tradingmesh.oms.v1 import oms_events_pb2
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.trading.money import IDENTITY
from tradingmesh.trading.money import Conversion
from tradingmesh.trading.money import money_text

__all__ = ["PASS_SECONDS", "RolloverConfig", "RolloverJob", "rollover_proto"]

log = logging.getLogger(__name__)

PASS_SECONDS: Final = 5.0
BATCH_ACCOUNTS: Final = 50
ACTOR: Final = "oms-rollover"
SCHEMA: Final = "oms"
_ZERO: Final = Decimal(0)
_NO_ACCOUNT: Final = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class RolloverConfig:
    """TM_OMS_ROLLOVER_TIME ("HH:MM", default 17:00), TM_OMS_ROLLOVER_TIME_ZONE (IANA, default
    America/New_York), TM_OMS_ROLLOVER_AUTO ("1" default: start each day's rollover at its time;
    "0": only RunRollover starts one, e.g. test stacks), TM_OMS_ROLLOVER_BATCH (accounts per
    transaction, default 50)."""

    clock: swaps.RolloverClock
    auto: bool = True
    batch_accounts: int = BATCH_ACCOUNTS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> RolloverConfig:
        """The job's settings; `SettingsError` naming every bad variable (the service exits 2)."""
        read = EnvReader(environ)
        at = read.get("TM_OMS_ROLLOVER_TIME", str, "17:00")
        zone = read.get("TM_OMS_ROLLOVER_TIME_ZONE", str, "America/New_York")
        auto = read.get("TM_OMS_ROLLOVER_AUTO", whole_number(0, 1), 1)
        batch = read.get("TM_OMS_ROLLOVER_BATCH", whole_number(1), BATCH_ACCOUNTS)
        try:
            clock = swaps.RolloverClock.parse(at, zone)
        except ValueError as error:
            read.problems.append(f"TM_OMS_ROLLOVER_TIME(_ZONE): {error}")
        read.check()  # raises when the clock did not parse
        return cls(clock, auto == 1, batch)


class NotTradingDayError(ValueError):
    """There is no rollover on a Saturday or a Sunday."""


class RolloverJob:
    def __init__(
        self,
        resources: Resources,
        quotes: QuoteBook,
        config: RolloverConfig,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.resources = resources
        self.quotes = quotes
        self.config = config
        self.clock = clock
        self._passes = Repeating("oms-rollover", self.run_once, pause=PASS_SECONDS, log=log)

    @property
    def db(self) -> Database:
        return self.resources.db

    # -- starting -------------------------------------------------------------------------------

    async def request(self, trading_date: date) -> RolloverRow:
        """Starts the day's rollover unless it was (RunRollover); returns its state now."""
        if not self.config.clock.is_trading_day(trading_date):
            raise NotTradingDayError(f"{trading_date} is not a trading day (Monday to Friday)")
        async with self.db.transaction() as session:
            await store.start(
                session, trading_date, self.config.clock.instant(trading_date), self.clock()
            )
            row = await store.rollover(session, trading_date)
        assert row is not None
        self._passes.wake()
        return row

    async def state(self, trading_date: date) -> RolloverRow | None:
        async with self.db.transaction() as session:
            return await store.rollover(session, trading_date)

    # -- one pass -------------------------------------------------------------------------------

    async def run_once(self) -> list[RolloverRow]:
        """Starts the due rollover (auto), works every running one; the rollovers completed."""
        now = self.clock()
        if self.config.auto:
            due = self.config.clock.latest_due(now)
            async with self.db.transaction() as session:
                await store.start(session, due, self.config.clock.instant(due), now)
        async with self.db.transaction() as session:
            running = await store.running(session)
        completed = []
        for rollover in running:
            done = await self.work(rollover)
            if done is not None:
                completed.append(done)
        return completed

    async def work(self, rollover: RolloverRow) -> RolloverRow | None:
        """Charges what the rollover has not charged; completes it when nothing is left.
        Returns it completed, or None (positions left for a later pass, envelopes of an
        interrupted run still unpublished, or completed by another run)."""
        after, left, began = _NO_ACCOUNT, False, self.clock()
        while True:
            async with self.db.transaction() as session:
                accounts = await store.accounts_to_charge(
                    session, rollover, after, self.config.batch_accounts
                )
            if not accounts:
                break
            async with self.db.transaction() as session:
                left |= await self.charge_batch(session, rollover, accounts)
            after = accounts[-1]
        if left:
            return None
        async with self.db.transaction() as session:
            done = await store.complete(session, rollover.trading_date, self.clock(), began)
            if done is None:
                return None
            await add_event(
                session,
                SCHEMA,
                "oms.rollover.completed",
                oms_events_pb2.RolloverCompleted(
                    metadata=_metadata(self.clock()), rollover=rollover_proto(done)
                ),
            )
        log.info(
            "rollover completed",
            extra={
                "trading_date": done.trading_date.isoformat(),
                "positions_charged": done.positions_charged,
            },
        )
        return done

    async def charge_batch(
        self, session: AsyncSession, rollover: RolloverRow, account_ids: list[str]
    ) -> bool:
        """Charges the accounts' uncharged positions in the caller's transaction; True if a
        position had to be left (no live price)."""
        now = self.clock()
        terms = await store.load_terms(session)
        instruments = await load_instruments(session)
        charges: list[dict[str, object]] = []
        left = False
        for account_id in account_ids:
            account = await load_account(session, account_id)
            if account is None:
                continue
            async with AccountChange.opened(
                session,
                account,
                system_actor(ACTOR),
                now,
                f"rollover:{rollover.trading_date.isoformat()}",
            ) as change:
                for position in await store.positions_to_charge(session, account_id, rollover):
                    charge = await self._charge(
                        change, account, position, rollover, terms, instruments, now
                    )
                    if charge is None:
                        left = True
                    else:
                        charges.append(charge)
        await store.insert_charges(session, charges)
        return left

    async def _charge(
        self,
        change: AccountChange,
        account: Account,
        position: PositionRow,
        rollover: RolloverRow,
        terms: dict[tuple[str, str], swaps.SwapTerms],
        instruments: dict[str, Instrument],
        now: datetime,
    ) -> dict[str, object] | None:
        """One position's charge (its row; the position, audit and event through `change`), or
        None when its price or conversion is not live."""
        applying = swaps.terms_for(terms, account.group_id, position.symbol)
        instrument = instruments.get(position.symbol)
        charge_id = str(uuid.uuid4())
        amount, nights = _ZERO, 1
        if applying is not None and instrument is not None:
            nights = swaps.nights(applying, rollover.trading_date)
            priced = self._prices(account, position, instrument, applying, instruments, now)
            if priced is None:
                log.warning(
                    "a swap waits for a live price",
                    extra={"position_id": position.id, "symbol": position.symbol},
                )
                return None
            price, conversion = priced
            amount = swaps.swap_amount(
                side=position.side,
                quantity=position.quantity,
                contract_size=instrument.contract_size,
                digits=instrument.digits,
                terms=applying,
                nights=nights,
                currency=account.currency,
                close_price=price,
                conversion=conversion,
            )
        if amount != 0:
            await self._book(change, account, position, rollover, amount, charge_id, nights)
        return store.charge_row(
            charge_id=charge_id,
            position=position,
            rollover=rollover,
            terms=applying,
            nights=nights,
            amount=amount,
            currency=account.currency,
            now=now,
        )

    def _prices(
        self,
        account: Account,
        position: PositionRow,
        instrument: Instrument,
        terms: swaps.SwapTerms,
        instruments: dict[str, Instrument],
        now: datetime,
    ) -> tuple[Decimal | None, Conversion] | None:
        """The closing price (percent terms) and the conversion to the account currency, from
        live prices; None when one is needed and not live."""
        price = None
        if terms.swap_type is swaps.SwapType.PERCENT:
            quote = self.quotes.live(account.group_id, position.symbol, now)
            if quote is None:
                return None
            price = close_price(position.side, quote.bid, quote.ask)
        if instrument.quote_currency == account.currency:
            return price, IDENTITY
        route = execution.conversion_pair(
            instrument.quote_currency, account.currency, instruments.values()
        )
        pair = None if route is None else self.quotes.live(account.group_id, route[0], now)
        if route is None or pair is None:
            return None
        return price, execution.conversion_at(pair, route[1])

    async def _book(
        self,
        change: AccountChange,
        account: Account,
        position: PositionRow,
        rollover: RolloverRow,
        amount: Decimal,
        charge_id: str,
        nights: int,
    ) -> None:
        charged = await change.change_position(
            position,
            "SWAP_CHARGED",
            f"rollover {rollover.trading_date.isoformat()}, {nights} night(s)",
            swap=position.swap + amount,
        )
        event = oms_events_pb2.PositionSwapCharged(
            metadata=change.metadata(charged.version),
            position=charged.to_proto(account.currency),
            swap=money_text(amount, account.currency),
            currency=account.currency,
            charge_id=charge_id,
            trading_date=rollover.trading_date.isoformat(),
            nights=nights,
        )
        event.rollover_time.FromDatetime(rollover.rollover_time)
        await change.emit("oms.position.swap_charged", event)

    # -- the task -------------------------------------------------------------------------------

    async def run(self) -> None:
        """The passes, while this instance leads the job (`Elected`)."""
        await self._passes.run()


def _metadata(now: datetime) -> EventMetadata:
    return events.metadata(system_actor(ACTOR), 1, now)


def rollover_proto(row: RolloverRow) -> oms_pb2.Rollover:
    message = oms_pb2.Rollover(
        trading_date=row.trading_date.isoformat(),
        state=(
            oms_pb2.ROLLOVER_STATE_COMPLETED
            if row.completed_at is not None
            else oms_pb2.ROLLOVER_STATE_RUNNING
        ),
        positions_charged=row.positions_charged,
        weekday=oms_pb2.RolloverWeekday.ValueType(row.trading_date.isoweekday()),
    )
    message.rollover_time.FromDatetime(row.rollover_time)
    message.start_time.FromDatetime(row.started_at)
    if row.completed_at is not None:
        message.complete_time.FromDatetime(row.completed_at)
    return message

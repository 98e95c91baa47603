"""The trigger engine (ADR 0007 "Working orders, SL/TP, expiry"): working limit, stop and
stop-limit orders, and positions' stop-loss and take-profit, fire from the price stream.

One OMS instance runs it: the one elected to lead the STP desk (`main.py`: one `Elected` job,
"oms-stp", leads both, ADR 0017), because the two talk in process: the engine hands STP limit
orders to the desk and hears its word (`limit_done`) by a call, which would never reach an engine
leading on another instance (the order would wait for the next reload). The leader

- loads the index (`domain.triggers.TriggerIndex`) at start and again every `RELOAD_SECONDS`
  (a safety net: the core NATS events that keep it current are at most once);
- keeps it current from its own commits: `take` (a `placement.WorkingOrderSink`: every order
  committed WORKING) and the committed `oms.order.>` / `oms.position.>` events (core NATS
  subscription: cancels, amends, fills, closes, ModifyPosition, and the changes of the other
  workers), each copy kept only if its version is newer;
- checks every quote of a (group, symbol) against that key's entries (`QuoteBook` listener) and
  queues each hit once (`_busy`) for a small pool of workers.

A worker acts on the order or position as stored, never on the index's copy: it re-reads it
under its account's lock and checks the rule again against the newest live quote, so a stale
entry costs a read, never a wrong fill. What a hit does:

- **STOP**: TRIGGERED (status stays WORKING, `trigger_time` set, the event carries the trigger
  price) in one transaction; then CheckOrder (purpose TRIGGER): refused or unreachable ->
  REJECTED with its reason; approved -> it executes as a market IOC for its whole quantity at
  the live price (instant execution runs as market: a triggered stop is never requoted). In
  STP the triggered order is handed to the STP desk's netting window like a market order.
- **STOP_LIMIT**: TRIGGERED, then a limit at its price (below).
- **LIMIT** (and a triggered stop-limit): CheckOrder (purpose TRIGGER; refused -> REJECTED),
  then, in one transaction, it fills in full at the live price if that is still at or better
  than its limit (the triggering quote or a newer one), else it stays WORKING.
- **STP LIMIT** (and an STP stop-limit once triggered): CheckOrder (purpose TRIGGER; refused ->
  REJECTED, or the rest CANCELLED with the reason once partly filled), then the STP desk tries
  it (`stp.desk.StpDesk.attempt_limit`: a hedge order of its own at its limit, see stp/desk.py). The
  order is paused in the index meanwhile; the desk reports back (`limit_done`) and a GTC or DAY
  order that is still working is taken back, paused for `domain.triggers.retry_pause` when its
  hedge order ran (so a price the provider would not fill at is not tried on every quote).
  Partly filled STP limit orders (PARTIALLY_FILLED) stay in the index. An STP IOC or FOK
  stop-limit goes to the desk as soon as it triggers (filled or refused there, never resting).
- **STOP_LOSS / TAKE_PROFIT**: a closing market order for the whole position through the order
  pipeline (`Placement`, as ForceClosePosition: no pre-trade check, never requoted), origin
  STOP_LOSS / TAKE_PROFIT, client_order_id `tm:sl:<position id>:<version>` / `tm:tp:...`, so a
  second trigger of the same position version is the same order.

Every change goes through `AccountChange` (`apply` ... `finish`) in one transaction with its
audit and outbox rows, as everywhere in the OMS. After a restart, a STOP triggered but not
executed (WORKING with `trigger_time`) is executed (STP: if it is in no hedge order yet); STP
limit orders are loaded like the others, those whose hedge order is still at the provider
paused until it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import Final
from typing import Protocol

from google.protobuf import wrappers_pb2
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.api.ownership import authorize_internal
from services.oms.domain.positions import Side
from services.oms.domain.state import WORKING_STATUSES
from services.oms.domain.state import OrderEvent
from services.oms.domain.state import OrderStatus
from services.oms.domain.triggers import LAST_RETRY
from services.oms.domain.triggers import Hit
from services.oms.domain.triggers import Kind
from services.oms.domain.triggers import OrderKind
from services.oms.domain.triggers import PositionStops
from services.oms.domain.triggers import TriggerIndex
from services.oms.domain.triggers import WorkingOrder
from services.oms.domain.triggers import limit_reached
from services.oms.domain.triggers import order_hit
from services.oms.domain.triggers import position_hit
from services.oms.domain.triggers import retry_pause
from services.oms.entry import execution
from services.oms.entry.closing import closing_intent
from services.oms.entry.execution import LiveQuote
from services.oms.entry.fills import FillTerms
from services.oms.entry.fills import book_fill
from services.oms.entry.fills import converted_fill_terms
from services.oms.entry.fingerprint import fingerprint
from services.oms.entry.placement import Placement
from services.oms.entry.placement import check_request
from services.oms.feeds.quotes import QuoteBook
from services.oms.feeds.risk import RiskClient
from services.oms.feeds.risk import Verdict
from services.oms.feeds.risk import unavailable
from services.oms.model import Account
from services.oms.model import ExecutionMode
from services.oms.model import OrderOrigin
from services.oms.model import OrderRow
from services.oms.model import OrderType
from services.oms.model import PositionRow
from services.oms.model import TimeInForce
from services.oms.store import hedges as hedge_store
from services.oms.store.changes import AccountChange
from services.oms.store.changes import AccountContext
from services.oms.store.changes import account_context
from services.oms.store.changes import count_open_orders
from services.oms.store.changes import get_order
from services.oms.store.changes import get_position
from services.oms.store.changes import load_account
from services.oms.store.changes import reason_changes
from services.oms.store.events import order_update_of
from services.oms.store.events import system_actor
from services.oms.store.queries import positions_with_stops
from services.oms.store.queries import working_trigger_orders
from services.oms.store.reference import account_groups
from services.oms.stp.desk import LimitListener
from services.oms.stp.desk import LimitSettled
from services.platform.db import Database
from services.platform.envelope import Event
from services.platform.envelope import events_of
from services.platform.errors import DomainError
from services.platform.leader import LeaderFlag
from services.platform.resources import Resources
from services.platform.tasks import cancel_and_wait
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.exact import decimal_field
from tradingmesh.oms.v1 import oms_events_pb2 as ev
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.risk.v1 import risk_internal_service_pb2 as risk_pb

__all__ = ["ACTOR", "TriggerEngine", "working_order_of"]

log = logging.getLogger(__name__)
_R = ErrorReason

ACTOR: Final = "oms-triggers"
RELOAD_SECONDS: Final = 30.0
WORKERS: Final = 4
# An STP limit order handed to the STP desk waits at most this long for the desk's word.
IN_FLIGHT: Final = LAST_RETRY
OMS_SUBJECTS: Final = "oms.>"  # envelopes (ADR 0009): order and position events in them
_TRIGGER_TYPES: Final = {
    OrderType.LIMIT: OrderKind.LIMIT,
    OrderType.STOP: OrderKind.STOP,
    OrderType.STOP_LIMIT: OrderKind.STOP_LIMIT,
}
_POSITION_EVENTS: Final[Mapping[str, Any]] = {
    "oms.position.opened": ev.PositionOpened,
    "oms.position.changed": ev.PositionChanged,
    "oms.position.closed": ev.PositionClosed,
    "oms.position.swap_charged": ev.PositionSwapCharged,  # a rollover: the version moves on
}


class StpHandOff(Protocol):
    """The STP desk (`stp.desk.StpDesk`): its order sink, its limit orders' attempts and their
    outcome."""

    async def take(self, order: OrderRow, account: Account) -> None: ...

    async def attempt_limit(self, order: OrderRow, account: Account) -> None: ...

    def listen_limits(self, listener: LimitListener) -> None: ...


def _indexed(
    kind: OrderKind | None, status: OrderStatus, mode: ExecutionMode | None, triggered: bool
) -> OrderKind | None:
    """Whether the price can trigger an order of `kind` in `status`: WORKING; an STP limit or
    stop-limit also PARTIALLY_FILLED (its hedge orders may fill it in parts); never a stop
    already triggered (a worker is executing it)."""
    if kind is None or status not in WORKING_STATUSES:
        return None
    if kind is OrderKind.STOP and triggered:
        return None
    if status is OrderStatus.PARTIALLY_FILLED and (
        mode is not ExecutionMode.STP or kind is OrderKind.STOP
    ):
        return None
    return kind


def working_order_of(order: OrderRow, group_id: str) -> WorkingOrder | None:
    """The index entry of a stored order; None when the price cannot trigger it (not working,
    not a limit/stop/stop-limit, or a stop already triggered, which a worker is executing)."""
    triggered = order.trigger_time is not None
    kind = _indexed(_TRIGGER_TYPES.get(order.type), order.status, order.execution_mode, triggered)
    if kind is None:
        return None
    return WorkingOrder(
        order.id,
        order.account_id,
        group_id,
        order.symbol,
        order.side,
        kind,
        order.version,
        order.price,
        order.stop_price,
        triggered,
    )


def _working_order_of_proto(order: oms_pb2.Order, group_id: str) -> WorkingOrder | None:
    try:
        kind = _TRIGGER_TYPES.get(OrderType.from_proto(order.type))
        status = OrderStatus.from_proto(order.status)
        side = Side.from_proto(order.side)
        mode = ExecutionMode.from_proto(order.execution_mode) if order.execution_mode else None
        price = decimal_field(order, "price", None)
        stop_price = decimal_field(order, "stop_price", None)
    except ValueError:  # a breach of the contract (its events are checked): not indexed
        return None
    triggered = order.HasField("trigger_time")
    kind = _indexed(kind, status, mode, triggered)
    if kind is None:
        return None
    return WorkingOrder(
        order.id,
        order.account_id,
        group_id,
        order.symbol,
        side,
        kind,
        int(order.version),
        price,
        stop_price,
        triggered,
    )


def position_stops_of(position: PositionRow, group_id: str) -> PositionStops:
    return PositionStops(
        position.id,
        position.account_id,
        group_id,
        position.symbol,
        position.side,
        position.version,
        position.stop_loss if position.is_open else None,
        position.take_profit if position.is_open else None,
    )


def _position_stops_of_proto(position: oms_pb2.Position, group_id: str) -> PositionStops | None:
    is_open = position.status == oms_pb2.POSITION_STATUS_OPEN
    try:
        side = Side.from_proto(position.side)
        stop_loss = decimal_field(position, "stop_loss", None) if is_open else None
        take_profit = decimal_field(position, "take_profit", None) if is_open else None
    except ValueError:
        return None
    return PositionStops(
        position.id,
        position.account_id,
        group_id,
        position.symbol,
        side,
        int(position.version),
        stop_loss,
        take_profit,
    )


def _desk_tries_at_once(order: OrderRow) -> bool:
    """The STP desk tries an STP limit order as it is placed (`stp.desk.StpDesk.take`)."""
    return order.execution_mode is ExecutionMode.STP and order.type is OrderType.LIMIT


def stops_client_order_id(kind: Kind, position: PositionRow) -> str:
    """`tm:sl:<position id>:<version>` / `tm:tp:...`: one closing order per position version."""
    prefix = "sl" if kind is Kind.STOP_LOSS else "tp"
    return f"tm:{prefix}:{position.id}:{position.version}"


@dataclass(frozen=True)
class _Loaded:
    index: TriggerIndex
    groups: dict[str, str]
    triggered_stops: list[WorkingOrder]
    in_flight: set[str]


@dataclass(eq=False)
class TriggerEngine:
    """The leader's index, its feeds and its workers (see the module doc)."""

    leading = LeaderFlag("oms-triggers")  # not a field: set in `lead`, once the index is loaded

    resources: Resources
    quotes: QuoteBook
    placement: Placement
    risk: RiskClient | None
    stp: StpHandOff | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    index: TriggerIndex = field(default_factory=TriggerIndex, init=False)
    _groups: dict[str, str] = field(default_factory=dict, init=False)
    _busy: set[str] = field(default_factory=set, init=False)
    _jobs: asyncio.Queue[Hit] = field(default_factory=asyncio.Queue, init=False)
    _subscriptions: list[Subscription] = field(default_factory=list, init=False)
    # An STP limit order -> its hedges in a row that filled 0.
    _unfilled: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.leading = False
        if self.stp is not None:
            self.stp.listen_limits(self.limit_done)

    @property
    def db(self) -> Database:
        return self.resources.db

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self, nats: NatsClient) -> None:
        """Listens to quotes and order events (acted on only while leading, `lead`)."""
        self.quotes.listen(self.on_quote)
        self._subscriptions = [await nats.subscribe(OMS_SUBJECTS, cb=self.on_envelope)]

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        self._subscriptions = []
        self.leading = False

    async def lead(self) -> None:
        """The engine on the elected instance, until cancelled (leadership ended): its workers,
        the index loaded now and again every `RELOAD_SECONDS`."""
        workers = [
            asyncio.create_task(self._work(), name=f"oms-triggers-{n}") for n in range(WORKERS)
        ]
        try:
            await self.reload()
            self.leading = True
            log.info("leading the trigger engine", extra={"sizes": self.index.sizes})
            while True:
                await asyncio.sleep(RELOAD_SECONDS)
                await self.reload()
        finally:
            self.leading = False
            await cancel_and_wait(*workers)

    # -- the index ---------------------------------------------------------------------------------

    async def reload(self) -> None:
        """Rebuilds the index from the database; resumes stops triggered but not executed."""
        loaded = await self._load()
        pauses = self.index.pauses
        for order_id, until in pauses.items():
            if loaded.index.order(order_id) is not None and order_id not in loaded.in_flight:
                loaded.index.pause(order_id, until)
        self.index = loaded.index
        self._groups = loaded.groups
        for order in loaded.triggered_stops:
            self._queue(Hit(Kind.STOP, order))

    async def _load(self) -> _Loaded:
        index = TriggerIndex()
        triggered: list[WorkingOrder] = []
        async with self.db.read_session() as session:
            groups = await account_groups(session)
            orders = await working_trigger_orders(session)
            hedged = await hedge_store.hedged_order_ids(
                session,
                [o.id for o in orders if o.trigger_time is not None and o.type is OrderType.STOP],
            )
            in_flight = await hedge_store.in_flight_order_ids(
                session,
                [
                    o.id
                    for o in orders
                    if o.execution_mode is ExecutionMode.STP and o.type is not OrderType.STOP
                ],
            )
            for position in await positions_with_stops(session):
                group = groups.get(position.account_id)
                if group is not None:
                    index.put_position(position_stops_of(position, group))
        for order in orders:
            group = groups.get(order.account_id)
            if group is None:
                continue
            entry = working_order_of(order, group)
            if entry is not None:
                index.put_order(entry)
                if order.id in in_flight:
                    index.pause(order.id, self.clock() + IN_FLIGHT)
            elif (
                order.type is OrderType.STOP
                and order.trigger_time is not None
                and order.id not in hedged
            ):
                triggered.append(
                    WorkingOrder(
                        order.id,
                        order.account_id,
                        group,
                        order.symbol,
                        order.side,
                        OrderKind.STOP,
                        order.version,
                        stop_price=order.stop_price,
                        triggered=True,
                    )
                )
        return _Loaded(index, groups, triggered, in_flight)

    async def _group_of(self, account_id: str) -> str | None:
        group = self._groups.get(account_id)
        if group is None:
            async with self.db.read_session() as session:
                account = await load_account(session, account_id)
            if account is None:
                return None
            group = self._groups[account_id] = account.group_id
        return group

    async def take(self, order: OrderRow, account: Account) -> None:
        """The `WorkingOrderSink`: an order committed WORKING joins the index at once."""
        if not self.leading:
            return
        self._groups[account.account_id] = account.group_id
        entry = working_order_of(order, account.group_id)
        if entry is not None:
            self.index.put_order(entry)
            if self.stp is not None and _desk_tries_at_once(order):
                self.index.pause(order.id, self.clock() + IN_FLIGHT)  # until the desk's word

    def limit_done(self, settled: LimitSettled) -> None:
        """The STP desk's word on a limit order it tried (`stp.desk.LimitSettled`): one still
        working is taken back, paused for `retry_pause` when a hedge order ran for it (longer
        after each hedge in a row that filled nothing), at once when none ran."""
        if not self.leading:
            return
        order = settled.order
        self._groups[order.account_id] = settled.group_id
        entry = working_order_of(order, settled.group_id)
        if entry is None:
            self.index.discard_order(order.id, order.version)
            self._unfilled.pop(order.id, None)
            return
        self.index.put_order(entry)
        if settled.filled is None:
            self.index.resume(order.id)
            return
        unfilled = 0 if settled.filled > 0 else self._unfilled.get(order.id, 0) + 1
        self._unfilled[order.id] = unfilled
        self.index.pause(order.id, self.clock() + retry_pause(unfilled))

    async def on_envelope(self, message: Msg) -> None:
        if not self.leading:
            return
        for event in events_of(message):
            if event.subject.startswith("oms.order."):
                await self.on_order_event(event)
            elif event.subject.startswith("oms.position."):
                await self.on_position_event(event)

    async def on_order_event(self, message: Event) -> None:
        if not self.leading:
            return
        update = order_update_of(message.subject, message.data)
        if update is None:
            return
        order = update.order
        group = await self._group_of(order.account_id)
        if group is None:
            return
        entry = _working_order_of_proto(order, group)
        if entry is None:
            self.index.discard_order(order.id, int(order.version))
            if self.index.order(order.id) is None:
                self._unfilled.pop(order.id, None)
        else:
            self.index.put_order(entry)

    async def on_position_event(self, message: Event) -> None:
        if not self.leading:
            return
        kind = _POSITION_EVENTS.get(message.subject)
        if kind is None:
            return
        try:
            position = kind.FromString(message.data).position
        except DecodeError:
            return
        group = await self._group_of(position.account_id)
        if group is None:
            return
        stops = _position_stops_of_proto(position, group)
        if stops is not None:
            self.index.put_position(stops)

    # -- the check on every quote ------------------------------------------------------------------

    def on_quote(self, quote: LiveQuote) -> None:
        """A `QuoteBook` listener: queues what the quote triggers (each id once at a time)."""
        if not self.leading or quote.stale:
            return
        hits = self.index.hits(quote.group_id, quote.symbol, quote.bid, quote.ask, self.clock())
        for hit in hits:
            self._queue(hit)

    def _queue(self, hit: Hit) -> None:
        if hit.id in self._busy:
            return
        self._busy.add(hit.id)
        self._jobs.put_nowait(hit)

    async def _work(self) -> None:
        while True:
            hit = await self._jobs.get()
            try:
                await self.handle(hit)
            except DomainError as error:
                log.warning(
                    "a trigger was not acted on",
                    extra={"id": hit.id, "kind": hit.kind.value, "error": error.message},
                )
            except Exception:
                log.exception("a trigger failed", extra={"id": hit.id, "kind": hit.kind.value})
            finally:
                self._busy.discard(hit.id)
                self._jobs.task_done()

    async def handle(self, hit: Hit) -> None:
        entry = hit.entry
        if isinstance(entry, PositionStops):
            await self._close_position(hit.kind, entry)
            return
        if hit.kind is Kind.LIMIT:
            await self._limit(entry)
        elif hit.kind is Kind.STOP:
            await self._stop(entry)
        elif hit.kind is Kind.STOP_LIMIT:
            await self._stop_limit(entry)

    # -- orders ------------------------------------------------------------------------------------

    def _quote(self, entry: WorkingOrder | PositionStops) -> LiveQuote | None:
        return self.quotes.live(entry.group_id, entry.symbol, self.clock())

    async def _trigger(self, entry: WorkingOrder) -> OrderRow | None:
        """TRIGGERED (status kept, trigger_time set) if the stored order's stop is reached at
        the live price; the order as triggered (or as found already triggered), else None."""
        async with self.db.transaction() as session:
            account = await load_account(session, entry.account_id)
            if account is None:
                return None
            now = self.clock()
            async with AccountChange.opened(session, account, system_actor(ACTOR), now) as change:
                order = await get_order(session, entry.account_id, entry.order_id, lock=True)
                if order is None or order.status is not OrderStatus.WORKING:
                    self.index.discard_order(entry.order_id)
                    return None
                if order.trigger_time is not None:
                    return order
                current = working_order_of(order, entry.group_id)
                quote = self._quote(entry)
                if current is None or quote is None:
                    return None
                if order_hit(current, quote.bid, quote.ask) not in (Kind.STOP, Kind.STOP_LIMIT):
                    self.index.put_order(current)
                    return None
                price = quote.price_for(order.side)
                order = await change.apply(
                    order,
                    OrderEvent.TRIGGERED,
                    f"stop price {order.stop_price} reached at {price}",
                    changes={"trigger_time": now},
                    trigger_price=format(price, "f"),
                )
        log.info("order triggered", extra={"order_id": order.id, "price": str(price)})
        return order

    async def _stop(self, entry: WorkingOrder) -> None:
        order = await self._trigger(entry)
        if order is None:
            return
        self.index.discard_order(order.id)
        if not await self._approved(order, ExecutionMode.MARKET):
            return
        if order.execution_mode is ExecutionMode.STP:
            await self._hand_to_stp(order)
            return
        await self._execute(order, market=True)

    async def _stop_limit(self, entry: WorkingOrder) -> None:
        order = await self._trigger(entry)
        if order is None:
            return
        limit = working_order_of(order, entry.group_id)
        if limit is None:
            return
        self.index.put_order(limit)
        if order.execution_mode is ExecutionMode.STP and order.time_in_force in (
            TimeInForce.IOC,
            TimeInForce.FOK,
        ):
            await self._hand_limit_to_stp(order, limit)  # tried once, now: never rests
        else:
            await self._limit(limit)

    async def _limit(self, entry: WorkingOrder) -> None:
        quote = self._quote(entry)
        if (
            quote is None
            or entry.price is None
            or not limit_reached(entry.side, entry.price, quote.bid, quote.ask)
        ):
            return
        async with self.db.read_session() as session:
            order = await get_order(session, entry.account_id, entry.order_id)
        if order is not None and order.execution_mode is ExecutionMode.STP:
            if order.status not in WORKING_STATUSES:
                self.index.discard_order(entry.order_id)
                return
            await self._hand_limit_to_stp(order, entry)
            return
        if order is None or order.status is not OrderStatus.WORKING:
            self.index.discard_order(entry.order_id)
            return
        if not await self._approved(order, order.execution_mode or ExecutionMode.MARKET):
            self.index.discard_order(entry.order_id)
            return
        await self._execute(order, market=False)

    async def _hand_limit_to_stp(self, order: OrderRow, entry: WorkingOrder) -> None:
        """An STP limit order (or triggered stop-limit) whose price is reached: CheckOrder
        (purpose TRIGGER), then the STP desk tries it at its limit; paused here until the
        desk's word (`limit_done`)."""
        if self.stp is None:
            return
        self.index.pause(order.id, self.clock() + IN_FLIGHT)
        async with self.db.read_session() as session:
            if await hedge_store.in_flight(session, order.id):
                return  # its hedge order's end resumes it
            account = await load_account(session, order.account_id)
        if account is None:
            return
        if not await self._approved(order, ExecutionMode.STP):
            self.index.discard_order(entry.order_id)
            return
        await self.stp.attempt_limit(order, account)

    async def _approved(self, order: OrderRow, mode: ExecutionMode) -> bool:
        """CheckOrder (purpose TRIGGER); a refusal (or no answer) rejects the order."""
        verdict = await self._check(order, mode)
        if verdict.approved:
            return True
        async with self.db.transaction() as session:
            account = await load_account(session, order.account_id)
            assert account is not None
            async with AccountChange.opened(
                session, account, system_actor(ACTOR), self.clock()
            ) as change:
                current = await get_order(session, order.account_id, order.id, lock=True)
                if current is None or current.status not in WORKING_STATUSES:
                    return False
                # A partly filled (STP limit) order cannot be rejected: its rest is cancelled.
                event = (
                    OrderEvent.REJECTED
                    if current.status is OrderStatus.WORKING
                    else OrderEvent.CANCELLED
                )
                await change.apply(
                    current,
                    event,
                    verdict.message,
                    changes=reason_changes(verdict.reason, verdict.message),
                )
        log.info(
            "a triggered order was refused by the risk check",
            extra={"order_id": order.id, "reason": ErrorReason.Name(verdict.reason)},
        )
        return False

    async def _check(self, order: OrderRow, mode: ExecutionMode) -> Verdict:
        if self.risk is None:
            return unavailable("no risk service address configured")
        async with self.db.read_session() as session:
            open_orders = await count_open_orders(session, order.account_id)
        request = check_request(
            order,
            risk_pb.CHECK_PURPOSE_TRIGGER,
            mode,
            open_orders,
            reserve_margin=True,  # it executes now (ADR 0007, "Risk")
        )
        return await self.risk.check(request)

    async def _execute(self, order: OrderRow, *, market: bool) -> None:
        """Fills the order's rest at the live price: a market IOC (a triggered stop), or a limit
        if the price is still at or better than its limit (else it stays WORKING)."""
        async with self.db.transaction() as session:
            context = await account_context(session, order.account_id, order.symbol)
            if context is None or context.terms is None or context.instrument is None:
                return
            async with AccountChange.opened(
                session, context.account, system_actor(ACTOR), self.clock()
            ) as change:
                current = await get_order(session, order.account_id, order.id, lock=True)
                if current is None or current.status is not OrderStatus.WORKING:
                    return
                quote = self.quotes.live(context.account.group_id, current.symbol, self.clock())
                failure: tuple[ErrorReason.ValueType, str] | None = None
                terms = None if quote is None else await self._fill_terms(session, context)
                if quote is None:
                    failure = (
                        _R.ERROR_REASON_PRICE_UNAVAILABLE,
                        f"no live price for {order.symbol}",
                    )
                elif terms is None:
                    failure = (
                        _R.ERROR_REASON_PRICE_UNAVAILABLE,
                        f"no live price converts {context.instrument.quote_currency}"
                        f" to {context.account.currency}",
                    )
                if failure is not None:
                    if not market:
                        return  # a limit waits for a usable price
                    await change.apply(
                        current,
                        OrderEvent.REJECTED,
                        failure[1],
                        changes=reason_changes(*failure),
                    )
                else:
                    assert quote is not None
                    assert terms is not None
                    if not market and (
                        current.price is None
                        or not execution.is_marketable(current.side, current.price, quote)
                    ):
                        return  # the price moved away again: stays WORKING
                    await book_fill(
                        change,
                        current,
                        current.remaining_quantity,
                        quote.price_for(current.side),
                        terms,
                    )
        self.index.discard_order(order.id)

    async def _fill_terms(self, session: AsyncSession, context: AccountContext) -> FillTerms | None:
        """The fill terms with the conversion to the account currency; None without a price."""
        instrument, terms, account = context.instrument, context.terms, context.account
        assert instrument is not None
        assert terms is not None
        return await converted_fill_terms(
            session, instrument, terms, account.currency, self.quotes.live
        )

    async def _hand_to_stp(self, order: OrderRow) -> None:  # a triggered stop
        """A triggered STP stop joins its instrument's netting window as a market order (the
        desk takes market orders; the window reads the order from the database and fills its
        rest as an IOC)."""
        if self.stp is None:
            return
        async with self.db.read_session() as session:
            account = await load_account(session, order.account_id)
            if account is None or await hedge_store.hedged_order_ids(session, [order.id]):
                return
        await self.stp.take(replace(order, type=OrderType.MARKET), account)

    # -- positions ---------------------------------------------------------------------------------

    async def _close_position(self, kind: Kind, entry: PositionStops) -> None:
        """A closing market order for the position, if its stop is still reached as stored."""
        async with self.db.read_session() as session:
            position = await get_position(session, entry.account_id, entry.position_id)
        if position is None or not position.is_open:
            self.index.discard_position(entry.position_id)
            return
        current = position_stops_of(position, entry.group_id)
        quote = self._quote(entry)
        if quote is None or position_hit(current, quote.bid, quote.ask) is not kind:
            self.index.put_position(current)
            return
        client_order_id = stops_client_order_id(kind, position)
        intent = closing_intent(
            position,
            client_order_id=client_order_id,
            request_fingerprint=fingerprint(wrappers_pb2.StringValue(value=client_order_id)),
            quantity=None,
            origin=OrderOrigin.STOP_LOSS if kind is Kind.STOP_LOSS else OrderOrigin.TAKE_PROFIT,
            pre_trade_check=False,
            requotable=False,
        )
        placed = await self.placement.place(
            intent, system_actor(ACTOR), authorize_internal(position.account_id), client_order_id
        )
        log.info(
            "position stop reached",
            extra={
                "position_id": position.id,
                "kind": kind.value,
                "order_id": placed.order.id,
                "status": placed.order.status.value,
            },
        )

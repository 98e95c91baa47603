"""Order entry: one pipeline for PlaceOrder, ClosePosition and ForceClosePosition (ADR 0007
"Order entry and idempotency").

1. The rules that need the instrument (`domain.validation`: lot step and digits
   TOO_MANY_DECIMALS, lot range QUANTITY_OUT_OF_RANGE, stops INVALID_STOPS), a symbol the
   group is not offered (UNKNOWN_INSTRUMENT), instant execution without requested_price
   (INVALID_ORDER_FIELDS). The contract's field rules ran before (the interceptor). Nothing is
   stored on a refusal.
2. `(account_id, client_order_id)` known: the stored order if the request's fingerprint
   matches, else ALREADY_EXISTS / DUPLICATE_CLIENT_ORDER_ID. Checks that depend on state
   (the position to close is still open, no other closing order is open) come after this
   lookup, so a retry of a close that succeeded returns the closing order rather than an error.
3. The pre-trade check (`risk.RiskClient`, 300 ms, no transaction open), unless the intent
   skips it (a stop-out close).
4. Execution decided in memory (`execution.decide`, from the live quote), then ONE
   transaction: the account's row locked, the order inserted (`ON CONFLICT DO NOTHING`: a
   concurrent retry that committed first wins, and this attempt returns its order), every
   transition applied with its audit and outbox rows, the fill booked (trade, position). The
   order is returned after the commit.
5. An order committed WORKING is handed to the working-order sinks (the STP desk, the trigger
   engine). The transaction and this hand-off are one piece of work that the request cannot
   stop halfway (`Placement.commits`, a `platform.detached.Detached`): a client's deadline or
   disconnect cancels the request's task, possibly while the COMMIT is in flight; the work
   runs on to its end in a task of its own, so an order that committed reaches its sinks
   (issue 12 item 7). What a sink still misses (the process stopped in between, a sink
   failed) its own sweep of the committed orders finds.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from typing import Final
from typing import Protocol

import grpc
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.domain.positions import PositionMode
from services.oms.domain.positions import Side
from services.oms.domain.state import OrderEvent
from services.oms.domain.state import OrderStatus
from services.oms.domain.validation import check_close_quantity
from services.oms.domain.validation import check_price
from services.oms.domain.validation import check_quantity
from services.oms.domain.validation import check_stops
from services.oms.entry import execution
from services.oms.entry.execution import FillAt
from services.oms.entry.execution import LiveQuote
from services.oms.entry.execution import OrderSpec
from services.oms.entry.execution import Reject
from services.oms.entry.execution import Rest
from services.oms.entry.fills import FillTerms
from services.oms.entry.fills import book_fill
from services.oms.feeds.quotes import QuoteBook
from services.oms.feeds.reference import OfferedInstruments
from services.oms.feeds.risk import RiskClient
from services.oms.feeds.risk import Verdict
from services.oms.feeds.risk import unavailable
from services.oms.model import Account
from services.oms.model import ExecutionMode
from services.oms.model import Instrument
from services.oms.model import OrderOrigin
from services.oms.model import OrderRow
from services.oms.model import OrderType
from services.oms.model import PositionRow
from services.oms.model import TimeInForce
from services.oms.model import TradingTerms
from services.oms.store.changes import AccountChange
from services.oms.store.changes import DuplicateOrderError
from services.oms.store.changes import Head
from services.oms.store.changes import OptimisticConflictError
from services.oms.store.changes import account_context
from services.oms.store.changes import find_order
from services.oms.store.changes import get_position
from services.oms.store.changes import open_closing_order
from services.oms.store.changes import read_head
from services.oms.store.changes import reason_changes
from services.oms.store.heads import Heads
from services.platform.db import Database
from services.platform.detached import Detached
from services.platform.errors import DomainError
from services.platform.metrics import REGISTRY
from services.platform.resources import Resources
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.exact import plain_decimal
from tradingmesh.risk.v1 import risk_internal_service_pb2 as risk_pb
from tradingmesh.trading.money import IDENTITY
from tradingmesh.trading.money import Conversion

__all__ = ["OrderIntent", "Placed", "Placement", "WorkingOrderSink", "hand_over"]

log = logging.getLogger(__name__)

ORDERS = Counter(
    "tradingmesh_oms_orders",
    "New orders as answered to their client (retries of one not counted again), by type and "
    "status: FILLED, WORKING, REJECTED, ...",
    ["type", "status"],
    registry=REGISTRY,
)
REJECTIONS = Counter(
    "tradingmesh_oms_order_rejections",
    "New orders answered REJECTED, by reason (e.g. REQUOTE, INSUFFICIENT_MARGIN); a call the "
    "service refused outright is in tradingmesh_rpc_refusals_total instead",
    ["reason"],
    registry=REGISTRY,
)
_R = ErrorReason
_MAX_ATTEMPTS: Final = 3
_OPTIMISTIC_ATTEMPTS: Final = 3
_DRAIN_SECONDS: Final = 5.0

Authorize = Callable[[Account | None], Account]


@dataclass(frozen=True)
class OrderIntent:
    """An order a request asks for, before anything is stored."""

    account_id: str
    client_order_id: str
    fingerprint: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal | None  # None: the whole open quantity of position_id
    origin: OrderOrigin = OrderOrigin.CLIENT
    price: Decimal | None = None
    stop_price: Decimal | None = None
    requested_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    position_id: str | None = None
    closing: bool = False  # ClosePosition / ForceClosePosition
    pre_trade_check: bool = True  # False: a stop-out close (no risk check)
    requotable: bool = True  # False: instant execution runs as market (never requoted)
    status_message: str = ""  # an operator's reason
    quantity_field: str = "quantity"


@dataclass(frozen=True)
class Decided:
    """An order decided before it is written (steps 1 to 4): the new order, what asked for it
    and who, the check's verdict, the execution mode and decision, and the fill's terms."""

    order: OrderRow
    intent: OrderIntent
    account: Account
    actor: Actor
    correlation_id: str
    verdict: Verdict
    mode: ExecutionMode
    decision: execution.Decision | None
    fill_terms: FillTerms


@dataclass(frozen=True)
class Placed:
    """The order as answered, the account's currency, and the position its fill touched (None
    for a retry or an order that did not fill)."""

    order: OrderRow
    currency: str
    position: PositionRow | None = None
    existing: bool = False


def _unknown_instrument(symbol: str) -> DomainError:
    return DomainError(
        _R.ERROR_REASON_UNKNOWN_INSTRUMENT,
        f"{symbol} is not offered to this account",
        metadata={"symbol": symbol},
        field_violations=[("symbol", "is not an instrument offered to the account's group")],
        status=grpc.StatusCode.INVALID_ARGUMENT,
    )


def duplicate_client_order_id(client_order_id: str) -> DomainError:
    return DomainError(
        _R.ERROR_REASON_DUPLICATE_CLIENT_ORDER_ID,
        f"client_order_id {client_order_id} was used for another order",
        metadata={"client_order_id": client_order_id},
        field_violations=[("client_order_id", "was used for a different order of this account")],
    )


def effective_mode(terms: TradingTerms, intent: OrderIntent) -> ExecutionMode:
    """The mode fixed at acceptance; a close that must not be requoted runs as market."""
    mode = terms.execution_mode
    if mode is ExecutionMode.INSTANT and not intent.requotable:
        return ExecutionMode.MARKET
    return mode


def check_entry_rules(
    intent: OrderIntent,
    instrument: Instrument,
    mode: ExecutionMode,
    quote: LiveQuote | None,
) -> None:
    """Step 1: the rules that need the instrument and the group's execution mode."""
    rules = instrument.rules
    if intent.quantity is not None:
        check_quantity(intent.quantity, rules, intent.quantity_field)
    for name in ("price", "stop_price", "requested_price", "stop_loss", "take_profit"):
        value = getattr(intent, name)
        if value is not None:
            check_price(value, rules, name)
    if (
        mode is ExecutionMode.INSTANT
        and intent.type is OrderType.MARKET
        and intent.requested_price is None
    ):
        raise DomainError(
            _R.ERROR_REASON_INVALID_ORDER_FIELDS,
            f"{intent.symbol} is in instant execution: a market order needs requested_price",
            metadata={"symbol": intent.symbol, "execution_mode": mode.value},
            field_violations=[("requested_price", "is required in instant execution")],
        )
    if intent.stop_loss is None and intent.take_profit is None:
        return
    reference = intent.price or intent.stop_price or intent.requested_price
    if reference is None and quote is not None:
        reference = quote.price_for(intent.side)
    if reference is not None:
        check_stops(intent.side, reference, intent.stop_loss, intent.take_profit)


def closing_checks(
    intent: OrderIntent, position: PositionRow | None, account: Account, instrument: Instrument
) -> Decimal:
    """The checks of an order naming a position; the quantity it closes."""
    if position is None:
        raise DomainError(
            _R.ERROR_REASON_NOT_FOUND,
            f"position {intent.position_id} not found",
            metadata={"position_id": intent.position_id or ""},
        )
    if not position.is_open:
        raise DomainError(
            _R.ERROR_REASON_INVALID_ORDER_STATE,
            f"position {position.id} is closed",
            metadata={"position_id": position.id},
        )
    if position.symbol != intent.symbol or position.side is intent.side:
        raise DomainError(
            _R.ERROR_REASON_INVALID_ORDER_FIELDS,
            f"position {position.id} is a {position.side} {position.symbol} position: an order"
            f" closing it is a {position.side.opposite} {position.symbol} order",
            metadata={"position_id": position.id},
            field_violations=[("position_id", "names a position this order cannot close")],
        )
    if account.position_mode is PositionMode.NETTING and not position.netting:
        raise DomainError(
            _R.ERROR_REASON_INVALID_ORDER_FIELDS,
            f"position {position.id} is not the account's position in {position.symbol}",
            field_violations=[("position_id", "is not the account's netting position")],
        )
    quantity = intent.quantity if intent.quantity is not None else position.quantity
    check_close_quantity(quantity, position.quantity, intent.quantity_field)
    if intent.quantity is not None:
        check_quantity(quantity, instrument.rules, intent.quantity_field)
    return quantity


async def _position_checks(
    session: AsyncSession,
    intent: OrderIntent,
    account: Account,
    instrument: Instrument,
    *,
    lock: bool = False,
) -> Decimal:
    """The checks of an order naming a position, against the position as stored; the quantity
    the order closes."""
    assert intent.position_id is not None
    position = await get_position(session, account.account_id, intent.position_id, lock=lock)
    quantity = closing_checks(intent, position, account, instrument)
    if intent.closing and await open_closing_order(session, intent.position_id):
        raise DomainError(
            _R.ERROR_REASON_INVALID_ORDER_STATE,
            f"an order closing position {intent.position_id} is still open",
            metadata={"position_id": intent.position_id},
        )
    return quantity


class WorkingOrderSink(Protocol):
    """Takes an order that was committed WORKING, after the commit: where the STP desk (its
    netting window, `stp.desk.StpDesk`) and the trigger engine (working limit and stop orders,
    `triggers.engine.TriggerEngine`) plug in. An order no sink takes waits for the client to cancel
    or amend it, or for its DAY expiry. The hand-off is the prompt way in, not the only one:
    each sink also finds what it must work in the committed state (the desk's sweep, the
    trigger engine's events and reload), so one it missed is found late, never lost."""

    async def take(self, order: OrderRow, account: Account) -> None: ...


async def hand_over(sinks: Sequence[WorkingOrderSink], order: OrderRow, account: Account) -> None:
    """Gives an order committed WORKING to every sink; one sink's failure does not keep the
    order from the others (and what a sink missed, its own sweep finds)."""
    for sink in sinks:
        try:
            await sink.take(order, account)
        except Exception:
            log.exception(
                "a working-order sink failed to take an order",
                extra={"order_id": order.id, "sink": type(sink).__name__},
            )


class Placement:
    """Places orders; shared by the servicers."""

    def __init__(
        self,
        resources: Resources,
        quotes: QuoteBook,
        risk: RiskClient | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        working: Sequence[WorkingOrderSink] = (),
    ) -> None:
        self.resources = resources
        self.quotes = quotes
        self.risk = risk
        self.clock = clock
        self.working = tuple(working)
        # The transaction and its hand-off run to their end whatever becomes of the request; a
        # refusal or a race a retry won is an answer the cancelled caller no longer needs.
        self.commits = Detached("oms-order-commit", expected=(DomainError, DuplicateOrderError))
        self.heads = Heads()
        self.offered = OfferedInstruments()  # forgotten by the reference copies' changes

    @property
    def db(self) -> Database:
        return self.resources.db

    async def drain(self) -> None:
        """At shutdown, before the sinks and the database close: waits (a while) for the
        transactions and hand-offs of requests that were cancelled."""
        await self.commits.drain(_DRAIN_SECONDS)

    async def place(
        self, intent: OrderIntent, actor: Actor, authorize: Authorize, correlation_id: str = ""
    ) -> Placed:
        for _ in range(_MAX_ATTEMPTS):
            try:
                placed = await self._attempt(intent, actor, authorize, correlation_id)
            except DuplicateOrderError:
                continue  # a concurrent request committed this client_order_id: look again
            if not placed.existing:
                order = placed.order
                ORDERS.labels(order.type.name, order.status.name).inc()
                if order.status is OrderStatus.REJECTED:
                    REJECTIONS.labels(order.status_reason).inc()
            return placed
        raise DomainError(
            _R.ERROR_REASON_CONCURRENT_MODIFICATION,
            f"order {intent.client_order_id} is being placed concurrently; retry",
        )

    async def _attempt(
        self, intent: OrderIntent, actor: Actor, authorize: Authorize, correlation_id: str
    ) -> Placed:
        # Reads before the change is written; they need no snapshot in common, so each stands
        # alone (no BEGIN/COMMIT). The context, on every order's path, on the primary through a
        # plain psycopg connection (its head must be the latest: ADR 0009).
        async with self.db.raw() as connection:
            context = await account_context(
                connection, intent.account_id, intent.symbol, intent.client_order_id
            )
        async with self.db.lone_reads() as session:
            account = authorize(None if context is None else context.account)
            assert context is not None
            instrument, terms = context.instrument, context.terms
            if (
                instrument is None
                or terms is None
                or not (terms.enabled or intent.closing or intent.position_id is not None)
            ):
                raise _unknown_instrument(intent.symbol)
            mode = effective_mode(terms, intent)
            quote = self.quotes.live(terms.group_id, intent.symbol)
            check_entry_rules(intent, instrument, mode, quote)
            existing = (
                await find_order(session, account.account_id, intent.client_order_id)
                if context.client_order_id_taken
                else None
            )
            if existing is not None:
                if existing.request_fingerprint != intent.fingerprint:
                    raise duplicate_client_order_id(intent.client_order_id)
                return Placed(existing, account.currency, existing=True)
            quantity = intent.quantity
            if intent.position_id is not None:
                try:
                    quantity = await _position_checks(session, intent, account, instrument)
                except DomainError:
                    # A retry of a close that committed since the look-up above finds the
                    # position closed by itself: it gets its order, as any retry does.
                    retried = await find_order(session, account.account_id, intent.client_order_id)
                    if retried is None or retried.request_fingerprint != intent.fingerprint:
                        raise
                    return Placed(retried, account.currency, existing=True)
            assert quantity is not None
            open_orders = context.open_orders
            same_currency = instrument.quote_currency == account.currency
            route = (
                None
                if same_currency
                else execution.conversion_pair(
                    instrument.quote_currency,
                    account.currency,
                    await self.offered.of(session, terms.group_id),
                )
            )
        order = self._new_order(intent, account, quantity, instrument)
        verdict = (
            await self._check(order, intent, account, mode, open_orders, quote)
            if intent.pre_trade_check
            else Verdict(approved=True)
        )
        decision: execution.Decision | None = None
        conversion = IDENTITY
        if verdict.approved:
            quote = self.quotes.live(terms.group_id, intent.symbol)
            decision = execution.decide(
                OrderSpec(
                    order.side,
                    order.type,
                    order.time_in_force,
                    order.quantity,
                    order.price,
                    order.requested_price,
                ),
                mode,
                quote,
                symbol=order.symbol,
                max_deviation_points=terms.max_deviation_points,
                point=instrument.point,
            )
            if isinstance(decision, FillAt):
                found = IDENTITY if same_currency else self._conversion(route, terms.group_id)
                if found is None:
                    decision = Reject(
                        _R.ERROR_REASON_PRICE_UNAVAILABLE,
                        f"no live price converts {instrument.quote_currency} to {account.currency}",
                    )
                else:
                    conversion = found
        decided = Decided(
            order,
            intent,
            account,
            actor,
            correlation_id,
            verdict,
            mode,
            decision,
            FillTerms(instrument, terms, conversion),
        )
        committing = self._commit(decided, context.head)
        return await self.commits.run(self._hand_over_after(committing, account))

    # -- steps -------------------------------------------------------------------------------------

    def _new_order(
        self, intent: OrderIntent, account: Account, quantity: Decimal, instrument: Instrument
    ) -> OrderRow:
        now = self.clock()
        expire = (
            execution.session_end(instrument.sessions, now)
            if intent.time_in_force is TimeInForce.DAY
            else None
        )
        return OrderRow(
            id=str(uuid.uuid4()),
            account_id=account.account_id,
            client_order_id=intent.client_order_id,
            request_fingerprint=intent.fingerprint,
            symbol=intent.symbol,
            side=intent.side,
            type=intent.type,
            time_in_force=intent.time_in_force,
            status=OrderStatus.NEW,
            quantity=quantity,
            origin=intent.origin,
            created_at=now,
            updated_at=now,
            version=1,
            price=intent.price,
            stop_price=intent.stop_price,
            requested_price=intent.requested_price,
            stop_loss=intent.stop_loss,
            take_profit=intent.take_profit,
            position_id=intent.position_id,
            status_message=intent.status_message[:500],
            expire_time=expire,
        )

    async def _check(
        self,
        order: OrderRow,
        intent: OrderIntent,
        account: Account,
        mode: ExecutionMode,
        open_orders: int,
        quote: LiveQuote | None,
    ) -> Verdict:
        if self.risk is None:
            return unavailable("no risk service address configured")
        hedging = account.position_mode is PositionMode.HEDGING
        request = check_request(
            order,
            risk_pb.CHECK_PURPOSE_PLACE,
            mode,
            open_orders,
            # Only an order that can execute now reserves its margin (ADR 0007, "Risk"):
            # one that will rest holds none, and must not hold it while its event travels.
            reserve_margin=_executes_now(order, quote),
            position_id=intent.position_id if hedging else None,
        )
        return await self.risk.check(request)

    def _conversion(self, route: tuple[str, bool] | None, group_id: str) -> Conversion | None:
        """The conversion through `route` (the pair, and whether to divide) at its live mid;
        None without a pair or a live price of it."""
        if route is None:
            return None
        symbol, inverse = route
        quote = self.quotes.live(group_id, symbol)
        return None if quote is None else execution.conversion_at(quote, inverse)

    async def _hand_over_after(self, committing: Awaitable[Placed], account: Account) -> Placed:
        """Step 4's transaction (`committing`) and step 5's hand-off: the work `self.commits`
        runs detached from the request (the module doc, step 5)."""
        placed = await committing
        if placed.order.status is OrderStatus.WORKING:
            await hand_over(self.working, placed.order, account)
        return placed

    async def _commit(self, decided: Decided, head: Head | None = None) -> Placed:
        """Step 4: optimistically as ONE statement for an order that names no position (from the
        head the context read, `_commit_prepared`), else (or when that keeps conflicting) in a
        transaction with the account's row locked."""
        order, intent, account = decided.order, decided.intent, decided.account
        if intent.position_id is None and head is not None:
            placed = await self._commit_prepared(decided, head)
            if placed is not None:
                return placed
        position: PositionRow | None = None
        async with (
            self.db.transaction() as session,
            AccountChange.opened(
                session, account, decided.actor, order.created_at, decided.correlation_id
            ) as change,
        ):
            if intent.position_id is not None:
                # A concurrent retry of this very close that committed first: return its order.
                if await find_order(session, account.account_id, intent.client_order_id):
                    raise DuplicateOrderError(intent.client_order_id)
                # Again under the account's lock: a close that committed meanwhile (a retry
                # under another id, a stop-out) must not leave this order to open a position.
                await _position_checks(
                    session,
                    replace(intent, quantity=order.quantity),
                    account,
                    decided.fill_terms.instrument,
                    lock=True,
                )
            order, position = await self._changes(change, decided)
        return Placed(order, account.currency, position)

    async def _commit_prepared(self, decided: Decided, head: Head) -> Placed | None:
        """The order's whole change as ONE autocommit statement that checks the head it was
        decided on (`AccountChange.prepared`); None when it kept conflicting (the caller takes
        the locking path). The account's orders in this process go one at a time, each from the
        head the one before committed, so they do not conflict with each other."""
        order, account = decided.order, decided.account
        async with self.heads.serialized(account.account_id):
            head = self.heads.newer(account.account_id, head)
            for _ in range(_OPTIMISTIC_ATTEMPTS):
                try:
                    async with (
                        self.db.raw() as connection,
                        AccountChange.prepared(
                            connection,
                            account,
                            decided.actor,
                            order.created_at,
                            head,
                            decided.correlation_id,
                        ) as change,
                    ):
                        placed, position = await self._changes(change, decided)
                except OptimisticConflictError as conflict:
                    if conflict.what == "order":
                        client_order_id = decided.intent.client_order_id
                        raise DuplicateOrderError(client_order_id) from conflict
                    async with self.db.raw() as connection:
                        fresh = await read_head(connection, account.account_id, order.symbol)
                    if fresh is None:
                        return None
                    head = fresh
                    continue
                self.heads.committed(account.account_id, change.head_after(position, head))
                return Placed(placed, account.currency, position)
        return None

    async def _changes(
        self, change: AccountChange, decided: Decided
    ) -> tuple[OrderRow, PositionRow | None]:
        """The order's transitions from NEW, in `change`: the check's outcome, then execution."""
        verdict = decided.verdict
        order = await change.create(decided.order)
        if verdict.reached:  # NEW -> SUBMITTED; a check not made rejects the NEW order
            note = "" if decided.intent.pre_trade_check else "no pre-trade check: a platform close"
            order = await change.apply(order, OrderEvent.SUBMITTED, note)
        if not verdict.approved:  # never approved when not reached (`risk.unavailable`)
            refused = reason_changes(verdict.reason, verdict.message)
            rejected = await change.apply(
                order, OrderEvent.REJECTED, verdict.message, changes=refused
            )
            return rejected, None
        changes = {"execution_mode": decided.mode}
        order = await change.apply(order, OrderEvent.ACCEPTED, changes=changes)
        return await self._execute(change, order, decided.decision, decided.fill_terms)

    async def _execute(
        self,
        change: AccountChange,
        order: OrderRow,
        decision: execution.Decision | None,
        fill_terms: FillTerms,
    ) -> tuple[OrderRow, PositionRow | None]:
        if isinstance(decision, FillAt):
            booked = await book_fill(change, order, order.quantity, decision.price, fill_terms)
            return booked.order, booked.position
        if isinstance(decision, Reject):
            changes = reason_changes(decision.reason, decision.message)
            if decision.requote_price is not None:
                changes["requote_price"] = decision.requote_price
            rejected = await change.apply(
                order, OrderEvent.REJECTED, decision.message, changes=changes
            )
            return rejected, None
        why = decision.why if isinstance(decision, Rest) else "working"
        return await change.apply(order, OrderEvent.ACTIVATED, why), None


def _executes_now(order: OrderRow, quote: LiveQuote | None) -> bool:
    """Whether a new order may execute at placement: a market order, or a limit order the
    live price reaches. Stop and stop-limit orders always rest first."""
    if order.type is OrderType.MARKET:
        return True
    if order.type is OrderType.LIMIT and order.price is not None and quote is not None:
        return execution.is_marketable(order.side, order.price, quote)
    return False


def check_price_of(order: OrderRow, mode: ExecutionMode) -> Decimal | None:
    """CheckOrderRequest.price: the limit price of a limit or stop-limit order, the stop price
    of a stop order, the requested price of a market order in instant execution; None values
    it at the live price."""
    if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return order.price
    if order.type is OrderType.STOP:
        return order.stop_price
    if mode is ExecutionMode.INSTANT:
        return order.requested_price
    return None


def check_request(
    order: OrderRow,
    purpose: risk_pb.CheckPurpose.ValueType,
    mode: ExecutionMode | None,
    open_orders: int,
    *,
    reserve_margin: bool = False,
    position_id: str | None = None,
) -> risk_pb.CheckOrderRequest:
    """The pre-trade check of `order` as it stands (placing, amending or triggering it): its
    quantity and what remains of it, the price it is valued at (`check_price_of`; the live
    price without one), the account's other open orders. `reserve_margin` only for an order
    that executes now (ADR 0007, "Risk"); `position_id`: the hedging position it closes."""
    request = risk_pb.CheckOrderRequest(
        account_id=order.account_id,
        order_id=order.id,
        purpose=purpose,
        symbol=order.symbol,
        side=order.side.to_proto(),
        quantity=plain_decimal(order.quantity),
        remaining_quantity=plain_decimal(order.remaining_quantity),
        open_order_count=open_orders,
        reserve_margin=reserve_margin,
    )
    valuation = None if mode is None else check_price_of(order, mode)
    if valuation is not None:
        request.price = plain_decimal(valuation)
    if position_id is not None:
        request.position_id = position_id
    return request

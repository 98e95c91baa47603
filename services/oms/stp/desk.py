"""STP execution (ADR 0007, "Execution modes"): netting windows, one hedge order per window at a
liquidity provider, and the allocation of its outcome to the window's client orders.

An STP market order is committed WORKING by `Placement` (the client's answer says so) and handed
to `StpDesk.take`, which puts it in its instrument's window; an order whose hand-off was lost
(the process stopped after the commit, a job failed every try) is found by the desk's sweep of
the committed orders every second (`intake`). The desk runs on the elected instance only (ADR
0017): a follower's `take` passes the order to it at once in a core NATS message on
`TAKE_SUBJECT` (not a stream: one lost, NATS away or no leader yet, leaves the order to the
leader's sweep, 1-2 s later), which the leading desk turns into the same join (or limit
order's try). A window opens with its first order
and closes `TM_OMS_STP_WINDOW_MS` (default 50) later. At its close, in one transaction with the
accounts' rows locked (in id order) and then the orders':

- an order no longer WORKING (cancelled meanwhile) or already in a hedge order stays out;
- an order whose group has no live price waits for one (below);
- the rest net to buys - sells (`domain.netting`). Zero: every order fills at once at the raw
  best price of its side plus its group's markup. Otherwise one hedge order for |net| is
  stored NEW, linked to every order with its group's markup, routed to the provider whose quote
  made the best price on the hedge's side (the price's provenance), else any logged-on one.

After the commit the hedge goes out as a FIX NewOrderSingle (market, IOC, ClOrdID = its id,
`lp_orders.LpOrderRouter`) and becomes SENT; no session to its provider: REJECTED /
LP_UNAVAILABLE. Every execution report is applied in one transaction (`hedges.on_report`,
fills de-duplicated on ExecID), with its `oms.hedge_order.*` event in the outbox. The report
that ends the hedge (FILLED, CANCELLED rest, REJECTED) also allocates the window in the same
transaction (`allocation.Allocation`, `domain.netting.allocate`): each client order fills at its
own price through `fills.book_fill` (trades carry the hedge's id; positions, commission, P&L and
events as for any fill), the unfilled rest of an IOC is CANCELLED / NO_LIQUIDITY (REJECTED when
nothing filled, with the hedge's reason), a FOK not filled in full is REJECTED / NO_LIQUIDITY,
and an order the client asked to cancel meanwhile (PENDING_CANCEL) takes what it was allocated
and is cancelled.
One account's failure to book (a position closed meanwhile, no conversion price) rejects that
account's orders only (a savepoint each).

An order acknowledged WORKING is not rejected because our own price feed blinked (pricing, NATS
or Redis restarting; issue #18): when its group has no live price at its window's close (or
when an IOC or FOK limit order is tried, below) it stays WORKING and waits, in memory, for a
live quote of its group and symbol (`price_waits.PriceWaits`), looked for every
`PRICE_RECHECK` (250 ms) without touching the database; one there, a market order joins a new
window and a limit order is tried again, at that live price, never at the old one. An order
still without a live price `TM_OMS_STP_PRICE_WAIT_S` (30) after it was created is REJECTED /
PRICE_UNAVAILABLE, its message saying how long it waited (`unpriced`). The waiting orders are
left out of the sweep; after a restart they rejoin windows (or are tried) with the other orders
in no hedge order, their wait still counted from their creation.

Everything that changes hedge orders runs on one worker (`worker.DeskWorker`), in arrival order:
window closes, sends, reports, and the checks after a restart. So a report never overtakes the
SENT of its own hedge, and the reports of one hedge apply in the order the provider sent them.

Every execution report is committed to `oms.lp_execution_reports` on QuickFIX's thread before
QuickFIX counts it as received (`lp_orders`, `report_journal`), and its job here marks that row
applied in the transaction that applies it; rows not applied (the process died in between) are
applied again, in received order, at start and after each logon. A report that could not be
stored is resent by the provider (its session is dropped unconsumed).

A hedge order at the provider that hears nothing for `TM_OMS_HEDGE_STATUS_AFTER_S` (10) is
asked about with an OrderStatusRequest (`chase.Chase`), again every as long while nothing
changes; the answer applies as the reports it stands for (`hedges.status_steps`: a fill once, by
the provider's CumQty); "unknown order" for a hedge never acknowledged sends it again (below).
One still open `TM_OMS_HEDGE_UNKNOWN_AFTER_S` (60) after it was made is of unknown fate: an
error is logged once and the gauge `tradingmesh_oms_hedge_orders_unknown` counts it until it
ends; nothing is invented (no fill, no rejection) and its client orders stay WORKING for a human
to reconcile with the provider (ADR 0007).

Every other answer of an LP (a Reject or Business Message Reject of a NewOrderSingle or an
OrderStatusRequest, an OrderCancelReject, a DontKnowTrade; `lp_messages`) is stored before it
reaches the desk and applied here in one transaction (`_apply_message`): a refused
NewOrderSingle ends its hedge REJECTED / LP_REJECTED with the LP's words and allocates it like
any rejected hedge; a refused status request makes the hedge of unknown fate at once. The
MsgSeqNum of every message the desk sends is recorded so that a Reject finds it. Operators
settle a hedge of unknown fate (`settle_hedge`, on this worker, as the provider's answer would
be applied, the operator as the actor) and reset or set an order session's sequence numbers
(`sessions`, a `session_admin.OrderSessionAdmin`: not on the worker), each with an operator
audit record (`operator_audit`).

After a restart: stored reports not applied are applied first; hedge orders that ended but
whose allocation did not commit are allocated; reports the provider sent meanwhile arrive by
FIX resend (the session's store keeps sequence numbers); NEW hedge orders (never known to be
sent: the process may have died before or after the NewOrderSingle left) are asked about at
their provider's logon with an OrderStatusRequest, which it answers after its resend: with the
order's state, applied as usual, or "unknown order", and then the hedge is sent now under the
same ClOrdID (issue #18: before, they were REJECTED / LP_UNAVAILABLE 30 s after the logon, and
their clients' orders paid for our restart). Unanswered, they are asked again and reported of
unknown fate like SENT ones. Any hedge not yet acknowledged and with nothing filled that its
provider says it does not know is sent again the same way, once per process (a second "unknown
order" rejects it). This reading of "unknown order" relies on providers keeping their orders
across their own restarts, as real LPs and our simulators do. A hedge made in the first 10 s
after the start whose provider's session has not logged on yet waits for that logon and goes
out then (`_awaiting_logon`), instead of REJECTED / LP_UNAVAILABLE at once; past those 10 s a
provider that never logged on rejects it as before. STP orders still WORKING in no hedge order
(their window never closed) join new windows once prices are live again.

Market orders take this path, and stop orders once the trigger engine (`triggers/engine.py`) has
triggered them.

Limit orders are never netted (`domain.netting`): an STP limit order, and a stop-limit once its
stop has triggered, gets a hedge order of its own for its whole rest, sent as a FIX limit order
at the raw price equivalent to its limit (its limit less its group's ask markup for a buy, plus
the bid markup for a sell, rounded in the client's favour), IOC, or FOK for a FOK order. It is
tried (`attempt_limit`, on the same worker) when it is placed and whenever the trigger engine
sees its price reached (buy: ask <= limit, sell: bid >= limit, at the group's price); the
attempt re-reads the order under its account's lock and checks the price again at the live
quote. Not reachable: IOC and FOK are REJECTED / NO_LIQUIDITY (without a live price they wait
for one as market orders do, then PRICE_UNAVAILABLE), GTC and DAY keep working. Each fill of
the hedge fills the client order at the hedge's average price plus the markup, capped at the
limit. The rest: IOC CANCELLED / NO_LIQUIDITY (REJECTED when nothing filled), FOK REJECTED /
NO_LIQUIDITY unless filled in full, GTC and DAY stay WORKING or PARTIALLY_FILLED and go back to
the trigger engine, which waits before the price may try them again
(`domain.triggers.retry_pause`). A cancel while the hedge is at the provider
is PENDING_CANCEL: the order takes what the hedge filled and is cancelled. After a restart IOC
and FOK limit orders in no hedge order are tried once prices are live; GTC and DAY ones are in
the trigger engine's index.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Final

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.domain.netting import allocate
from services.oms.domain.netting import net_of
from services.oms.domain.netting import raw_limit
from services.oms.domain.positions import Side
from services.oms.domain.state import WORKING_STATUSES
from services.oms.domain.state import OrderStatus
from services.oms.entry.execution import LiveQuote
from services.oms.feeds.quotes import QuoteBook
from services.oms.model import Account
from services.oms.model import ExecutionMode
from services.oms.model import OrderRow
from services.oms.model import OrderType
from services.oms.model import TimeInForce
from services.oms.store import hedges as hedge_store
from services.oms.store import operator_audit
from services.oms.store.changes import account_context
from services.oms.store.changes import get_order
from services.oms.store.changes import load_account
from services.oms.store.events import system_actor
from services.oms.store.rows import found
from services.oms.stp import hedges
from services.oms.stp import intake
from services.oms.stp import lp_messages
from services.oms.stp import report_journal
from services.oms.stp.allocation import Allocation
from services.oms.stp.allocation import LimitNote
from services.oms.stp.allocation import contexts_of
from services.oms.stp.allocation import digits_of
from services.oms.stp.chase import Chase
from services.oms.stp.config import StpConfig
from services.oms.stp.hedges import HedgeRow
from services.oms.stp.hedges import HedgeStatus
from services.oms.stp.hedges import SettlementOutcome
from services.oms.stp.lp_orders import ExecutionReport
from services.oms.stp.lp_orders import HedgeRequest
from services.oms.stp.lp_orders import LpOrderRouter
from services.oms.stp.lp_orders import LpUnavailableError
from services.oms.stp.lp_orders import ReportKind
from services.oms.stp.lp_orders import StoredReport
from services.oms.stp.price_waits import PriceWait
from services.oms.stp.price_waits import PriceWaits
from services.oms.stp.rules import AwaitPrice
from services.oms.stp.rules import HedgeAt
from services.oms.stp.rules import Refuse
from services.oms.stp.rules import Settlement
from services.oms.stp.rules import Wait
from services.oms.stp.rules import Window
from services.oms.stp.rules import WindowBook
from services.oms.stp.rules import arrival
from services.oms.stp.rules import is_stp_limit
from services.oms.stp.rules import limit_attempt
from services.oms.stp.rules import markups_of
from services.oms.stp.rules import raw_prices_of
from services.oms.stp.rules import route
from services.oms.stp.rules import settlements_of
from services.oms.stp.rules import unpriced
from services.oms.stp.rules import window_order
from services.oms.stp.session_admin import OrderSessionAdmin
from services.oms.stp.worker import DeskWorker
from services.platform.db import Database
from services.platform.errors import DomainError
from services.platform.metrics import REGISTRY
from services.platform.resources import Resources
from services.platform.secrets import Secret
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.exact import plain_decimal

__all__ = [
    "ACTOR",
    "TAKE_SUBJECT",
    "LimitListener",
    "LimitSettled",
    "StpDesk",
]

log = logging.getLogger(__name__)

ACTOR: Final = system_actor("oms-stp")
_R = ErrorReason
_ZERO: Final = Decimal(0)
# A follower's hand-off to the leading desk (ADR 0017): core NATS, outside every stream's
# subjects; the order in headers (`_TAKE_HEADERS`: order, account, symbol, how to take it).
TAKE_SUBJECT: Final = "stp.take"
_TAKE_HEADERS: Final = ("tm-order-id", "tm-account-id", "tm-symbol", "tm-take")
_TAKE_WINDOW: Final = "window"  # a market order (or a triggered stop) joins its window
_TAKE_LIMIT: Final = "limit"  # a limit order (or a triggered stop-limit) is tried

PARKED_MESSAGES = Counter(
    "tradingmesh_oms_lp_messages_parked",
    "answers of an LP the desk could not act on (a Reject of a message the OMS has no record"
    " of, a DontKnowTrade, ...): parked in oms.lp_messages for an operator",
    ["lp"],
    registry=REGISTRY,
)


# -- the desk --------------------------------------------------------------------------------------


Credentials = Callable[[str], tuple[str, Secret]]


@dataclass(frozen=True)
class LimitSettled:
    """What an attempt did to an STP limit order, for the trigger engine: `order` as it is
    now; `filled` what its hedge order filled, None when no hedge order ran (its price was not
    there, or it ended)."""

    order: OrderRow
    group_id: str
    filled: Decimal | None


LimitListener = Callable[[LimitSettled], None]


@dataclass(frozen=True)
class _Member:
    order: OrderRow
    account: Account
    quote: LiveQuote


class StpDesk:
    """Runs STP execution; a `placement.WorkingOrderSink`. `start` once the connections are
    open, `stop` before they close."""

    def __init__(
        self,
        resources: Resources,
        quotes: QuoteBook,
        config: StpConfig,
        credentials: Credentials,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.resources = resources
        self.quotes = quotes
        self.config = config
        self._credentials = credentials
        self.clock = clock
        self.book = WindowBook()
        self.allocation = Allocation(quotes, clock)  # an outcome shared out to client orders
        self.router: LpOrderRouter | None = None
        self.intake = intake.Intake()  # the orders in a window or a job (the sweep's)
        self.worker = DeskWorker(self.intake)  # every change of hedge orders, one at a time
        self._sweep_queued = False
        self._sent: set[str] = set()  # hedge orders this process sent (never send one twice)
        self._sent_numbers: dict[str, int] = {}  # hedge order id -> its MsgSeqNum, until SENT
        self._limit_listeners: list[LimitListener] = []
        self._journal: report_journal.ReportJournal | None = None
        self._resent: set[str] = set()  # sent again after "unknown order" (once each)
        self._logged_on_once: set[str] = set()  # providers logged on since the start
        self._retried: set[str] = set()  # hedges sent once more in the first-logon grace
        self._first_logon_due: datetime | None = None  # the end of `first_logon_grace`
        self._awaiting_logon: dict[str, set[str]] = defaultdict(set)  # lp -> hedges to send
        # The orders waiting for a live price (`price_waits`).
        self.price_waits = PriceWaits(
            quotes,
            clock,
            config.price_wait,
            self.worker.call_later,
            join=self._join,
            try_limit=self._try_limit,
        )
        # The hedge orders their provider is quiet about, asked about (`chase`).
        self.chase = Chase(resources, config, self.worker, lambda: self.router, clock)
        # Operators' reads and resets of the order sessions' numbers (`session_admin`).
        self.sessions = OrderSessionAdmin(
            resources, [lp.lp for lp in config.lps], lambda: self.router, clock
        )
        self._takes: Subscription | None = None  # the followers' hand-offs, while leading
        # False on an instance that follows (`lead`, ADR 0017): it takes no order.
        self.leading = True

    @property
    def db(self) -> Database:
        return self.resources.db

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.worker.start()
        if self.config.lps:
            try:
                credentials = {lp.lp: self._credentials(lp.lp) for lp in self.config.lps}
            except Exception:
                log.exception("no LP logon credentials: STP hedge orders cannot be sent")
            else:
                self._journal = report_journal.ReportJournal(
                    report_journal.connector(self.resources.settings, self.resources.vault)
                )
                self.router = LpOrderRouter(
                    self.config.lps,
                    credentials,
                    self.config.store_dir,
                    loop,
                    self._journal,
                    self._on_report,
                    self._on_logon,
                    on_message=self._on_message,
                )
                self.router.start()
        self._first_logon_due = self.clock() + self.config.first_logon_grace
        self.worker.later(
            self.config.first_logon_grace, "hedges still awaiting a logon", self._end_awaiting
        )
        self.worker.enqueue("recovery", self._recover)
        self.worker.later(self.config.rejoin_after_start, "waiting orders", self._rejoin_waiting)
        self.chase.start()
        self.worker.call_later(self.config.rejoin_after_start + intake.SWEEP_EVERY, self._sweep_due)

    async def lead(self) -> None:
        """The desk on the elected instance (ADR 0017): started, and stopped when leadership
        ends (cancelled). Only the leader logs on to the LPs' order sessions and hears the
        followers' hand-offs (`TAKE_SUBJECT`); the sweep of committed orders takes any that
        were lost."""
        await self.start()
        self.leading = True
        try:
            self._takes = await self.resources.nats.subscribe(TAKE_SUBJECT, cb=self._on_take)
        except Exception:
            log.exception("STP: no subscription to the followers' hand-offs; the sweep takes them")
        try:
            await asyncio.Event().wait()
        finally:
            self.leading = False
            await asyncio.shield(self.stop())

    async def stop(self) -> None:
        """Open windows stay open (their orders rejoin windows after the restart); the jobs
        queued are done first, while the sessions are still up, so hedge orders in flight get
        their reports; then the sessions log out, and the reports that came meanwhile are
        applied (QuickFIX counts them as received and would not ask for them again)."""
        if self._takes is not None:
            with contextlib.suppress(Exception):
                await self._takes.unsubscribe()
            self._takes = None
        self.worker.cancel_timers()
        # The orders waiting for a price are WORKING in no hedge order: after the restart (or
        # on the next leader) they rejoin windows with the others (`_rejoin_waiting`).
        self.price_waits.clear()
        await self.worker.drain()
        if self.router is not None:
            await asyncio.to_thread(self.router.stop)
            self.router = None
        if self._journal is not None:
            await asyncio.to_thread(self._journal.close)
            self._journal = None
        await self.worker.stop()

    # -- the WorkingOrderSink ----------------------------------------------------------------------

    async def take(self, order: OrderRow, account: Account) -> None:
        """An order committed WORKING: an STP market order joins its instrument's window; an
        STP limit order is tried at once (a stop-limit waits for its stop). On a follower both
        go to the leading desk (`_hand_to_leader`)."""
        if order.execution_mode is not ExecutionMode.STP:
            return
        if order.type is OrderType.MARKET:
            if not self.leading:
                await self._hand_to_leader(order, account.account_id, _TAKE_WINDOW)
                return
            self._join(order.symbol, order.id, account.account_id)
        elif order.type is OrderType.LIMIT:
            await self.attempt_limit(order, account)

    async def attempt_limit(self, order: OrderRow, account: Account) -> None:
        """Tries an STP limit order (or a triggered stop-limit) on the worker: a hedge order at
        its limit if its price is there (see the module doc); on a follower, on the leader's."""
        if not self.leading:
            await self._hand_to_leader(order, account.account_id, _TAKE_LIMIT)
            return
        self._try_limit(order.id, account.account_id)

    async def _hand_to_leader(self, order: OrderRow, account_id: str, how: str) -> None:
        """A follower's take (ADR 0017): the order, committed, goes to the leading desk in a
        core NATS message (`_on_take` there). Lost (NATS away, no leader yet): the leader's
        sweep of committed orders takes it a second or two later."""
        values = (order.id, account_id, order.symbol, how)
        try:
            await self.resources.nats.publish(
                TAKE_SUBJECT, b"", headers=dict(zip(_TAKE_HEADERS, values, strict=True))
            )
        except Exception as error:
            log.warning(
                "STP: an order could not be handed to the leading desk; its sweep takes it",
                extra={"order_id": order.id, "error": str(error)},
            )

    async def _on_take(self, message: Msg) -> None:
        """A follower's hand-off, on the leader: the order joins its window or is tried, as if
        taken here (the close and the try re-read it under its lock: an order not WORKING, not
        STP, or already hedged stays out)."""
        headers = message.headers or {}
        order_id, account_id, symbol, how = (headers.get(name, "") for name in _TAKE_HEADERS)
        if not self.leading or not (hedges.is_uuid(order_id) and hedges.is_uuid(account_id)):
            return
        if how == _TAKE_WINDOW and symbol:
            self._join(symbol, order_id, account_id)
        elif how == _TAKE_LIMIT:
            self._try_limit(order_id, account_id)

    def listen_limits(self, listener: LimitListener) -> None:
        """`listener` hears of every STP limit order an attempt or a hedge order left (the
        trigger engine: it takes a working one back into its index)."""
        self._limit_listeners.append(listener)

    def _join(self, symbol: str, order_id: str, account_id: str) -> None:
        self.intake.hold((order_id,))  # until its window's close has run
        if self.book.add(symbol, order_id, account_id):
            self.worker.call_later(self.config.window, partial(self._window_due, symbol))

    def _try_limit(self, order_id: str, account_id: str) -> None:
        """Queues a try of an STP limit order (`_attempt_limit`), held until it has run."""
        self.worker.enqueue(
            f"limit {order_id}",
            partial(self._attempt_limit, order_id, account_id),
            held=(order_id,),
        )

    def _window_due(self, symbol: str) -> None:
        """The window's time is up: it takes no more orders (a later one opens a new window)
        and is closed by the worker in its turn."""
        window = self.book.close(symbol)
        if window is not None:
            self.worker.enqueue(
                f"window {symbol}", partial(self._close_window, window), held=window.order_ids
            )

    # -- FIX callbacks (on the event loop) ---------------------------------------------------------

    def _on_report(self, stored: StoredReport) -> None:
        report = stored.report
        self.worker.enqueue(
            f"report {report.key} of {report.hedge_order_id}",
            partial(self._apply_report, report, stored.row_id),
        )

    def _on_message(self, stored: lp_messages.StoredMessage) -> None:
        message = stored.message
        self.worker.enqueue(
            f"{message.kind.value} {message.key} from {message.lp}",
            partial(self._apply_message, stored),
        )

    def _on_logon(self, lp: str) -> None:
        logon = self.clock()
        self._logged_on_once.add(lp)
        self.worker.enqueue(f"stored reports of {lp}", partial(self._apply_stored, lp))
        for hedge_id in sorted(self._awaiting_logon.pop(lp, set())):
            self.worker.enqueue(f"send {hedge_id} at logon", partial(self._send, hedge_id))
        self.worker.enqueue(
            f"hedge orders of {lp} not known to be sent",
            partial(self.chase.ask_unsent, lp, logon, self._sent),
        )

    # -- closing a window --------------------------------------------------------------------------

    async def _close_window(self, window: Window) -> None:
        now = self.clock()
        hedge: HedgeRow | None = None
        async with self.db.transaction() as session:
            await hedge_store.lock_accounts(session, list(window.account_ids.values()))
            orders = await hedge_store.lock_orders(session, window.order_ids)
            in_hedges = await hedge_store.hedged_order_ids(session, window.order_ids)
            contexts = await contexts_of(
                session, {o.account_id for o in orders.values()}, window.symbol
            )
            members: list[_Member] = []
            settlements: list[Settlement] = []
            waits: dict[str, PriceWait] = {}
            for order in sorted(orders.values(), key=arrival):
                context = contexts.get(order.account_id)
                if (
                    order.status is not OrderStatus.WORKING
                    or order.execution_mode is not ExecutionMode.STP
                    or order.id in in_hedges
                    or context is None
                ):
                    continue  # cancelled meanwhile, or already hedged (a repeated take)
                quote = self.quotes.live(context.account.group_id, order.symbol, now)
                if quote is None:
                    refusal = unpriced(order, now, self.config.price_wait)
                    if refusal is None:
                        waits[order.id] = self.price_waits.wait_of(
                            order, context.account.group_id, market=True
                        )
                    else:
                        settlements.append(refusal)
                else:
                    members.append(_Member(order, context.account, quote))
            if members:
                window_orders = [window_order(m.order, *markups_of(m.quote)) for m in members]
                net = net_of(window_orders)
                reference = max((m.quote for m in members), key=lambda q: q.time)
                raw = raw_prices_of(reference)
                if net.side is None:
                    digits = digits_of(contexts)
                    allocations = allocate(window_orders, None, raw, digits)
                    settlements += settlements_of(allocations, window_orders, None)
                else:
                    hedge = self._new_hedge(
                        window.symbol,
                        net.side,
                        net.quantity,
                        net.gross_buy,
                        net.gross_sell,
                        reference,
                        now,
                    )
                    links = [
                        hedge_store.HedgeLink(
                            m.order.id, m.order.account_id, w.bid_markup, w.ask_markup
                        )
                        for m, w in zip(members, window_orders, strict=True)
                    ]
                    await hedge_store.insert_hedge(session, hedge, links)
            await self.allocation.settle(
                session, window.symbol, None, orders, settlements, contexts, now, actor=ACTOR
            )
        self.price_waits.add(waits)
        if hedge is not None:
            log.info(
                "STP hedge order created",
                extra={
                    "hedge_order_id": hedge.id,
                    "symbol": hedge.symbol,
                    "side": hedge.side.value,
                    "quantity": str(hedge.quantity),
                    "lp": hedge.liquidity_provider_id,
                    "orders": len(window.order_ids),
                },
            )
            self.worker.enqueue(f"send {hedge.id}", partial(self._send, hedge.id))

    # -- sending -----------------------------------------------------------------------------------

    async def _send(self, hedge_id: str, *, again: bool = False) -> None:
        """Sends a NEW hedge order (`again`: a NEW or SENT one its provider never received)."""
        async with self.db.read_session() as session:
            hedge = await hedge_store.get_hedge(session, hedge_id)
        sendable = (HedgeStatus.NEW, HedgeStatus.SENT) if again else (HedgeStatus.NEW,)
        if hedge is None or hedge.status not in sendable:
            return
        if hedge.id not in self._sent:
            async with self.db.read_session() as session:
                limit, fill_or_kill = await self._limit_terms(session, hedge)
            try:
                if self.router is None:
                    raise LpUnavailableError("no LP order session is configured")
                # Off the event loop: QuickFIX holds the session's lock while its thread
                # stores a report (up to the journal's statement timeout).
                number = await asyncio.to_thread(
                    self.router.send,
                    HedgeRequest(
                        hedge.id,
                        hedge.liquidity_provider_id,
                        hedge.symbol,
                        hedge.side,
                        hedge.quantity,
                        limit,
                        fill_or_kill,
                    ),
                )
            except LpUnavailableError as error:
                lp = hedge.liquidity_provider_id
                if self._in_first_logon_grace(lp) and hedge.id not in self._retried:
                    # Just restarted: its session is about to log on; the hedge (known not
                    # sent) goes out then, rather than its clients paying for our restart.
                    if lp in self._logged_on_once:  # it logged on meanwhile: once more now
                        self._retried.add(hedge.id)
                        self.worker.enqueue(f"send {hedge.id}", partial(self._send, hedge.id))
                    else:
                        self._awaiting_logon[lp].add(hedge.id)
                        log.info(
                            "STP hedge order waits for its provider's first logon",
                            extra={"hedge_order_id": hedge.id, "lp": lp},
                        )
                    return
                await self._end_unsent(hedge.id, f"not sent: {error}")
                return
            self._sent.add(hedge.id)
            self._sent_numbers[hedge.id] = number
        async with self.db.transaction() as session:
            current = await hedge_store.get_hedge(session, hedge_id, lock=True)
            if current is None:
                return
            # Its MsgSeqNum, where a Reject's RefSeqNum finds it (before a Reject is applied:
            # this job runs first on the worker).
            number = self._sent_numbers.get(hedge_id, 0)
            await report_journal.record_sent(
                session, current.liquidity_provider_id, number, "D", hedge_id, self.clock()
            )
            sent = hedges.on_sent(current, self.clock())
            if sent is not None:
                await hedge_store.publish(session, current, sent, ACTOR)
        self._sent_numbers.pop(hedge_id, None)

    async def _limit_terms(
        self, session: AsyncSession, hedge: HedgeRow
    ) -> tuple[Decimal | None, bool]:
        """(the raw limit, FOK) of a limit order's own hedge order; (None, False) for a
        window's. The raw limit is computed again from the client's limit and the markup stored
        with the link: neither can change while the hedge is open."""
        links = await hedge_store.links_of(session, hedge.id)
        if len(links) != 1:
            return None, False
        (link,) = links
        order = await get_order(session, link.account_id, link.order_id)
        if order is None or not is_stp_limit(order):
            return None, False
        context = await account_context(session, link.account_id, hedge.symbol)
        digits = digits_of({link.account_id: context} if context is not None else {})
        window = window_order(order, link.bid_markup, link.ask_markup)
        return raw_limit(window, digits), order.time_in_force is TimeInForce.FOK

    def _in_first_logon_grace(self, lp: str) -> bool:
        """Whether the desk started less than `first_logon_grace` ago and `lp` is one of its
        providers (its session may not have logged on yet)."""
        due = self._first_logon_due
        return (
            self.router is not None
            and lp in {endpoint.lp for endpoint in self.config.lps}
            and due is not None
            and self.clock() < due
        )

    async def _end_awaiting(self) -> None:
        """The first-logon grace is over: hedges still waiting for a provider that never logged
        on are REJECTED / LP_UNAVAILABLE, as when a session is down."""
        waiting = {lp: ids for lp, ids in self._awaiting_logon.items() if ids}
        self._awaiting_logon.clear()
        for lp, hedge_ids in waiting.items():
            for hedge_id in sorted(hedge_ids):
                await self._end_unsent(hedge_id, f"not sent: no session to {lp} after the start")

    async def _end_unsent(self, hedge_id: str, message: str) -> None:
        """REJECTED / LP_UNAVAILABLE for a hedge order that did not leave, and its window
        allocated (the internalized part still fills)."""
        notes: list[LimitNote] = []
        async with self.db.transaction() as session:
            hedge = await hedge_store.get_hedge(session, hedge_id, lock=True)
            if hedge is None:
                return
            ended = hedges.rejected(hedge, _R.ERROR_REASON_LP_UNAVAILABLE, message, self.clock())
            if ended is None:
                return
            await hedge_store.publish(session, hedge, ended, ACTOR)
            notes = await self.allocation.allocate(session, ended, ACTOR)
        log.warning(
            "STP hedge order not sent", extra={"hedge_order_id": hedge_id, "error": message}
        )
        await self._notify(notes)

    # -- limit orders ------------------------------------------------------------------------------

    async def _attempt_limit(self, order_id: str, account_id: str) -> None:
        """One try of an STP limit order (the module doc), in one transaction with its account
        and its row locked: nothing if its hedge order is still at the provider; else a hedge
        order at its raw limit, or its refusal (IOC, FOK), or it keeps working (GTC, DAY; an IOC
        or FOK without a live price waits for one)."""
        now = self.clock()
        hedge: HedgeRow | None = None
        decision: HedgeAt | Wait | AwaitPrice | Refuse | None = None
        quote: LiveQuote | None = None
        waits: dict[str, PriceWait] = {}
        async with self.db.transaction() as session:
            await hedge_store.lock_accounts(session, [account_id])
            orders = await hedge_store.lock_orders(session, [order_id])
            order = orders.get(order_id)
            if order is None:
                return
            if _attemptable(order) and not await hedge_store.in_flight(session, order_id):
                contexts = await contexts_of(session, {account_id}, order.symbol)
                context = contexts.get(account_id)
                if context is None or context.instrument is None:
                    decision = Wait("the instrument is not offered to the account's group")
                else:
                    quote = self.quotes.live(context.account.group_id, order.symbol, now)
                    decision = limit_attempt(
                        order,
                        quote,
                        context.instrument.digits,
                        now=now,
                        price_wait=self.config.price_wait,
                    )
                    if isinstance(decision, AwaitPrice):
                        waits[order.id] = self.price_waits.wait_of(
                            order, context.account.group_id, market=False
                        )
                if isinstance(decision, Refuse):
                    await self.allocation.settle(
                        session,
                        order.symbol,
                        None,
                        orders,
                        [decision.settlement],
                        contexts,
                        now,
                        actor=ACTOR,
                    )
                elif isinstance(decision, HedgeAt):
                    assert quote is not None
                    hedge = await self._insert_limit_hedge(
                        session, account_id, decision, quote, now
                    )
            elif _attemptable(order):
                return  # its hedge order is at the provider: its end tells the listeners
        if hedge is not None and isinstance(decision, HedgeAt):
            log.info(
                "STP limit hedge order created",
                extra={
                    "hedge_order_id": hedge.id,
                    "order_id": order_id,
                    "symbol": hedge.symbol,
                    "side": hedge.side.value,
                    "quantity": str(hedge.quantity),
                    "limit": str(decision.raw_limit),
                    "lp": hedge.liquidity_provider_id,
                },
            )
            self.worker.enqueue(f"send {hedge.id}", partial(self._send, hedge.id))
            return
        if isinstance(decision, AwaitPrice):
            self.price_waits.add(waits)  # still WORKING, nothing settled: no listener to tell
            return
        if isinstance(decision, Wait):
            log.debug("STP limit order waits", extra={"order_id": order_id, "why": decision.why})
        await self._notify([LimitNote(order_id, account_id, None)])

    def _new_hedge(
        self,
        symbol: str,
        side: Side,
        quantity: Decimal,
        gross_buy: Decimal,
        gross_sell: Decimal,
        quote: LiveQuote,
        now: datetime,
    ) -> HedgeRow:
        """A NEW hedge order, routed to the provider behind `quote`'s price on its side (else
        any logged-on one), with the raw prices it was decided at."""
        raw = raw_prices_of(quote)
        logged_on = self.router.logged_on() if self.router is not None else []
        return HedgeRow(
            id=str(uuid.uuid4()),
            symbol=symbol,
            side=side,
            quantity=quantity,
            gross_buy_quantity=gross_buy,
            gross_sell_quantity=gross_sell,
            liquidity_provider_id=route(side, quote, logged_on, [lp.lp for lp in self.config.lps]),
            status=HedgeStatus.NEW,
            created_at=now,
            updated_at=now,
            version=1,
            raw_bid=raw.bid,
            raw_ask=raw.ask,
        )

    async def _insert_limit_hedge(
        self,
        session: AsyncSession,
        account_id: str,
        decision: HedgeAt,
        quote: LiveQuote,
        now: datetime,
    ) -> HedgeRow:
        window = decision.order
        buying = window.side is Side.BUY
        hedge = self._new_hedge(
            quote.symbol,
            window.side,
            window.quantity,
            window.quantity if buying else _ZERO,
            _ZERO if buying else window.quantity,
            quote,
            now,
        )
        link = hedge_store.HedgeLink(
            window.order_id, account_id, window.bid_markup, window.ask_markup
        )
        await hedge_store.insert_hedge(session, hedge, [link])
        return hedge

    async def _notify(self, notes: Sequence[LimitNote]) -> None:
        """Tells the listeners what became of the limit orders (after the commit)."""
        if not notes or not self._limit_listeners:
            return
        settled = []
        async with self.db.read_session() as session:
            for note in notes:
                account = await load_account(session, note.account_id)
                order = await get_order(session, note.account_id, note.order_id)
                if account is not None and order is not None:
                    settled.append(LimitSettled(order, account.group_id, note.filled))
        for item in settled:
            for listener in self._limit_listeners:
                try:
                    listener(item)
                except Exception:
                    log.exception("an STP limit listener failed", extra={"order_id": item.order.id})

    # -- execution reports -------------------------------------------------------------------------

    async def _apply_report(self, report: ExecutionReport, row_id: int | None = None) -> None:
        """Applies a report in one transaction, which also marks its stored row applied
        (`row_id`; nothing is done if it was applied before). A STATUS answer applies as the
        reports it stands for (`hedges.status_steps`)."""
        notes: list[LimitNote] = []
        async with self.db.transaction() as session:
            if row_id is not None and not await report_journal.mark_applied(session, row_id):
                return  # applied before: handed over twice (a resend, or a replay)
            hedge = None
            if hedges.is_uuid(report.hedge_order_id):
                hedge = await hedge_store.get_hedge(session, report.hedge_order_id, lock=True)
            if hedge is not None:
                notes = await self._apply_to_hedge(session, hedge, report)
        if hedge is None:
            log.warning(
                "an execution report for an order the OMS did not send",
                extra={"lp": report.lp, "cl_ord_id": report.hedge_order_id},
            )
            await self._dont_know(report)
            return
        await self._notify(notes)

    async def _apply_to_hedge(
        self, session: AsyncSession, hedge: HedgeRow, report: ExecutionReport
    ) -> list[LimitNote]:
        """The report's steps applied to its hedge order (locked) in the caller's
        transaction; the limit orders the allocation settled."""
        steps = [report]
        if report.kind is ReportKind.STATUS:
            try:
                steps = hedges.status_steps(hedge, report)
            except ValueError as error:
                log.error(
                    "an order status answer the hedge order cannot take",
                    extra={"hedge_order_id": hedge.id, "error": str(error)},
                )
                return []
            log.info(
                "the provider answered an order status request",
                extra={
                    "hedge_order_id": hedge.id,
                    "ord_status": report.order_status,
                    "cumulative_quantity": str(report.cumulative_quantity),
                    "steps": [step.kind.value for step in steps],
                },
            )
        if hedge.id not in self._resent and any(
            hedges.never_received(hedge, step) for step in steps
        ):
            self._send_again(hedge)
            return []
        notes: list[LimitNote] = []
        for step in steps:
            hedge, allocated = await self.allocation.apply(session, hedge, step, ACTOR)
            notes += allocated
        return notes

    def _send_again(self, hedge: HedgeRow) -> None:
        """The provider never received the hedge order (`hedges.never_received`): it is sent
        now under the same ClOrdID, once per process, instead of rejected; the client orders
        do not pay for our restart or a lost message (issue #18). A second "unknown order"
        after that is a rejection (`hedges.on_report`)."""
        self._resent.add(hedge.id)
        self._sent.discard(hedge.id)
        self.chase.sent_again(hedge.id)
        log.warning(
            "the provider never received a hedge order: it is sent now",
            extra={
                "hedge_order_id": hedge.id,
                "lp": hedge.liquidity_provider_id,
                "status": hedge.status.value,
            },
        )
        self.worker.enqueue(f"send {hedge.id} again", partial(self._send, hedge.id, again=True))

    async def _dont_know(self, report: ExecutionReport) -> None:
        """Answers an execution report about an order the OMS never sent with a DontKnowTrade
        (not an Order Status answer: that answers a request of ours), and records its
        MsgSeqNum."""
        if report.kind is ReportKind.STATUS or self.router is None:
            return
        why = "no order of ours has this ClOrdID"
        try:
            number = await asyncio.to_thread(self.router.dont_know, report, why)
        except LpUnavailableError:
            return  # the provider resends the report after the reconnect
        async with self.db.transaction() as session:
            await report_journal.record_sent(
                session, report.lp, number, "Q", report.hedge_order_id, self.clock()
            )

    # -- the LP's other answers (`lp_messages`) ---------------------------------------------------

    async def _apply_message(self, stored: lp_messages.StoredMessage) -> None:
        """Acts on a Reject, Business Message Reject, OrderCancelReject or DontKnowTrade in one
        transaction that also marks its stored row APPLIED (or PARKED) with what it did;
        nothing if it was dealt with before."""
        message = stored.message
        notes: list[LimitNote] = []
        async with self.db.transaction() as session:
            if not await report_journal.claim_message(session, stored.row_id):
                return  # dealt with before: handed over twice
            refused = await report_journal.find_sent(session, message)
            effect = lp_messages.effect_of(message, refused)
            parked = False
            if isinstance(effect, lp_messages.RejectHedge):
                outcome, notes = await self.allocation.reject(session, message.lp, effect, ACTOR)
            elif isinstance(effect, lp_messages.StatusRefused):
                self.chase.refused(effect.hedge_order_id, effect.text)
                outcome = "the provider refuses status requests: the hedge order's fate is unknown"
            elif isinstance(effect, lp_messages.AskStatus):
                self.chase.ask_soon(effect.hedge_order_id)
                outcome = f"{effect.why}: the order is asked about"
            elif isinstance(effect, lp_messages.Park):
                parked, outcome = True, effect.why
            else:
                outcome = effect.why
            await report_journal.settle_message(
                session,
                stored.row_id,
                parked=parked,
                outcome=outcome,
                cl_ord_id=refused.cl_ord_id if refused is not None else "",
            )
        extra = {
            "lp": message.lp,
            "kind": message.kind.value,
            "ref_seq_num": message.ref_seq_num,
            "cl_ord_id": message.cl_ord_id,
            "text": message.text,
            "outcome": outcome,
        }
        if parked:
            PARKED_MESSAGES.labels(message.lp).inc()
            log.error("ALERT: an LP's answer is parked for an operator: %s", outcome, extra=extra)
        else:
            log.warning("an LP's answer to the OMS's order session: %s", outcome, extra=extra)
        await self._notify(notes)

    # -- operators (OrderAdminService) -------------------------------------------------------------

    async def settle_hedge(
        self,
        hedge_id: str,
        outcome: SettlementOutcome,
        filled: Decimal | None,
        average: Decimal | None,
        reason: str,
        actor: Actor,
        correlation_id: str = "",
    ) -> HedgeRow:
        """An operator settles an open hedge order as its provider reported it to them
        (`hedges.settlement`): applied on the desk's worker, after whatever is queued, exactly
        as the provider's own reports would be (its client orders complete through the usual
        allocation), with the operator as the actor and an operator audit record, in one
        transaction. NOT_FOUND, INVALID_STATE (ended), VALIDATION_FAILED (a settlement the
        hedge cannot take)."""

        async def settle() -> HedgeRow:
            now = self.clock()
            notes: list[LimitNote] = []
            async with self.db.transaction() as session:
                hedge = found(
                    await hedge_store.get_hedge(session, hedge_id, lock=True),
                    "hedge order",
                    hedge_id,
                )
                if hedge.status.terminal:
                    raise DomainError(
                        _R.ERROR_REASON_INVALID_STATE,
                        f"hedge order {hedge_id} has ended ({hedge.status.value}):"
                        " nothing to settle",
                        metadata={"hedge_order_id": hedge_id, "status": hedge.status.value},
                    )
                record = uuid.uuid4()
                try:
                    steps = hedges.settlement(
                        hedge,
                        outcome,
                        filled,
                        average,
                        f"settled by an operator: {reason}",
                        f"operator:{record}",
                        now,
                    )
                except hedges.SettlementError as error:
                    raise DomainError(
                        _R.ERROR_REASON_VALIDATION_FAILED,
                        str(error),
                        field_violations=[(error.field, str(error))],
                    ) from error
                before = hedge
                for step in steps:
                    hedge, allocated = await self.allocation.apply(
                        session, hedge, step, actor, correlation_id
                    )
                    notes += allocated
                await operator_audit.append(
                    session,
                    actor=actor,
                    action="hedge_order.settle",
                    entity_type="hedge_order",
                    entity_id=hedge_id,
                    reason=reason,
                    before=_hedge_snapshot(before),
                    after={
                        **_hedge_snapshot(hedge),
                        "settlement": outcome.value,
                        "settlement_id": str(record),
                    },
                    now=now,
                    correlation_id=correlation_id,
                )
            log.warning(
                "a hedge order was settled by an operator",
                extra={
                    "hedge_order_id": hedge_id,
                    "outcome": outcome.value,
                    "status": hedge.status.value,
                    "filled": str(hedge.filled_quantity),
                    "operator": actor.id,
                },
            )
            self.chase.settled(hedge_id)
            await self._notify(notes)
            return hedge

        return await self.worker.on_worker(f"settle {hedge_id}", settle)

    # -- after a restart ---------------------------------------------------------------------------

    async def _recover(self) -> None:
        """Stored reports not applied are applied; ended hedge orders whose allocation did not
        commit are allocated; NEW ones of a provider without an order session here are
        REJECTED / LP_UNAVAILABLE (those of the others wait for their provider's logon)."""
        await self._apply_stored(None)
        async with self.db.read_session() as session:
            ended = await hedge_store.hedges_to_allocate(session)
            unsent = await hedge_store.new_hedges_before(session, None, self.clock())
        for hedge_id in ended:
            notes: list[LimitNote] = []
            async with self.db.transaction() as session:
                hedge = await hedge_store.get_hedge(session, hedge_id, lock=True)
                if hedge is not None and hedge.status.terminal:
                    notes = await self.allocation.allocate(session, hedge, ACTOR)
            await self._notify(notes)
        reachable = set() if self.router is None else {lp.lp for lp in self.config.lps}
        for hedge in unsent:
            if hedge.liquidity_provider_id not in reachable:
                await self._end_unsent(hedge.id, "its provider has no order session")

    async def _apply_stored(self, lp: str | None) -> None:
        """Applies the stored reports of `lp` (None: of every provider) not applied yet, in
        received order, then its other stored answers (`lp_messages`): those of a process that
        died before it applied them. One also waiting in the queue is skipped there (its row
        is applied by then)."""
        async with self.db.read_session() as session:
            waiting = await report_journal.unapplied(session, lp)
        if waiting:
            log.warning(
                "stored execution reports not applied yet are applied",
                extra={"lp": lp or "any", "reports": len(waiting)},
            )
        for stored in waiting:
            await self._apply_report(stored.report, stored.row_id)
        async with self.db.read_session() as session:
            messages = await report_journal.unapplied_messages(session, lp)
        for message in messages:
            await self._apply_message(message)

    # -- orders a hand-off missed (`intake`) -------------------------------------------------------

    def _sweep_due(self) -> None:
        """Every `SWEEP_EVERY`: the sweep joins the queue unless it is still waiting there."""
        self.worker.call_later(intake.SWEEP_EVERY, self._sweep_due)
        if not self._sweep_queued:
            self._sweep_queued = True
            self.worker.enqueue("sweep of STP orders not taken", self._sweep)

    async def _sweep(self) -> None:
        """Takes the STP orders committed WORKING that are in no hedge order and that the desk
        has not held for two sweeps (their hand-off was lost, `intake.Intake.missed`): a
        market order joins its window, an IOC or FOK limit order is tried. One statement; a
        failure waits for the next sweep."""
        self._sweep_queued = False
        try:
            async with self.db.read_session() as session:
                found = await intake.unworked(session)
        except Exception as error:
            log.warning("STP: the sweep could not read the orders", extra={"error": str(error)})
            return
        # Those waiting for a live price are the desk's (`price_waits`), as if held.
        missed = self.intake.missed([o for o in found if o.order_id not in self.price_waits])
        for order in missed:
            intake.SWEPT.labels(order.type.value).inc()
            if order.market:
                self._join(order.symbol, order.order_id, order.account_id)
            else:
                self._try_limit(order.order_id, order.account_id)
        if missed:
            log.warning(
                "STP orders committed WORKING that no hand-off brought are taken by the sweep",
                extra={"orders": len(missed), "order_ids": [o.order_id for o in missed[:20]]},
            )

    async def _rejoin_waiting(self) -> None:
        """STP orders accepted before a restart whose window never closed, and IOC / FOK limit
        orders never tried."""
        async with self.db.read_session() as session:
            waiting = await hedge_store.unhedged_stp_orders(session)
            limits = await hedge_store.unhedged_stp_limits(session)
        for order in waiting:
            self._join(order.symbol, order.order_id, order.account_id)
        for limit in limits:
            self._try_limit(limit.order_id, limit.account_id)  # held: the sweep leaves it alone
        if waiting or limits:
            log.info(
                "STP orders from before the restart rejoin windows or are tried",
                extra={"orders": len(waiting), "limit_orders": len(limits)},
            )


def _hedge_snapshot(hedge: HedgeRow) -> dict[str, str | None]:
    return {
        "status": hedge.status.value,
        "quantity": plain_decimal(hedge.quantity),
        "filled_quantity": plain_decimal(hedge.filled_quantity),
        "average_price": None
        if hedge.average_price is None
        else plain_decimal(hedge.average_price),
        "status_reason": hedge.status_reason,
        "status_message": hedge.status_message,
        "version": str(hedge.version),
    }


def _attemptable(order: OrderRow) -> bool:
    """An STP limit order an attempt may hedge: working (or partly filled), and a stop-limit
    only once its stop has triggered."""
    return (
        is_stp_limit(order)
        and order.status in WORKING_STATUSES
        and (order.type is OrderType.LIMIT or order.trigger_time is not None)
        and order.remaining_quantity > 0
    )

"""The FIX side of an LP simulator: a QuickFIX 4.4 acceptor that quotes and fills.

- Logon must carry the Username (553) and Password (554) the LP was given; anything else is
  refused at logon.
- MarketDataRequest (V): a snapshot (W) per symbol, then, for a subscription, incremental
  refreshes (X) carrying every changed bid and offer; unknown symbols get a
  MarketDataRequestReject (Y). Unsubscribe (263=2) stops them.
- NewOrderSingle (D), market (40=1) or limit (40=2, Price 44), IOC or FOK (59): an
  ExecutionReport New, then fills (possibly partial, in pieces; a limit only at or better than
  its price) and a cancel of what did not fill with the reason in Text (58) (a limit whose
  price is not there, a FOK it cannot fill in full: cancelled, nothing filled), or a reject
  with the reason in Text for an order it does not take. Every report echoes the order's
  OrdType, Price and TimeInForce. The order thread waits `fill_delay_ms` before it executes an
  order (the control port can change it), against the quote at that moment. ExecIDs are unique
  across the simulator's restarts (they carry a token drawn at its start).
- OrderStatusRequest (H): an ExecutionReport with ExecType I (Order Status) and ExecID 0, as
  FIX 4.4 has it, giving the order's state as it is: OrdStatus (A, pending new, until the
  order is executed), CumQty, LeavesQty and AvgPx; OrdStatusReqID (790) is echoed. An order it
  does not know (per session and ClOrdID; the last 100,000 are kept, in memory) is answered
  OrdStatus 8 with OrdRejReason 5 (unknown order). The book (orders' states and fills) is
  kept on disk across restarts (`book_store.py`), as a real LP keeps its own: the OMS reads
  "unknown order" as "never received" and sends such an order again. A NewOrderSingle whose
  ClOrdID the book has is refused (OrdRejReason 6, duplicate order) and never executed again.
- Test switches (`silence`, from the control port): the next N orders are executed as usual
  but their execution reports are never sent (a report lost for good), and the next M status
  requests are not answered.
- A personality (simulators/lp/personality.py: strict dictionary, limit-only, status requests
  refused with 35=j, FIX 4.2 ExecTypes, no market data) changes the dialect, from the start or
  through the control port.
- The LP's own book of fills (`filled()`, the control port's `GET /v1/fills`): per client
  session and ClOrdID, what it filled and at what price, reports sent or not, so a test can
  prove that the platform booked everything the LP filled.
- Every logout, reject and resend request, either way, is one clear log line with its reason
  (services/platform/fix_log.py), in the session's FIX session log and the process's log.

Prices and quantities are written as decimal strings: QuickFIX's typed price fields take floats,
which this platform never uses for money.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from decimal import InvalidOperation

import quickfix as fix
import quickfix44 as fix44

from services.platform.fix_log import SessionLog
from services.platform.fix_log import record
from simulators.lp.book_store import BookFile
from simulators.lp.book_store import order_of
from simulators.lp.book_store import order_state_json
from simulators.lp.market import Execution
from simulators.lp.market import Market
from simulators.lp.market import Order
from simulators.lp.market import Quote
from simulators.lp.market import Side
from simulators.lp.market import TimeInForce
from simulators.lp.market import execute
from simulators.lp.market import execute_at_limit
from simulators.lp.personality import Personality
from simulators.lp.personality import Trait
from simulators.lp.rejects import APPLICATION_NOT_AVAILABLE
from simulators.lp.rejects import UNSUPPORTED_MESSAGE_TYPE
from simulators.lp.rejects import VALUE_IS_INCORRECT
from simulators.lp.rejects import StrictDictionary
from simulators.lp.rejects import business_reject
from simulators.lp.rejects import session_reject

log = logging.getLogger("lpsim")

# FIX tags used here (FIX 4.4).
AVG_PX, CL_ORD_ID, CUM_QTY, EXEC_ID, LAST_PX, LAST_QTY = 6, 11, 14, 17, 31, 32
MSG_TYPE, ORDER_ID, ORDER_QTY, ORD_STATUS, ORD_TYPE, PRICE = 35, 37, 38, 39, 40, 44
SIDE, SYMBOL, TEXT, TIME_IN_FORCE, TRANSACT_TIME = 54, 55, 58, 59, 60
ORD_REJ_REASON, EXEC_TYPE, LEAVES_QTY, ORD_STATUS_REQ_ID = 103, 150, 151, 790
MD_REQ_ID, SUBSCRIPTION_REQUEST_TYPE, NO_MD_ENTRIES, NO_RELATED_SYM = 262, 263, 268, 146
MD_ENTRY_TYPE, MD_ENTRY_PX, MD_ENTRY_SIZE, MD_UPDATE_ACTION, MD_REQ_REJ_REASON = (
    269,
    270,
    271,
    279,
    281,
)
USERNAME, PASSWORD = 553, 554

BID, OFFER = "0", "1"
SNAPSHOT, SUBSCRIBE, UNSUBSCRIBE = "0", "1", "2"
PENDING_NEW, REJECTED, UNKNOWN_ORDER, DUPLICATE_ORDER = "A", "8", "5", "6"
BOOK_SIZE = 100_000  # orders whose state a status request can ask for, per simulator


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


@dataclass(frozen=True)
class _Subscription:
    session: fix.SessionID
    request_id: str
    symbols: frozenset[str]


@dataclass(frozen=True)
class BookedOrder:
    """An order's state as its last execution report gave it (sent or silenced)."""

    symbol: str
    side: str
    quantity: Decimal
    status: str  # OrdStatus (39)
    cumulative: Decimal
    leaves: Decimal
    average: Decimal
    text: str = ""
    order: Order | None = None  # None when the order was refused as it arrived


@dataclass(frozen=True)
class Filled:
    """What the LP filled of one order (its own book, `GET /v1/fills`): the client session's
    SenderCompID, the ClOrdID, and the quantity and average price of every fill, sent or not."""

    client: str
    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    notional: Decimal  # quantity times price, summed over the fills
    fills: int

    @property
    def price(self) -> Decimal:
        return self.notional / self.quantity

    def add(self, quantity: Decimal, price: Decimal) -> Filled:
        return Filled(
            self.client,
            self.client_order_id,
            self.symbol,
            self.side,
            self.quantity + quantity,
            self.notional + quantity * price,
            self.fills + 1,
        )


@dataclass(frozen=True)
class Queued:
    session: fix.SessionID
    order: Order
    silent: bool  # execute it, but send none of its reports


def _text(value: Decimal) -> str:
    return format(value, "f")


def _set(message: fix.FieldMap, tag: int, value: str) -> None:
    message.setField(fix.StringField(tag, value))


def _get(message: fix.FieldMap, tag: int) -> str | None:
    return str(message.getField(tag)) if message.isSetField(tag) else None


class LpApplication(fix.Application):  # type: ignore[misc]
    """QuickFIX callbacks run on the acceptor's thread; prices move on the publisher's."""

    def __init__(
        self,
        market: Market,
        credentials: Credentials,
        personality: Personality | None = None,
        session_log: SessionLog | None = None,
        book_file: BookFile | None = None,
    ) -> None:
        super().__init__()
        self.market = market
        self.credentials = credentials
        # Read once per message; replaced whole (`set_personality`), never changed in place.
        self.personality = personality or Personality()
        self.session_log = session_log
        self._strict: StrictDictionary | None = None  # loaded when first needed
        self.fill_delay_ms = market.profile.fill_delay_ms  # read for every order
        self.lock = threading.Lock()  # guards the market and the subscriptions
        self.subscriptions: dict[tuple[str, str], _Subscription] = {}
        self.logged_on: set[str] = set()
        self.orders: queue.Queue[Queued | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._run = uuid.uuid4().hex[:8]  # ExecIDs unique across restarts
        self.book_lock = threading.Lock()  # guards the book and the silence switches
        self._book: OrderedDict[tuple[str, str], BookedOrder] = OrderedDict()
        self.silent_orders = 0  # the next N orders' reports are never sent
        self.silent_status_requests = 0  # the next M status requests get no answer
        self._filled: OrderedDict[tuple[str, str], Filled] = OrderedDict()  # under book_lock
        self.book_file = book_file  # the book on disk, across restarts (book_store.py)
        if book_file is not None:
            self._load(book_file)

    def _load(self, book_file: BookFile) -> None:
        orders, fills = book_file.load(BOOK_SIZE)
        for key, state in orders.items():
            self._book[key] = BookedOrder(
                state["symbol"],
                state["side"],
                Decimal(state["quantity"]),
                state["status"],
                Decimal(state["cumulative"]),
                Decimal(state["leaves"]),
                Decimal(state["average"]),
                state["text"],
                order_of(state),
            )
        for (client, client_order_id), state in fills.items():
            self._filled[(client, client_order_id)] = Filled(
                client,
                client_order_id,
                state["symbol"],
                state["side"],
                Decimal(state["quantity"]),
                Decimal(state["notional"]),
                int(state["fills"]),
            )

    # -- personality -----------------------------------------------------------------------------

    def set_personality(self, personality: Personality) -> None:
        """Switches the dialect from the next message on. With no-market-data the subscriptions
        already made are dropped: they go silent, as an LP's market data does when it fails."""
        if personality.has(Trait.STRICT_DICTIONARY):
            self._strict_dictionary()  # loaded now, not while a message waits
        self.personality = personality
        if personality.has(Trait.NO_MARKET_DATA):
            with self.lock:
                self.subscriptions.clear()
        log.info("personality: %s", personality)

    def _strict_dictionary(self) -> StrictDictionary:
        if self._strict is None:
            self._strict = StrictDictionary()
        return self._strict

    # -- the LP's own book of fills ---------------------------------------------------------------

    def filled(self) -> list[Filled]:
        """Every order the LP filled (some or all of), oldest first; the last BOOK_SIZE."""
        with self.book_lock:
            return list(self._filled.values())

    def _book_fills(self, session: fix.SessionID, order: Order, execution: Execution) -> None:
        if not execution.fills:
            return
        client = session.getTargetCompID().getValue()
        key = (client, order.client_order_id)
        with self.book_lock:
            filled = self._filled.get(key) or Filled(
                client,
                order.client_order_id,
                order.symbol,
                order.side.value,
                Decimal(0),
                Decimal(0),
                0,
            )
            for fill in execution.fills:
                filled = filled.add(fill.quantity, fill.price)
            self._filled[key] = filled
            self._filled.move_to_end(key)
            if self.book_file is not None:
                self.book_file.filled(
                    client,
                    order.client_order_id,
                    {
                        "symbol": filled.symbol,
                        "side": filled.side,
                        "quantity": str(filled.quantity),
                        "notional": str(filled.notional),
                        "fills": filled.fills,
                    },
                )
            while len(self._filled) > BOOK_SIZE:
                self._filled.popitem(last=False)

    # -- session events ------------------------------------------------------------------------

    def onCreate(self, session: fix.SessionID) -> None:  # noqa: N802 (QuickFIX's names)
        log.info("session %s created", session.toString())
        self._event(session, f"session created, personality {self.personality}")

    def onLogon(self, session: fix.SessionID) -> None:  # noqa: N802
        self.logged_on.add(session.toString())
        log.info("session %s logged on", session.toString())
        self._event(session, "logged on")

    def onLogout(self, session: fix.SessionID) -> None:  # noqa: N802
        key = session.toString()
        self.logged_on.discard(key)
        with self.lock:
            for sub_key in [k for k in self.subscriptions if k[0] == key]:
                del self.subscriptions[sub_key]
        log.info("session %s logged out", key)
        self._event(session, "logged out")

    def _event(self, session: fix.SessionID, text: str) -> None:
        if self.session_log is not None:
            self.session_log.event(session, text)

    def toAdmin(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        record(log, self.session_log, message, session, incoming=False)

    def fromAdmin(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        record(log, self.session_log, message, session, incoming=True)
        if _get(message.getHeader(), MSG_TYPE) != fix.MsgType_Logon:
            return
        if (_get(message, USERNAME), _get(message, PASSWORD)) != (
            self.credentials.username,
            self.credentials.password,
        ):
            log.warning("session %s: logon refused (bad credentials)", session.toString())
            raise fix.RejectLogon("invalid username or password")
        if self.personality.has(Trait.STRICT_DICTIONARY):
            violation = self._strict_dictionary().violation(message)
            if violation is not None:
                log.warning("session %s: logon refused (%s)", session.toString(), violation.text)
                raise fix.RejectLogon(violation.text)

    def toApp(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        record(log, self.session_log, message, session, incoming=False)

    def fromApp(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        record(log, self.session_log, message, session, incoming=True)
        personality = self.personality
        if personality.has(Trait.STRICT_DICTIONARY):
            violation = self._strict_dictionary().violation(message)
            if violation is not None:
                # Answered as QuickFIX answers what fails its own check; never processed.
                reject = session_reject(message, violation.reason, violation.text, violation.tag)
                fix.Session.sendToTarget(reject, session)
                return
        msg_type = _get(message.getHeader(), MSG_TYPE)
        if msg_type == fix.MsgType_MarketDataRequest:
            self._on_market_data_request(message, session)
        elif msg_type == fix.MsgType_NewOrderSingle:
            self._on_new_order(message, session)
        elif msg_type == fix.MsgType_OrderStatusRequest:
            self._on_status_request(message, session)
        else:
            raise fix.UnsupportedMessageType()

    # -- market data ---------------------------------------------------------------------------

    def _on_market_data_request(self, message: fix.Message, session: fix.SessionID) -> None:
        request_id = _get(message, MD_REQ_ID) or ""
        if self.personality.has(Trait.NO_MARKET_DATA):
            reject = business_reject(
                message,
                request_id,
                APPLICATION_NOT_AVAILABLE,
                "market data is not available on this session",
            )
            fix.Session.sendToTarget(reject, session)
            return
        kind = _get(message, SUBSCRIPTION_REQUEST_TYPE) or SNAPSHOT
        if kind == UNSUBSCRIBE:
            with self.lock:
                self.subscriptions.pop((session.toString(), request_id), None)
            return
        symbols = []
        group = fix44.MarketDataRequest.NoRelatedSym()
        for i in range(1, int(_get(message, NO_RELATED_SYM) or "0") + 1):
            message.getGroup(i, group)
            symbols.append(_get(group, SYMBOL) or "")
        unknown = [s for s in symbols if self.market.instrument(s) is None]
        if unknown or not symbols:
            reject = fix44.MarketDataRequestReject()
            _set(reject, MD_REQ_ID, request_id)
            _set(reject, MD_REQ_REJ_REASON, "0")  # unknown symbol
            _set(reject, TEXT, f"unknown symbols: {', '.join(unknown) or '(none asked)'}")
            fix.Session.sendToTarget(reject, session)
            return
        with self.lock:
            quotes = [self.market.quote(s) for s in symbols]
            if kind == SUBSCRIBE:
                self.subscriptions[(session.toString(), request_id)] = _Subscription(
                    session, request_id, frozenset(symbols)
                )
        for quote in quotes:
            fix.Session.sendToTarget(_snapshot(request_id, quote), session)

    def publish(self, quotes: Iterable[Quote]) -> int:
        """Sends the changed quotes to every subscription that asked for them; the count sent."""
        changed = list(quotes)
        with self.lock:
            subscriptions = list(self.subscriptions.values())
        sent = 0
        for sub in subscriptions:
            wanted = [q for q in changed if q.symbol in sub.symbols]
            if wanted:
                fix.Session.sendToTarget(_incremental(sub.request_id, wanted), sub.session)
                sent += 1
        return sent

    # -- orders --------------------------------------------------------------------------------

    def _on_new_order(self, message: fix.Message, session: fix.SessionID) -> None:
        if self.personality.has(Trait.LIMIT_ONLY) and _get(message, ORD_TYPE) != "2":
            # Refused at the session level, as the LP of issue 13 did: never taken, so a status
            # request later finds no such order.
            reject = session_reject(
                message,
                VALUE_IS_INCORRECT,
                "Value is incorrect (out of range) for this tag: only limit orders (40=2)",
                ORD_TYPE,
            )
            fix.Session.sendToTarget(reject, session)
            return
        try:
            order = _parse_order(message)
        except ValueError as error:
            self._report_reject(session, message, str(error))
            return
        with self.book_lock:
            known = (session.toString(), order.client_order_id) in self._book
        if known:
            # A ClOrdID it has (before its restart too: the book is on disk) is refused, as
            # real LPs refuse a duplicate: an order sent twice never trades twice. Its state
            # stays what it was.
            report = self._rejection(
                order.client_order_id,
                order.symbol,
                order.side.value,
                order.quantity,
                "duplicate ClOrdID",
                reason_code=DUPLICATE_ORDER,
            )
            fix.Session.sendToTarget(report, session)
            return
        with self.book_lock:
            silent = self.silent_orders > 0
            if silent:
                self.silent_orders -= 1
            self._remember(
                session,
                order.client_order_id,
                BookedOrder(
                    order.symbol,
                    order.side.value,
                    order.quantity,
                    PENDING_NEW,
                    Decimal(0),
                    order.quantity,
                    Decimal(0),
                    order=order,
                ),
            )
        self.orders.put(Queued(session, order, silent))

    def _report_reject(self, session: fix.SessionID, message: fix.Message, reason: str) -> None:
        client_order_id = _get(message, CL_ORD_ID) or ""
        symbol = _get(message, SYMBOL) or ""
        side = _get(message, SIDE) or Side.BUY.value
        report = self._rejection(client_order_id, symbol, side, Decimal(0), reason)
        if client_order_id:
            with self.book_lock:
                self._remember(
                    session,
                    client_order_id,
                    BookedOrder(
                        symbol,
                        side,
                        Decimal(0),
                        REJECTED,
                        Decimal(0),
                        Decimal(0),
                        Decimal(0),
                        text=reason,
                    ),
                )
        fix.Session.sendToTarget(report, session)

    # -- order status ----------------------------------------------------------------------------

    def _remember(self, session: fix.SessionID, client_order_id: str, state: BookedOrder) -> None:
        """Keeps the order's state (the caller holds `book_lock`); the oldest go past
        BOOK_SIZE."""
        key = (session.toString(), client_order_id)
        self._book[key] = state
        self._book.move_to_end(key)
        if self.book_file is not None:
            self.book_file.order(
                key[0],
                client_order_id,
                order_state_json(
                    state.symbol,
                    state.side,
                    state.quantity,
                    state.status,
                    state.cumulative,
                    state.leaves,
                    state.average,
                    state.text,
                    state.order,
                ),
            )
        while len(self._book) > BOOK_SIZE:
            self._book.popitem(last=False)

    def booked(self, session: fix.SessionID, client_order_id: str) -> BookedOrder | None:
        with self.book_lock:
            return self._book.get((session.toString(), client_order_id))

    def _on_status_request(self, message: fix.Message, session: fix.SessionID) -> None:
        client_order_id = _get(message, CL_ORD_ID) or ""
        with self.book_lock:
            if self.silent_status_requests > 0:
                self.silent_status_requests -= 1
                log.info("status request for %s not answered (silenced)", client_order_id)
                return
        if self.personality.has(Trait.STATUS_BMR):
            reject = business_reject(
                message,
                client_order_id,
                UNSUPPORTED_MESSAGE_TYPE,
                "OrderStatusRequest is not supported",
            )
            fix.Session.sendToTarget(reject, session)
            return
        report = self.status_report(session, message)
        fix.Session.sendToTarget(report, session)

    def status_report(self, session: fix.SessionID, request: fix.Message) -> fix.Message:
        """The answer to an OrderStatusRequest: ExecType I with the order's state, or, for an
        order it does not know, OrdStatus 8 with OrdRejReason 5."""
        client_order_id = _get(request, CL_ORD_ID) or ""
        booked = self.booked(session, client_order_id)
        if booked is None:
            report = self._report(
                client_order_id,
                _get(request, SYMBOL) or "",
                _get(request, SIDE) or Side.BUY.value,
                exec_type="I",
                status=REJECTED,
                quantity=Decimal(0),
                cumulative=Decimal(0),
                leaves=Decimal(0),
                average=Decimal(0),
            )
            _set(report, ORD_REJ_REASON, UNKNOWN_ORDER)
            _set(report, TEXT, "unknown order")
        else:
            report = self._report(
                client_order_id,
                booked.symbol,
                booked.side,
                exec_type="I",
                status=booked.status,
                quantity=booked.quantity,
                cumulative=booked.cumulative,
                leaves=booked.leaves,
                average=booked.average,
            )
            if booked.text:
                _set(report, TEXT, booked.text)
            if booked.order is not None:
                _echo_order(report, booked.order)
        _set(report, EXEC_ID, "0")  # FIX 4.4: ExecID is 0 for ExecType I
        request_id = _get(request, ORD_STATUS_REQ_ID)
        if request_id:
            _set(report, ORD_STATUS_REQ_ID, request_id)
        return report

    def _rejection(
        self,
        client_order_id: str,
        symbol: str,
        side: str,
        quantity: Decimal,
        reason: str,
        *,
        reason_code: str = "99",
    ) -> fix.Message:
        report = self._report(
            client_order_id,
            symbol,
            side,
            exec_type="8",
            status="8",
            quantity=quantity,
            cumulative=Decimal(0),
            leaves=Decimal(0),
            average=Decimal(0),
        )
        _set(report, ORD_REJ_REASON, reason_code)  # 99 other, 6 duplicate order
        _set(report, TEXT, reason)
        return report

    def run_orders(self) -> None:
        """The order thread: executes queued orders after the LP's delay, until given None."""
        while (item := self.orders.get()) is not None:
            time.sleep(self.fill_delay_ms / 1000)
            for report in self.execute_queued(item):
                fix.Session.sendToTarget(report, item.session)

    def execute_queued(self, item: Queued) -> list[fix.Message]:
        """Executes a queued order against the quote now and remembers the state it leaves;
        the reports to send (none for a silenced order)."""
        personality = self.personality
        at_limit = personality.has(Trait.LIMIT_ONLY) and item.order.limit_price is not None
        with self.lock:
            execution = (execute_at_limit if at_limit else execute)(self.market, item.order)
        reports = self._reports(item.order, execution, personality)
        self._book_fills(item.session, item.order, execution)
        with self.book_lock:
            self._remember(
                item.session, item.order.client_order_id, _state_after(item.order, reports[-1])
            )
        if item.silent:
            log.info(
                "order %s executed, its %d reports not sent (silenced)",
                item.order.client_order_id,
                len(reports),
            )
            return []
        return reports

    def _reports(
        self, order: Order, execution: Execution, personality: Personality | None = None
    ) -> list[fix.Message]:
        fix42 = (personality or self.personality).has(Trait.FIX42_EXECTYPE)
        reports = self._order_reports(order, execution, fix42)
        for report in reports:
            _echo_order(report, order)
        return reports

    def _order_reports(self, order: Order, execution: Execution, fix42: bool) -> list[fix.Message]:
        """New, fills, then a cancel of what did not fill. A fill's ExecType is F (trade), or
        with `fix42` FIX 4.2's 1 (partial fill) / 2 (fill), as many LPs still send on 4.4."""
        side = order.side.value
        if execution.reject_reason is not None:
            return [
                self._rejection(
                    order.client_order_id,
                    order.symbol,
                    side,
                    order.quantity,
                    execution.reject_reason,
                )
            ]
        reports = [
            self._report(
                order.client_order_id,
                order.symbol,
                side,
                exec_type="0",
                status="0",
                quantity=order.quantity,
                cumulative=Decimal(0),
                leaves=order.quantity,
                average=Decimal(0),
            )
        ]
        cumulative = Decimal(0)
        notional = Decimal(0)
        for fill in execution.fills:
            cumulative += fill.quantity
            notional += fill.quantity * fill.price
            done = cumulative == order.quantity
            status = "2" if done else "1"
            report = self._report(
                order.client_order_id,
                order.symbol,
                side,
                exec_type=status if fix42 else "F",
                status=status,
                quantity=order.quantity,
                cumulative=cumulative,
                leaves=order.quantity - cumulative if not done else Decimal(0),
                average=notional / cumulative,
            )
            _set(report, LAST_QTY, _text(fill.quantity))
            _set(report, LAST_PX, _text(fill.price))
            reports.append(report)
        if execution.cancelled > 0:
            report = self._report(
                order.client_order_id,
                order.symbol,
                side,
                exec_type="4",
                status="4",
                quantity=order.quantity,
                cumulative=cumulative,
                leaves=Decimal(0),
                average=notional / cumulative if cumulative else Decimal(0),
            )
            _set(
                report,
                TEXT,
                execution.cancel_reason
                or f"{_text(execution.cancelled)} lots not filled: no liquidity",
            )
            reports.append(report)
        return reports

    def _report(
        self,
        client_order_id: str,
        symbol: str,
        side: str,
        *,
        exec_type: str,
        status: str,
        quantity: Decimal,
        cumulative: Decimal,
        leaves: Decimal,
        average: Decimal,
    ) -> fix.Message:
        report = fix44.ExecutionReport()
        number = next(self._ids)
        _set(report, ORDER_ID, f"{self.market.profile.name}-{client_order_id}")
        _set(report, EXEC_ID, f"{self.market.profile.name}-{self._run}-x{number}")
        _set(report, CL_ORD_ID, client_order_id)
        _set(report, EXEC_TYPE, exec_type)
        _set(report, ORD_STATUS, status)
        _set(report, SYMBOL, symbol)
        _set(report, SIDE, side)
        _set(report, ORDER_QTY, _text(quantity))
        _set(report, CUM_QTY, _text(cumulative))
        _set(report, LEAVES_QTY, _text(leaves))
        # An average price to the instrument's digits plus a few: exact enough, never a float.
        _set(report, AVG_PX, _text(average.quantize(Decimal("1e-8")).normalize()))
        _set(report, TRANSACT_TIME, time.strftime("%Y%m%d-%H:%M:%S", time.gmtime()))
        return report


def _echo_order(report: fix.Message, order: Order) -> None:
    """What every report of an order repeats of it: OrdType, Price and TimeInForce."""
    _set(report, ORD_TYPE, "1" if order.limit_price is None else "2")
    if order.limit_price is not None:
        _set(report, PRICE, _text(order.limit_price))
    _set(report, TIME_IN_FORCE, order.time_in_force.value)


def _state_after(order: Order, last: fix.Message) -> BookedOrder:
    """The order's state as its last report leaves it."""

    def number(tag: int) -> Decimal:
        return Decimal(_get(last, tag) or "0")

    return BookedOrder(
        order.symbol,
        order.side.value,
        order.quantity,
        _get(last, ORD_STATUS) or REJECTED,
        number(CUM_QTY),
        number(LEAVES_QTY),
        number(AVG_PX),
        _get(last, TEXT) or "",
        order,
    )


def _parse_order(message: fix.Message) -> Order:
    client_order_id = _get(message, CL_ORD_ID)
    symbol = _get(message, SYMBOL)
    if not client_order_id or not symbol:
        raise ValueError("ClOrdID (11) and Symbol (55) are required")
    try:
        side = Side(_get(message, SIDE))
        time_in_force = TimeInForce(_get(message, TIME_IN_FORCE) or TimeInForce.IOC.value)
        quantity = Decimal(_get(message, ORDER_QTY) or "")
        order_type = _get(message, ORD_TYPE)
        limit_price = Decimal(_get(message, PRICE) or "") if order_type == "2" else None
    except (ValueError, InvalidOperation) as error:
        raise ValueError(f"bad order field: {error}") from error
    if order_type not in ("1", "2"):
        raise ValueError("only market (40=1) and limit (40=2) orders are accepted")
    return Order(client_order_id, symbol, side, quantity, limit_price, time_in_force)


def _snapshot(request_id: str, quote: Quote) -> fix.Message:
    message = fix44.MarketDataSnapshotFullRefresh()
    _set(message, MD_REQ_ID, request_id)
    _set(message, SYMBOL, quote.symbol)
    for entry_type, price, size in (
        (BID, quote.bid, quote.bid_size),
        (OFFER, quote.ask, quote.ask_size),
    ):
        group = fix44.MarketDataSnapshotFullRefresh.NoMDEntries()
        _set(group, MD_ENTRY_TYPE, entry_type)
        _set(group, MD_ENTRY_PX, _text(price))
        _set(group, MD_ENTRY_SIZE, _text(size))
        message.addGroup(group)
    return message


def _incremental(request_id: str, quotes: list[Quote]) -> fix.Message:
    message = fix44.MarketDataIncrementalRefresh()
    _set(message, MD_REQ_ID, request_id)
    for quote in quotes:
        for entry_type, price, size in (
            (BID, quote.bid, quote.bid_size),
            (OFFER, quote.ask, quote.ask_size),
        ):
            group = fix44.MarketDataIncrementalRefresh.NoMDEntries()
            _set(group, MD_UPDATE_ACTION, "1")  # change
            _set(group, MD_ENTRY_TYPE, entry_type)
            _set(group, SYMBOL, quote.symbol)
            _set(group, MD_ENTRY_PX, _text(price))
            _set(group, MD_ENTRY_SIZE, _text(size))
            message.addGroup(group)
    return message

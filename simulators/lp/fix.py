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
  order (the control port can change it), against the quote at that moment.

Prices and quantities are written as decimal strings: QuickFIX's typed price fields take floats,
which this platform never uses for money.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import quickfix as fix
import quickfix44 as fix44

from simulators.lp.market import Execution, Market, Order, Quote, Side, TimeInForce, execute

log = logging.getLogger("lpsim")

# FIX tags used here (FIX 4.4).
AVG_PX, CL_ORD_ID, CUM_QTY, EXEC_ID, LAST_PX, LAST_QTY = 6, 11, 14, 17, 31, 32
MSG_TYPE, ORDER_ID, ORDER_QTY, ORD_STATUS, ORD_TYPE, PRICE = 35, 37, 38, 39, 40, 44
SIDE, SYMBOL, TEXT, TIME_IN_FORCE, TRANSACT_TIME = 54, 55, 58, 59, 60
ORD_REJ_REASON, EXEC_TYPE, LEAVES_QTY = 103, 150, 151
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


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


@dataclass(frozen=True)
class _Subscription:
    session: fix.SessionID
    request_id: str
    symbols: frozenset[str]


def _text(value: Decimal) -> str:
    return format(value, "f")


def _set(message: fix.FieldMap, tag: int, value: str) -> None:
    message.setField(fix.StringField(tag, value))


def _get(message: fix.FieldMap, tag: int) -> str | None:
    return str(message.getField(tag)) if message.isSetField(tag) else None


class LpApplication(fix.Application):  # type: ignore[misc]
    """QuickFIX callbacks run on the acceptor's thread; prices move on the publisher's."""

    def __init__(self, market: Market, credentials: Credentials) -> None:
        super().__init__()
        self.market = market
        self.credentials = credentials
        self.fill_delay_ms = market.profile.fill_delay_ms  # read for every order
        self.lock = threading.Lock()  # guards the market and the subscriptions
        self.subscriptions: dict[tuple[str, str], _Subscription] = {}
        self.logged_on: set[str] = set()
        self.orders: queue.Queue[tuple[fix.SessionID, Order] | None] = queue.Queue()
        self._ids = itertools.count(1)

    # -- session events ------------------------------------------------------------------------

    def onCreate(self, session: fix.SessionID) -> None:  # noqa: N802 (QuickFIX's names)
        log.info("session %s created", session.toString())

    def onLogon(self, session: fix.SessionID) -> None:  # noqa: N802
        self.logged_on.add(session.toString())
        log.info("session %s logged on", session.toString())

    def onLogout(self, session: fix.SessionID) -> None:  # noqa: N802
        key = session.toString()
        self.logged_on.discard(key)
        with self.lock:
            for sub_key in [k for k in self.subscriptions if k[0] == key]:
                del self.subscriptions[sub_key]
        log.info("session %s logged out", key)

    def toAdmin(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        pass

    def fromAdmin(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        if _get(message.getHeader(), MSG_TYPE) != fix.MsgType_Logon:
            return
        if (_get(message, USERNAME), _get(message, PASSWORD)) != (
            self.credentials.username,
            self.credentials.password,
        ):
            log.warning("session %s: logon refused (bad credentials)", session.toString())
            raise fix.RejectLogon("invalid username or password")

    def toApp(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        pass

    def fromApp(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        msg_type = _get(message.getHeader(), MSG_TYPE)
        if msg_type == fix.MsgType_MarketDataRequest:
            self._on_market_data_request(message, session)
        elif msg_type == fix.MsgType_NewOrderSingle:
            self._on_new_order(message, session)
        else:
            raise fix.UnsupportedMessageType()

    # -- market data ---------------------------------------------------------------------------

    def _on_market_data_request(self, message: fix.Message, session: fix.SessionID) -> None:
        request_id = _get(message, MD_REQ_ID) or ""
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
        try:
            order = _parse_order(message)
        except ValueError as error:
            self._report_reject(session, message, str(error))
            return
        self.orders.put((session, order))

    def _report_reject(self, session: fix.SessionID, message: fix.Message, reason: str) -> None:
        report = self._rejection(
            _get(message, CL_ORD_ID) or "",
            _get(message, SYMBOL) or "",
            _get(message, SIDE) or Side.BUY.value,
            Decimal(0),
            reason,
        )
        fix.Session.sendToTarget(report, session)

    def _rejection(
        self, client_order_id: str, symbol: str, side: str, quantity: Decimal, reason: str
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
        _set(report, ORD_REJ_REASON, "99")  # other
        _set(report, TEXT, reason)
        return report

    def run_orders(self) -> None:
        """The order thread: executes queued orders after the LP's delay, until given None."""
        while (item := self.orders.get()) is not None:
            session, order = item
            time.sleep(self.fill_delay_ms / 1000)
            with self.lock:
                execution = execute(self.market, order)
            for report in self._reports(order, execution):
                fix.Session.sendToTarget(report, session)

    def _reports(self, order: Order, execution: Execution) -> list[fix.Message]:
        reports = self._order_reports(order, execution)
        for report in reports:
            _set(report, ORD_TYPE, "1" if order.limit_price is None else "2")
            if order.limit_price is not None:
                _set(report, PRICE, _text(order.limit_price))
            _set(report, TIME_IN_FORCE, order.time_in_force.value)
        return reports

    def _order_reports(self, order: Order, execution: Execution) -> list[fix.Message]:
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
            report = self._report(
                order.client_order_id,
                order.symbol,
                side,
                exec_type="F",
                status="2" if done else "1",
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
        _set(report, EXEC_ID, f"{self.market.profile.name}-x{number}")
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

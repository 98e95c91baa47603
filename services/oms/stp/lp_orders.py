"""The OMS's order sessions to the liquidity providers (ADR 0007, "The OMS's FIX sessions").

One QuickFIX 4.4 initiator per LP (services/platform/fix.py), separate from pricing's market data
sessions: SenderCompID `TRADINGMESH-OMS`, `ResetOnLogon=N` with a file store under
`TM_DATA_DIR/oms/fix`, so sequence numbers survive a restart and an execution report the LP sent
while the OMS was down arrives by resend. `PersistMessages=N`: the store never holds a message,
so the Logon's LP password is never written to disk; a NewOrderSingle the LP asks to be resent
is gap-filled, never re-sent late (its hedge stays SENT without a report until the STP desk
asks the provider for its status, see ADR 0007).

A hedge order goes out as a NewOrderSingle, ClOrdID = the hedge order's id: a window's net as
a market IOC; an STP limit order's own hedge as a limit (Price, 44, the raw limit) IOC, or FOK
for a fill-or-kill client order (the provider fills it in full or not at all). A hedge that
hears nothing is asked about with an OrderStatusRequest (H); the answer is an ExecutionReport
with ExecType I (`ReportKind.STATUS`) carrying the order's state (OrdStatus, CumQty, AvgPx).

Every ExecutionReport is parsed here, on QuickFIX's thread, and committed to
`oms.lp_execution_reports` (`report_journal.ReportJournal`, a synchronous connection of its
own) BEFORE the callback returns: QuickFIX counts a message as received (and will never ask for
it again) only once `fromApp` returns, so a report is either stored or not yet consumed. Then it
is handed to the event loop as a `StoredReport`; what it does to the hedge order is decided
there, in one transaction that also marks the stored row applied (de-duplicated on ExecID).
The callback never waits on the event loop (the loop calls `Session.sendToTarget`, which takes
the lock QuickFIX holds during `fromApp`).

A report that cannot be stored (PostgreSQL unreachable, or slower than its 5 s statement
timeout) is not consumed: the callback sets the session's next expected incoming sequence number
back to the report's own and drops the connection. Raising is no way out in QuickFIX's Python
binding (quickfix 1.16.0, tried): any exception from `fromApp` but its four reject exceptions
ends in `Py_Exit` on QuickFIX's thread (the process printed the traceback and hung), and those
four answer the LP with a Reject and consume the number all the same. After the reconnect
(`ReconnectInterval`) the LP's Logon is ahead of what we expect, so QuickFIX asks for a resend
and the report arrives again.

Dialects (issue 13, `lp_dialects`): the sessions parse with a lenient FIX 4.4 dictionary, so an
ExecutionReport a strict one would refuse before `fromApp` (ExecType 1 or 2 on 4.4, a
"required" field missing) reaches this module; the strict check runs here, and a report that
fails it is stored with the reason (`validation_error`), counted
(`tradingmesh_oms_lp_invalid_messages_total`) and alerted on (an ERROR "ALERT" line, once per
provider and kind of fault), and applied as far as it is understood (`parse_execution_report`:
ExecType 1/2 are fills, 3/C end the order, a missing ExecType follows OrdStatus, a fill without
LastQty/LastPx is applied by its CumQty and AvgPx). One the OMS cannot understand is parked
(`oms.lp_messages`, status PARKED, and an ALERT every time), never dropped.

Every other answer of an LP (Reject 35=3, which arrives in `fromAdmin`; Business Message Reject
35=j; OrderCancelReject 35=9; DontKnowTrade 35=Q) is stored the same way in `oms.lp_messages`
and handed to the desk (`lp_messages` says what each does). A Reject our own session sends (a
message even the lenient dictionary refuses) is seen in `toAdmin` and parked. The MsgSeqNum
QuickFIX gave each NewOrderSingle, OrderStatusRequest and DontKnowTrade is returned to the
caller, which records it (`oms.lp_sent_messages`), so a Reject's RefSeqNum finds its order.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from decimal import InvalidOperation
from pathlib import Path
from typing import Any
from typing import Final
from typing import Protocol

import quickfix as fix
import quickfix44 as fix44
from prometheus_client import Counter

from services.oms.domain.positions import Side
from services.oms.stp.lp_dialects import LENIENT_SESSION_SETTINGS
from services.oms.stp.lp_dialects import StrictCheck
from services.oms.stp.lp_dialects import write_lenient_dictionary
from services.oms.stp.lp_messages import LpMessage
from services.oms.stp.lp_messages import LpMessageKind
from services.oms.stp.lp_messages import StoredMessage
from services.oms.stp.lp_messages import parse_message
from services.oms.stp.lp_messages import refused_by_session
from services.oms.stp.lp_messages import unreadable_report
from services.platform.fix import BEGIN_STRING
from services.platform.fix import InitiatorSessions
from services.platform.fix import LpEndpoint
from services.platform.fix import get_field
from services.platform.fix import initiator_settings
from services.platform.metrics import REGISTRY
from services.platform.secrets import Secret
from tradingmesh.exact import plain_decimal

__all__ = [
    "SENDER_COMP_ID",
    "ExecutionReport",
    "HedgeRequest",
    "LpOrderRouter",
    "LpUnavailableError",
    "ReportJournalWriter",
    "ReportKind",
    "ReportNotStoredError",
    "SessionNumbers",
    "StatusRequest",
    "StoredReport",
    "dont_know_trade",
    "new_order_single",
    "order_status_request",
    "parse_execution_report",
    "report_from_json",
    "report_to_json",
]

log = logging.getLogger(__name__)

SENDER_COMP_ID: Final = "TRADINGMESH-OMS"
MSG_TYPE, MSG_SEQ_NUM, CL_ORD_ID, ORDER_ID, EXEC_ID, TEXT = 35, 34, 11, 37, 17, 58
EXEC_TYPE, ORD_STATUS, SIDE, SYMBOL, ORDER_QTY, ORD_TYPE = 150, 39, 54, 55, 38, 40
TIME_IN_FORCE, TRANSACT_TIME, LAST_QTY, LAST_PX, CUM_QTY, AVG_PX = 59, 60, 32, 31, 14, 6
PRICE, ORD_REJ_REASON, ORD_STATUS_REQ_ID, DK_REASON = 44, 103, 790, 127
_FIX_SIDE: Final = {Side.BUY: "1", Side.SELL: "2"}
_MARKET, _LIMIT, _IOC, _FOK = "1", "2", "3", "4"
_NO_MATCHING_ORDER: Final = "D"  # DKReason
_REJECT: Final = "3"  # MsgType of a session Reject

REPORTS_NOT_STORED = Counter(
    "tradingmesh_oms_lp_reports_not_stored",
    "execution reports that could not be stored; their session was dropped so the LP resends",
    ["lp"],
    registry=REGISTRY,
)
INVALID_MESSAGES = Counter(
    "tradingmesh_oms_lp_invalid_messages",
    "messages from an LP's order session that fail the strict FIX 4.4 dictionary or that the"
    " OMS cannot understand; outcome: understood (applied), parked (an operator must look) or"
    " refused (our session answered with a Reject)",
    ["lp", "outcome"],
    registry=REGISTRY,
)
LP_REFUSALS = Counter(
    "tradingmesh_oms_lp_refusals",
    "Rejects (35=3), Business Message Rejects (35=j), OrderCancelRejects (35=9) and"
    " DontKnowTrades (35=Q) received from an LP's order session",
    ["lp", "msg_type"],
    registry=REGISTRY,
)


class LpUnavailableError(Exception):
    """No logged-on session to the LP: the hedge order cannot be sent."""


class ReportNotStoredError(Exception):
    """An execution report could not be committed to `oms.lp_execution_reports`."""


class ReportKind(enum.StrEnum):
    """What an ExecutionReport (ExecType, 150) says happened."""

    ACKNOWLEDGED = "ACKNOWLEDGED"  # 0 New
    FILL = "FILL"  # F Trade (a partial or a complete fill); 1 and 2 on FIX 4.2
    CANCELLED = "CANCELLED"  # 4 Canceled (the unfilled rest of an IOC); 3 Done for day, C Expired
    REJECTED = "REJECTED"  # 8 Rejected
    STATUS = "STATUS"  # I Order Status: the answer to an OrderStatusRequest
    OTHER = "OTHER"


_KINDS: Final = {
    "0": ReportKind.ACKNOWLEDGED,
    "F": ReportKind.FILL,
    "1": ReportKind.FILL,  # Partial fill (FIX 4.2; many LPs still send it on 4.4)
    "2": ReportKind.FILL,  # Fill (FIX 4.2)
    "4": ReportKind.CANCELLED,
    "3": ReportKind.CANCELLED,  # Done for day: nothing more will fill
    "C": ReportKind.CANCELLED,  # Expired
    "8": ReportKind.REJECTED,
    "I": ReportKind.STATUS,
}
# A report without ExecType, as its OrdStatus (39) says (fills are told by LastQty).
_KINDS_BY_STATUS: Final = {
    "0": ReportKind.ACKNOWLEDGED,
    "A": ReportKind.ACKNOWLEDGED,
    "4": ReportKind.CANCELLED,
    "3": ReportKind.CANCELLED,
    "C": ReportKind.CANCELLED,
    "8": ReportKind.REJECTED,
}


@dataclass(frozen=True)
class HedgeRequest:
    hedge_order_id: str  # sent as ClOrdID
    lp: str
    symbol: str
    side: Side
    quantity: Decimal
    limit_price: Decimal | None = None  # a limit order at this provider price; None: market
    fill_or_kill: bool = False  # FOK rather than IOC


@dataclass(frozen=True)
class StatusRequest:
    """An OrderStatusRequest (H) for a hedge order the provider has not answered."""

    hedge_order_id: str  # its ClOrdID
    lp: str
    symbol: str
    side: Side
    lp_order_id: str = ""  # the provider's OrderID, when a report gave it


@dataclass(frozen=True)
class ExecutionReport:
    lp: str
    hedge_order_id: str  # the ClOrdID
    lp_order_id: str
    execution_id: str
    kind: ReportKind
    last_quantity: Decimal  # this fill's quantity; 0 unless FILL
    last_price: Decimal | None  # this fill's price; None unless FILL
    cumulative_quantity: Decimal
    text: str
    received_at: datetime
    order_status: str = ""  # OrdStatus (39) as sent: 0 new, 1 partial, 2 filled, 4, 8, A, ...
    average_price: Decimal | None = None  # AvgPx (6); None when absent or zero
    reject_reason: str = ""  # OrdRejReason (103); 5: the provider does not know the order
    symbol: str = ""  # Symbol (55) and Side (54) as sent: a DontKnowTrade repeats them
    side: str = ""

    @property
    def key(self) -> str:
        """What makes this report one of its kind at its provider, for its order: the ExecID;
        for an Order Status answer (whose ExecID FIX 4.4 leaves at 0), the state it reports."""
        if self.kind is ReportKind.STATUS:
            cumulative = plain_decimal(self.cumulative_quantity)
            return f"status:{self.order_status}:{cumulative}"
        return self.execution_id


@dataclass(frozen=True)
class StoredReport:
    """A report committed to `oms.lp_execution_reports` as row `row_id`, not applied yet."""

    row_id: int
    report: ExecutionReport


@dataclass(frozen=True)
class SessionNumbers:
    """An order session's sequence numbers: the next it sends and the next it expects."""

    lp: str
    sender_comp_id: str
    target_comp_id: str
    logged_on: bool
    next_sender_msg_seq_num: int
    next_target_msg_seq_num: int


def _decimal(text: str | None, field: str) -> Decimal:
    try:
        value = Decimal(text or "0")
    except InvalidOperation as error:
        raise ValueError(f"{field} {text!r} is not a decimal") from error
    if not value.is_finite() or value < 0:
        raise ValueError(f"{field} {text!r} is not a non-negative decimal")
    return value


def _kind_of(message: fix.Message) -> ReportKind:
    """ExecType's meaning; without one (some LPs leave it out), OrdStatus's, a fill when it
    carries a LastQty."""
    exec_type = get_field(message, EXEC_TYPE)
    if exec_type:
        return _KINDS.get(exec_type, ReportKind.OTHER)
    if _decimal(get_field(message, LAST_QTY), "LastQty") > 0:
        return ReportKind.FILL
    return _KINDS_BY_STATUS.get(get_field(message, ORD_STATUS) or "", ReportKind.OTHER)


def parse_execution_report(lp: str, message: fix.Message) -> ExecutionReport:
    """The report's meaning, read leniently (the dialects real LPs send on FIX 4.4, module
    doc); ValueError when the OMS cannot understand it (no ClOrdID, a number that is not one,
    a fill that says neither what it filled nor where its order stands)."""
    client_order_id = get_field(message, CL_ORD_ID)
    if not client_order_id:
        raise ValueError("an ExecutionReport needs ClOrdID (11)")
    kind = _kind_of(message)
    order_status = get_field(message, ORD_STATUS) or ""
    last_quantity = _decimal(get_field(message, LAST_QTY), "LastQty")
    cumulative = _decimal(get_field(message, CUM_QTY), "CumQty")
    average = _decimal(get_field(message, AVG_PX), "AvgPx")
    last_price = None
    if kind is ReportKind.FILL:
        last_price = _decimal(get_field(message, LAST_PX), "LastPx")
        if last_quantity <= 0 or last_price <= 0:
            if cumulative <= 0 or average <= 0:
                raise ValueError(
                    "a fill needs a positive LastQty (32) and LastPx (31), or CumQty (14) and"
                    " AvgPx (6)"
                )
            # The order's state is all it gives: applied like an Order Status answer.
            kind, last_price, last_quantity = ReportKind.STATUS, None, Decimal(0)
            if order_status not in ("1", "2"):
                order_status = "2" if get_field(message, EXEC_TYPE) == "2" else "1"
    if kind is ReportKind.STATUS and not order_status:
        raise ValueError("an Order Status report needs OrdStatus (39)")
    execution_id = get_field(message, EXEC_ID) or ""
    if not execution_id and kind is not ReportKind.STATUS:
        # ExecID is what de-duplicates a resend; without it, the order's state does.
        execution_id = f"noexec:{kind.value}:{order_status}:{plain_decimal(cumulative)}"
    return ExecutionReport(
        lp=lp,
        hedge_order_id=client_order_id,
        lp_order_id=get_field(message, ORDER_ID) or "",
        execution_id=execution_id or "0",
        kind=kind,
        last_quantity=last_quantity if kind is ReportKind.FILL else Decimal(0),
        last_price=last_price,
        cumulative_quantity=cumulative,
        text=get_field(message, TEXT) or "",
        received_at=datetime.now(UTC),
        order_status=order_status,
        average_price=average if average > 0 else None,
        reject_reason=get_field(message, ORD_REJ_REASON) or "",
        symbol=get_field(message, SYMBOL) or "",
        side=get_field(message, SIDE) or "",
    )


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def report_to_json(report: ExecutionReport) -> dict[str, str | None]:
    """The report as stored (`oms.lp_execution_reports.report`): decimals as exact text."""
    return {
        "lp": report.lp,
        "hedge_order_id": report.hedge_order_id,
        "lp_order_id": report.lp_order_id,
        "execution_id": report.execution_id,
        "kind": report.kind.value,
        "last_quantity": _text(report.last_quantity),
        "last_price": _text(report.last_price),
        "cumulative_quantity": _text(report.cumulative_quantity),
        "text": report.text,
        "received_at": report.received_at.isoformat(),
        "order_status": report.order_status,
        "average_price": _text(report.average_price),
        "reject_reason": report.reject_reason,
        "symbol": report.symbol,
        "side": report.side,
    }


def report_from_json(stored: Mapping[str, Any]) -> ExecutionReport:
    """The report `report_to_json` stored."""

    def optional(name: str) -> Decimal | None:
        value = stored.get(name)
        return None if value is None else Decimal(value)

    return ExecutionReport(
        lp=stored["lp"],
        hedge_order_id=stored["hedge_order_id"],
        lp_order_id=stored["lp_order_id"],
        execution_id=stored["execution_id"],
        kind=ReportKind(stored["kind"]),
        last_quantity=Decimal(stored["last_quantity"]),
        last_price=optional("last_price"),
        cumulative_quantity=Decimal(stored["cumulative_quantity"]),
        text=stored["text"],
        received_at=datetime.fromisoformat(stored["received_at"]),
        order_status=stored.get("order_status", ""),
        average_price=optional("average_price"),
        reject_reason=stored.get("reject_reason", ""),
        symbol=stored.get("symbol", ""),
        side=stored.get("side", ""),
    )


def new_order_single(request: HedgeRequest) -> fix.Message:
    """A market or limit, IOC or FOK NewOrderSingle; quantities and prices as decimal text,
    never floats."""
    order = fix44.NewOrderSingle()
    fields = [
        (CL_ORD_ID, request.hedge_order_id),
        (SYMBOL, request.symbol),
        (SIDE, _FIX_SIDE[request.side]),
        (ORDER_QTY, plain_decimal(request.quantity)),
        (ORD_TYPE, _MARKET if request.limit_price is None else _LIMIT),
        (TIME_IN_FORCE, _FOK if request.fill_or_kill else _IOC),
        (TRANSACT_TIME, datetime.now(UTC).strftime("%Y%m%d-%H:%M:%S.%f")),
    ]
    if request.limit_price is not None:
        if not (request.limit_price.is_finite() and request.limit_price > 0):
            raise ValueError(f"a limit price must be positive, not {request.limit_price}")
        fields.append((PRICE, format(request.limit_price, "f")))
    for tag, value in fields:
        order.setField(fix.StringField(tag, value))
    return order


def order_status_request(request: StatusRequest, request_id: str) -> fix.Message:
    """An OrderStatusRequest (H): the hedge's ClOrdID, symbol and side, the provider's OrderID
    when known, and `request_id` as OrdStatusReqID (790), which the answer echoes."""
    message = fix44.OrderStatusRequest()
    fields = [
        (CL_ORD_ID, request.hedge_order_id),
        (SYMBOL, request.symbol),
        (SIDE, _FIX_SIDE[request.side]),
        (ORD_STATUS_REQ_ID, request_id),
    ]
    if request.lp_order_id:
        fields.append((ORDER_ID, request.lp_order_id))
    for tag, value in fields:
        message.setField(fix.StringField(tag, value))
    return message


def dont_know_trade(report: ExecutionReport, why: str) -> fix.Message:
    """A DontKnowTrade (Q) for an execution report about an order the OMS never sent: its
    OrderID, ExecID, Symbol and Side repeated, DKReason D (no matching order)."""
    message = fix44.DontKnowTrade()
    fields = [
        (ORDER_ID, report.lp_order_id or "NONE"),
        (EXEC_ID, report.execution_id),
        (DK_REASON, _NO_MATCHING_ORDER),
        (SYMBOL, report.symbol or "NONE"),
        (SIDE, report.side or _FIX_SIDE[Side.BUY]),
        (TEXT, why[:200]),
    ]
    for tag, value in fields:
        message.setField(fix.StringField(tag, value))
    return message


class ReportJournalWriter(Protocol):
    """Commits what an LP sends before QuickFIX moves on (`report_journal.ReportJournal`)."""

    def store(
        self, report: ExecutionReport, raw_message: str, validation_error: str = ""
    ) -> StoredReport | None:
        """The stored row to apply; None when the report was stored and applied before (a
        resend). ReportNotStoredError when it could not be committed."""
        ...

    def store_message(self, message: LpMessage, raw_message: str) -> StoredMessage | None:
        """Commits a message that is not a usable execution report (parked when its kind is
        parked on arrival); the row to apply, or None when it needs nothing more (stored
        before, or parked). ReportNotStoredError when it could not be committed."""
        ...


ReportSink = Callable[[StoredReport], None]
MessageSink = Callable[[StoredMessage], None]
LogonSink = Callable[[str], None]


class _Alerts:
    """ALERT log lines for LP messages that fail validation: every parked one, and the first
    of each kind of fault per provider that was still understood (later ones: a warning)."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def first(self, lp: str, fault: str) -> bool:
        with self._lock:
            if (lp, fault) in self._seen:
                return False
            self._seen.add((lp, fault))
            return True


class _OrderSessionCallbacks(fix.Application):  # type: ignore[misc]
    """QuickFIX's callbacks as the platform's `LpApplication` handles them (logon
    credentials, session log, a Reject from the LP to `on_session_reject`), plus what only the
    order sessions need: the Reject our own session sends (`toAdmin`)."""

    def __init__(self, inner: fix.Application, router: LpOrderRouter) -> None:
        super().__init__()
        self.inner = inner
        self.router = router

    def onCreate(self, session: fix.SessionID) -> None:  # noqa: N802 (QuickFIX's names)
        self.inner.onCreate(session)

    def onLogon(self, session: fix.SessionID) -> None:  # noqa: N802
        self.inner.onLogon(session)

    def onLogout(self, session: fix.SessionID) -> None:  # noqa: N802
        self.inner.onLogout(session)

    def toAdmin(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        self.inner.toAdmin(message, session)
        if get_field(message.getHeader(), MSG_TYPE) == _REJECT:
            self.router.on_reject_sent(message, session)

    def fromAdmin(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        self.inner.fromAdmin(message, session)

    def toApp(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        self.inner.toApp(message, session)

    def fromApp(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        self.inner.fromApp(message, session)


class LpOrderRouter(InitiatorSessions):
    """Runs the order sessions; stores every execution report and every other answer of an LP
    before QuickFIX counts it as received, and delivers it and every logon on the event loop."""

    def __init__(
        self,
        endpoints: Sequence[LpEndpoint],
        credentials: dict[str, tuple[str, Secret]],
        store_dir: Path,
        loop: asyncio.AbstractEventLoop,
        journal: ReportJournalWriter,
        on_report: ReportSink,
        on_logon: LogonSink,
        reconnect_seconds: int = 2,
        heartbeat_seconds: int = 10,
        on_message: MessageSink = lambda stored: None,
    ) -> None:
        settings = initiator_settings(
            endpoints,
            SENDER_COMP_ID,
            store_dir,
            persist_messages=False,
            reset_on_logon=False,
            reconnect_seconds=reconnect_seconds,
            heartbeat_seconds=heartbeat_seconds,
        )
        _parse_leniently(settings, endpoints, store_dir)
        super().__init__(endpoints, credentials, settings)
        self._app = _OrderSessionCallbacks(self._app, self)
        self.loop = loop
        self._journal = journal
        self._on_report = on_report
        self._on_message = on_message
        self._on_logon = on_logon
        self._lock = threading.Lock()
        self._logged_on: dict[str, fix.SessionID] = {}
        self._resetting: set[str] = set()  # LPs whose next Logon resets both sides' numbers
        self._strict = StrictCheck()
        self._alerts = _Alerts()

    def logged_on(self) -> list[str]:
        with self._lock:
            return sorted(self._logged_on)

    def send(self, request: HedgeRequest) -> int:
        """Sends the hedge order; its MsgSeqNum. LpUnavailableError when its LP's session is
        down. Any thread but the event loop's: QuickFIX may hold the session's lock while it
        stores a report."""
        return self._send(request.lp, new_order_single(request))

    def request_status(self, request: StatusRequest, request_id: str) -> int:
        """Asks the provider for the hedge order's state (OrderStatusRequest); the answer
        arrives as a STATUS report. Its MsgSeqNum; LpUnavailableError when the session is
        down. Any thread but the event loop's."""
        return self._send(request.lp, order_status_request(request, request_id))

    def dont_know(self, report: ExecutionReport, why: str) -> int:
        """Answers a report about an order the OMS never sent with a DontKnowTrade; its
        MsgSeqNum. LpUnavailableError when the session is down. Any thread but the loop's."""
        return self._send(report.lp, dont_know_trade(report, why))

    def _send(self, lp: str, message: fix.Message) -> int:
        with self._lock:
            session = self._logged_on.get(lp)
        if session is None or not fix.Session.sendToTarget(message, session):
            raise LpUnavailableError(f"no session to {lp}")
        # QuickFIX fills the header of the message it was given, MsgSeqNum included.
        return int(get_field(message.getHeader(), MSG_SEQ_NUM) or "0")

    # -- operators ----------------------------------------------------------------------------

    def numbers(self, lp: str) -> SessionNumbers:
        """The session's sequence numbers as its store has them. KeyError for an LP without an
        order session here. Any thread but the event loop's."""
        session = self._session(lp)
        with self._lock:
            logged_on = lp in self._logged_on
        endpoint = next(e for e in self.endpoints.values() if e.lp == lp)
        return SessionNumbers(
            lp,
            SENDER_COMP_ID,
            endpoint.target_comp_id,
            logged_on,
            int(session.getExpectedSenderNum()),
            int(session.getExpectedTargetNum()),
        )

    def set_numbers(
        self, lp: str, next_sender: int | None, next_target: int | None
    ) -> tuple[SessionNumbers, SessionNumbers]:
        """An operator's repair of the session's sequence numbers (before, and the numbers
        set): with neither number, a reset (a Logout if logged on, the store emptied, both
        numbers 1, and the next Logon carries ResetSeqNumFlag 141=Y so that the provider starts
        again at 1 as well); otherwise the numbers given are set (the other kept) and the
        connection dropped. Either way QuickFIX logs on again after `ReconnectInterval` (it may
        have by the time this returns) with the new numbers. KeyError for an LP without an
        order session here. Any thread but the event loop's."""
        before = self.numbers(lp)
        session = self._session(lp)
        if next_sender is None and next_target is None:
            with self._lock:
                self._resetting.add(lp)
            session.setResetOnLogon(True)  # for this one logon (`on_logon` turns it off)
            session.reset()
            return before, replace(
                before, logged_on=False, next_sender_msg_seq_num=1, next_target_msg_seq_num=1
            )
        if next_sender is not None:
            session.setNextSenderMsgSeqNum(next_sender)
        if next_target is not None:
            session.setNextTargetMsgSeqNum(next_target)
        session.disconnect()
        return before, replace(
            before,
            logged_on=False,
            next_sender_msg_seq_num=next_sender or before.next_sender_msg_seq_num,
            next_target_msg_seq_num=next_target or before.next_target_msg_seq_num,
        )

    def _session(self, lp: str) -> fix.Session:
        endpoint = next((e for e in self.endpoints.values() if e.lp == lp), None)
        session = None
        if endpoint is not None:
            session = fix.Session.lookupSession(
                fix.SessionID(BEGIN_STRING, SENDER_COMP_ID, endpoint.target_comp_id)
            )
        if session is None:
            raise KeyError(lp)
        return session

    # -- SessionOwner (QuickFIX threads) --------------------------------------------------------

    def on_logon(self, session: fix.SessionID) -> None:
        lp = self.lp_of(session)
        with self._lock:
            self._logged_on[lp] = session
            reset = lp in self._resetting
            self._resetting.discard(lp)
        if reset:
            found = fix.Session.lookupSession(session)
            if found is not None:
                found.setResetOnLogon(False)  # numbers survive restarts again (ADR 0007)
            log.warning("LP order session reset: both sides start at 1", extra={"lp": lp})
        log.info("LP order session logged on", extra={"lp": lp})
        self.loop.call_soon_threadsafe(self._on_logon, lp)

    def on_logout(self, session: fix.SessionID) -> None:
        lp = self.lp_of(session)
        with self._lock:
            self._logged_on.pop(lp, None)
        log.warning("LP order session logged out", extra={"lp": lp})

    def on_error(self, session: fix.SessionID, text: str) -> None:
        log.warning("LP order session error", extra={"lp": self.lp_of(session), "error": text})

    def on_session_reject(self, message: fix.Message, session: fix.SessionID) -> None:
        self.on_lp_message(message, session, admin=True)

    def on_app_message(self, message: fix.Message, session: fix.SessionID) -> None:
        if get_field(message.getHeader(), MSG_TYPE) == fix.MsgType_ExecutionReport:
            self._on_execution_report(message, session)
        else:
            self.on_lp_message(message, session, admin=False)

    def _on_execution_report(self, message: fix.Message, session: fix.SessionID) -> None:
        lp = self.lp_of(session)
        problem = self._strict.problem(message)
        try:
            report = parse_execution_report(lp, message)
        except ValueError as error:
            unreadable = unreadable_report(lp, message, datetime.now(UTC), str(error))
            self._park(unreadable, message, session)
            return
        if problem:
            self._understood_anyway(lp, report, problem)
        try:
            stored = self._journal.store(report, message.toString(), problem)
        except ReportNotStoredError as error:
            REPORTS_NOT_STORED.labels(lp).inc()
            log.error(
                "an execution report could not be stored: the session is dropped and the"
                " provider will resend it",
                extra={
                    "lp": lp,
                    "cl_ord_id": report.hedge_order_id,
                    "execution_id": report.execution_id,
                    "error": str(error),
                },
            )
            self._refuse(message, session)
            return
        if stored is not None:
            self.loop.call_soon_threadsafe(self._on_report, stored)

    def _understood_anyway(self, lp: str, report: ExecutionReport, problem: str) -> None:
        INVALID_MESSAGES.labels(lp, "understood").inc()
        fault = problem.rsplit(":", 1)[0] + f" ({report.kind.value})"
        extra = {
            "lp": lp,
            "cl_ord_id": report.hedge_order_id,
            "execution_id": report.execution_id,
            "validation_error": problem,
            "understood_as": report.kind.value,
        }
        if self._alerts.first(lp, fault):
            log.error(
                "ALERT: an execution report fails the FIX 4.4 dictionary; it is stored and"
                " applied as the OMS understands it (reported once per provider and fault)",
                extra=extra,
            )
        else:
            log.warning("an execution report fails the FIX 4.4 dictionary", extra=extra)

    def on_lp_message(self, message: fix.Message, session: fix.SessionID, *, admin: bool) -> None:
        """A Reject (admin), or an application message that is not an ExecutionReport: stored,
        then handed to the desk. One that cannot be stored is left unconsumed like a report
        (the provider resends it), except a Reject: admin messages are never resent (QuickFIX
        gap-fills them), so it is handed over unstored rather than lost."""
        lp = self.lp_of(session)
        received = parse_message(lp, message, datetime.now(UTC))
        if received.kind is LpMessageKind.OTHER:
            unexpected = f"a message of type {received.msg_type!r} the order sessions do not expect"
            self._park(replace(received, problem=unexpected), message, session)
            return
        LP_REFUSALS.labels(lp, received.msg_type).inc()
        if not admin:
            received = replace(received, problem=self._strict.problem(message))
            if received.problem:
                INVALID_MESSAGES.labels(lp, "understood").inc()
        log.warning(
            "an LP answered the OMS's order session with %s",
            received.kind.value,
            extra={
                "lp": lp,
                "ref_seq_num": received.ref_seq_num,
                "ref_msg_type": received.ref_msg_type,
                "cl_ord_id": received.cl_ord_id,
                "reason": received.reason,
                "text": received.text,
            },
        )
        try:
            stored = self._journal.store_message(received, message.toString())
        except ReportNotStoredError as error:
            REPORTS_NOT_STORED.labels(lp).inc()
            log.error(
                "a message from an LP could not be stored",
                extra={"lp": lp, "kind": received.kind.value, "error": str(error)},
            )
            if admin:
                self.loop.call_soon_threadsafe(self._on_message, StoredMessage(None, received))
            else:
                self._refuse(message, session)
            return
        if stored is not None:
            self.loop.call_soon_threadsafe(self._on_message, stored)

    def on_reject_sent(self, reject: fix.Message, session: fix.SessionID) -> None:
        """Our session refuses an incoming message (even the lenient dictionary would not take
        it): QuickFIX has consumed it, so it is parked, with what our Reject says. The refused
        message's own text reaches no callback (QuickFIX refuses it first, and a Python `Log`
        crashes the quickfix 1.16 binding, services/platform/fix_log.py): its RefSeqNum tells
        the operator which message to ask the provider for."""
        lp = self.lp_of(session)
        refused = refused_by_session(lp, reject, datetime.now(UTC))
        INVALID_MESSAGES.labels(lp, "refused").inc()
        self._alert_parked(refused)
        try:
            self._journal.store_message(refused, reject.toString())
        except ReportNotStoredError as error:
            log.error(
                "the OMS's refusal of an LP message could not be stored",
                extra={"lp": lp, "ref_seq_num": refused.ref_seq_num, "error": str(error)},
            )

    def _park(self, parked: LpMessage, message: fix.Message, session: fix.SessionID) -> None:
        """Stores a message the OMS cannot act on for an operator (ALERT); not stored: left
        unconsumed, so the provider resends it."""
        INVALID_MESSAGES.labels(parked.lp, "parked").inc()
        self._alert_parked(parked)
        try:
            self._journal.store_message(parked, message.toString())
        except ReportNotStoredError as error:
            REPORTS_NOT_STORED.labels(parked.lp).inc()
            log.error(
                "a parked LP message could not be stored: the session is dropped and the"
                " provider will resend it",
                extra={"lp": parked.lp, "error": str(error)},
            )
            self._refuse(message, session)

    @staticmethod
    def _alert_parked(parked: LpMessage) -> None:
        log.error(
            "ALERT: a message from an LP's order session is parked for an operator: %s",
            parked.problem,
            extra={
                "lp": parked.lp,
                "kind": parked.kind.value,
                "msg_type": parked.msg_type,
                "msg_seq_num": parked.msg_seq_num,
                "cl_ord_id": parked.cl_ord_id,
            },
        )

    def _refuse(self, message: fix.Message, session_id: fix.SessionID) -> None:
        """Leaves the message unconsumed: QuickFIX adds one to the next expected incoming
        number after `fromApp` returns, so it is set to the message's own number less one, and
        the connection is dropped so that nothing after it is taken either. The Logon after
        the reconnect is then ahead of us, and QuickFIX asks the provider to resend from this
        message on."""
        session = fix.Session.lookupSession(session_id)
        if session is None:
            return
        number = int(get_field(message.getHeader(), MSG_SEQ_NUM) or "0")
        if number > 1:
            session.setNextTargetMsgSeqNum(number - 1)
        session.disconnect()


def _parse_leniently(
    settings: fix.SessionSettings, endpoints: Sequence[LpEndpoint], store_dir: Path
) -> None:
    """Points every order session at the lenient dictionary (written beside the store) and
    the settings that go with it (`lp_dialects`)."""
    dictionary = write_lenient_dictionary(store_dir / "FIX44-lenient.xml")
    for endpoint in endpoints:
        session_id = fix.SessionID(BEGIN_STRING, SENDER_COMP_ID, endpoint.target_comp_id)
        # QuickFIX hands out the session's own dictionary (and `set` refuses a session twice):
        # it is changed in place.
        values = settings.get(session_id)
        values.setString("DataDictionary", str(dictionary))
        for key, value in LENIENT_SESSION_SETTINGS.items():
            values.setString(key, value)

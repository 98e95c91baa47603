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
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final, Protocol

import quickfix as fix
import quickfix44 as fix44
from prometheus_client import Counter

from services.oms.domain.positions import Side
from services.platform.fix import InitiatorSessions, LpEndpoint, get_field, initiator_settings
from services.platform.metrics import REGISTRY
from services.platform.secrets import Secret

__all__ = [
    "SENDER_COMP_ID",
    "ExecutionReport",
    "HedgeRequest",
    "LpOrderRouter",
    "LpUnavailableError",
    "ReportJournalWriter",
    "ReportKind",
    "ReportNotStoredError",
    "StatusRequest",
    "StoredReport",
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
PRICE, ORD_REJ_REASON, ORD_STATUS_REQ_ID = 44, 103, 790
_FIX_SIDE: Final = {Side.BUY: "1", Side.SELL: "2"}
_MARKET, _LIMIT, _IOC, _FOK = "1", "2", "3", "4"

REPORTS_NOT_STORED = Counter(
    "tradingmesh_oms_lp_reports_not_stored",
    "execution reports that could not be stored; their session was dropped so the LP resends",
    ["lp"],
    registry=REGISTRY,
)


class LpUnavailableError(Exception):
    """No logged-on session to the LP: the hedge order cannot be sent."""


class ReportNotStoredError(Exception):
    """An execution report could not be committed to `oms.lp_execution_reports`."""


class ReportKind(enum.StrEnum):
    """What an ExecutionReport (ExecType, 150) says happened."""

    ACKNOWLEDGED = "ACKNOWLEDGED"  # 0 New
    FILL = "FILL"  # F Trade (a partial or a complete fill)
    CANCELLED = "CANCELLED"  # 4 Canceled (the unfilled rest of an IOC)
    REJECTED = "REJECTED"  # 8 Rejected
    STATUS = "STATUS"  # I Order Status: the answer to an OrderStatusRequest
    OTHER = "OTHER"


_KINDS: Final = {
    "0": ReportKind.ACKNOWLEDGED,
    "F": ReportKind.FILL,
    "4": ReportKind.CANCELLED,
    "8": ReportKind.REJECTED,
    "I": ReportKind.STATUS,
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

    @property
    def key(self) -> str:
        """What makes this report one of its kind at its provider, for its order: the ExecID;
        for an Order Status answer (whose ExecID FIX 4.4 leaves at 0), the state it reports."""
        if self.kind is ReportKind.STATUS:
            cumulative = format(self.cumulative_quantity.normalize(), "f")
            return f"status:{self.order_status}:{cumulative}"
        return self.execution_id


@dataclass(frozen=True)
class StoredReport:
    """A report committed to `oms.lp_execution_reports` as row `row_id`, not applied yet."""

    row_id: int
    report: ExecutionReport


def _decimal(text: str | None, field: str) -> Decimal:
    try:
        value = Decimal(text or "0")
    except InvalidOperation as error:
        raise ValueError(f"{field} {text!r} is not a decimal") from error
    if not value.is_finite() or value < 0:
        raise ValueError(f"{field} {text!r} is not a non-negative decimal")
    return value


def parse_execution_report(lp: str, message: fix.Message) -> ExecutionReport:
    """The report's meaning; ValueError when it lacks what the OMS needs."""
    client_order_id = get_field(message, CL_ORD_ID)
    execution_id = get_field(message, EXEC_ID)
    if not client_order_id or not execution_id:
        raise ValueError("an ExecutionReport needs ClOrdID (11) and ExecID (17)")
    kind = _KINDS.get(get_field(message, EXEC_TYPE) or "", ReportKind.OTHER)
    last_quantity = _decimal(get_field(message, LAST_QTY), "LastQty")
    last_price = None
    if kind is ReportKind.FILL:
        last_price = _decimal(get_field(message, LAST_PX), "LastPx")
        if last_quantity <= 0 or last_price <= 0:
            raise ValueError("a fill needs a positive LastQty (32) and LastPx (31)")
    average = _decimal(get_field(message, AVG_PX), "AvgPx")
    order_status = get_field(message, ORD_STATUS) or ""
    if kind is ReportKind.STATUS and not order_status:
        raise ValueError("an Order Status report needs OrdStatus (39)")
    return ExecutionReport(
        lp=lp,
        hedge_order_id=client_order_id,
        lp_order_id=get_field(message, ORDER_ID) or "",
        execution_id=execution_id,
        kind=kind,
        last_quantity=last_quantity if kind is ReportKind.FILL else Decimal(0),
        last_price=last_price,
        cumulative_quantity=_decimal(get_field(message, CUM_QTY), "CumQty"),
        text=get_field(message, TEXT) or "",
        received_at=datetime.now(UTC),
        order_status=order_status,
        average_price=average if average > 0 else None,
        reject_reason=get_field(message, ORD_REJ_REASON) or "",
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
    )


def new_order_single(request: HedgeRequest) -> fix.Message:
    """A market or limit, IOC or FOK NewOrderSingle; quantities and prices as decimal text,
    never floats."""
    order = fix44.NewOrderSingle()
    fields = [
        (CL_ORD_ID, request.hedge_order_id),
        (SYMBOL, request.symbol),
        (SIDE, _FIX_SIDE[request.side]),
        (ORDER_QTY, format(request.quantity.normalize(), "f")),
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


class ReportJournalWriter(Protocol):
    """Commits a report before QuickFIX moves on (`report_journal.ReportJournal`)."""

    def store(self, report: ExecutionReport, raw_message: str) -> StoredReport | None:
        """The stored row to apply; None when the report was stored and applied before (a
        resend). ReportNotStoredError when it could not be committed."""
        ...


ReportSink = Callable[[StoredReport], None]
LogonSink = Callable[[str], None]


class LpOrderRouter(InitiatorSessions):
    """Runs the order sessions; stores every execution report before QuickFIX counts it as
    received, and delivers it and every logon on the event loop."""

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
    ) -> None:
        super().__init__(
            endpoints,
            credentials,
            initiator_settings(
                endpoints,
                SENDER_COMP_ID,
                store_dir,
                persist_messages=False,
                reset_on_logon=False,
                reconnect_seconds=reconnect_seconds,
                heartbeat_seconds=heartbeat_seconds,
            ),
        )
        self.loop = loop
        self._journal = journal
        self._on_report = on_report
        self._on_logon = on_logon
        self._lock = threading.Lock()
        self._logged_on: dict[str, fix.SessionID] = {}

    def logged_on(self) -> list[str]:
        with self._lock:
            return sorted(self._logged_on)

    def send(self, request: HedgeRequest) -> None:
        """Sends the hedge order; LpUnavailableError when its LP's session is down. Any thread
        but the event loop's: QuickFIX may hold the session's lock while it stores a report."""
        self._send(request.lp, new_order_single(request))

    def request_status(self, request: StatusRequest, request_id: str) -> None:
        """Asks the provider for the hedge order's state (OrderStatusRequest); the answer
        arrives as a STATUS report. LpUnavailableError when the session is down. Any thread
        but the event loop's."""
        self._send(request.lp, order_status_request(request, request_id))

    def _send(self, lp: str, message: fix.Message) -> None:
        with self._lock:
            session = self._logged_on.get(lp)
        if session is None or not fix.Session.sendToTarget(message, session):
            raise LpUnavailableError(f"no session to {lp}")

    # -- SessionOwner (QuickFIX threads) --------------------------------------------------------

    def on_logon(self, session: fix.SessionID) -> None:
        lp = self.lp_of(session)
        with self._lock:
            self._logged_on[lp] = session
        log.info("LP order session logged on", extra={"lp": lp})
        self.loop.call_soon_threadsafe(self._on_logon, lp)

    def on_logout(self, session: fix.SessionID) -> None:
        lp = self.lp_of(session)
        with self._lock:
            self._logged_on.pop(lp, None)
        log.warning("LP order session logged out", extra={"lp": lp})

    def on_error(self, session: fix.SessionID, text: str) -> None:
        log.warning("LP order session error", extra={"lp": self.lp_of(session), "error": text})

    def on_app_message(self, message: fix.Message, session: fix.SessionID) -> None:
        if get_field(message.getHeader(), MSG_TYPE) != fix.MsgType_ExecutionReport:
            return
        lp = self.lp_of(session)
        try:
            report = parse_execution_report(lp, message)
        except ValueError as error:
            log.error("unusable execution report", extra={"lp": lp, "error": str(error)})
            return
        try:
            stored = self._journal.store(report, message.toString())
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

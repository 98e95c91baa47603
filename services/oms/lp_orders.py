"""The OMS's order sessions to the liquidity providers (ADR 0007, "The OMS's FIX sessions").

One QuickFIX 4.4 initiator per LP (services/platform/fix.py), separate from pricing's market data
sessions: SenderCompID `TRADINGMESH-OMS`, `ResetOnLogon=N` with a file store under
`TM_DATA_DIR/oms/fix`, so sequence numbers survive a restart and an execution report the LP sent
while the OMS was down arrives by resend. `PersistMessages=N`: the store never holds a message,
so the Logon's LP password is never written to disk; a NewOrderSingle the LP asks to be resent
is gap-filled, never re-sent late (its hedge stays SENT without a report, see ADR 0007).

A hedge order goes out as a NewOrderSingle, ClOrdID = the hedge order's id: a window's net as
a market IOC; an STP limit order's own hedge as a limit (Price, 44, the raw limit) IOC, or FOK
for a fill-or-kill client order (the provider fills it in full or not at all). Every
ExecutionReport is parsed here, on QuickFIX's thread, and handed to the event loop as an
`ExecutionReport`; what it does to the hedge order is decided there, in one transaction,
de-duplicated on ExecID.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

import quickfix as fix
import quickfix44 as fix44

from services.oms.domain.positions import Side
from services.platform.fix import InitiatorSessions, LpEndpoint, get_field, initiator_settings
from services.platform.secrets import Secret

__all__ = [
    "SENDER_COMP_ID",
    "ExecutionReport",
    "HedgeRequest",
    "LpOrderRouter",
    "LpUnavailableError",
    "ReportKind",
    "parse_execution_report",
]

log = logging.getLogger(__name__)

SENDER_COMP_ID: Final = "TRADINGMESH-OMS"
MSG_TYPE, CL_ORD_ID, ORDER_ID, EXEC_ID, TEXT = 35, 11, 37, 17, 58
EXEC_TYPE, ORD_STATUS, SIDE, SYMBOL, ORDER_QTY, ORD_TYPE = 150, 39, 54, 55, 38, 40
TIME_IN_FORCE, TRANSACT_TIME, LAST_QTY, LAST_PX, CUM_QTY, AVG_PX = 59, 60, 32, 31, 14, 6
PRICE = 44
_FIX_SIDE: Final = {Side.BUY: "1", Side.SELL: "2"}
_MARKET, _LIMIT, _IOC, _FOK = "1", "2", "3", "4"


class LpUnavailableError(Exception):
    """No logged-on session to the LP: the hedge order cannot be sent."""


class ReportKind(enum.StrEnum):
    """What an ExecutionReport (ExecType, 150) says happened."""

    ACKNOWLEDGED = "ACKNOWLEDGED"  # 0 New
    FILL = "FILL"  # F Trade (a partial or a complete fill)
    CANCELLED = "CANCELLED"  # 4 Canceled (the unfilled rest of an IOC)
    REJECTED = "REJECTED"  # 8 Rejected
    OTHER = "OTHER"


_KINDS: Final = {
    "0": ReportKind.ACKNOWLEDGED,
    "F": ReportKind.FILL,
    "4": ReportKind.CANCELLED,
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


ReportSink = Callable[[ExecutionReport], None]
LogonSink = Callable[[str], None]


class LpOrderRouter(InitiatorSessions):
    """Runs the order sessions; delivers execution reports and logons on the event loop."""

    def __init__(
        self,
        endpoints: Sequence[LpEndpoint],
        credentials: dict[str, tuple[str, Secret]],
        store_dir: Path,
        loop: asyncio.AbstractEventLoop,
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
        self._on_report = on_report
        self._on_logon = on_logon
        self._lock = threading.Lock()
        self._logged_on: dict[str, fix.SessionID] = {}

    def logged_on(self) -> list[str]:
        with self._lock:
            return sorted(self._logged_on)

    def send(self, request: HedgeRequest) -> None:
        """Sends the hedge order; LpUnavailableError when its LP's session is down. Any thread."""
        with self._lock:
            session = self._logged_on.get(request.lp)
        if session is None or not fix.Session.sendToTarget(new_order_single(request), session):
            raise LpUnavailableError(f"no session to {request.lp}")

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
        self.loop.call_soon_threadsafe(self._on_report, report)

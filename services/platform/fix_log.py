"""FIX session logs: one file per session, every message in and out with the passwords
redacted, and one clear line for every logout, reject and resend.

`SessionLog(directory)` writes `<BeginString>-<SenderCompID>-<TargetCompID>.log` per session,
e.g. `FIX.4.4-TRADINGMESH-LP-ALPHA.log`, one line per message or event:

    20261206-10:00:00.123456 OUT 8=FIX.4.4|9=...|35=A|...|553=tradingmesh|554=***|...
    20261206-10:00:00.125010 IN  8=FIX.4.4|9=...|35=A|...
    20261206-10:00:00.125100 EVT logged on
    20261206-10:03:12.000000 EVT logout received: MsgSeqNum too low, expecting 12 but received 7

(SOH shown as `|`). Password (554) and NewPassword (925) are blanked before a line is written: a
Logon carries the LP password and must never reach the disk. Market data refreshes (35=W, 35=X)
are left out unless `TM_FIX_LOG_MARKET_DATA=Y`: they are most of the traffic (kilobytes a second
per LP, megabytes under the market data benchmark) and are kept in the tick store anyway; the
requests, their rejects and every other message are logged, and the log says once per session
that refreshes are left out (their MsgSeqNums are the gaps). The platform's initiators
(services/platform/fix.py) and the LP simulators' acceptors write it from their QuickFIX
`Application` callbacks, which see every message sent and every message received that passes
QuickFIX's checks; a message QuickFIX itself refuses shows as the Reject (35=3) we send, with its
reason. QuickFIX's own `FileLog` cannot be used: it writes the Logon as sent, password included,
and a Python `Log` subclass (the only way to filter it) crashes the quickfix 1.16 binding (a
segmentation fault as the first session is created). The stack points every process at
`.tradingmesh/<name>/logs/fix/` (`TM_FIX_LOG_DIR`), where `tradingmesh logs fix` shows them.

`describe(message, incoming)` says in one sentence what a Logout (with its Text), a Reject
(35=3), a Business Message Reject (35=j), a MarketDataRequestReject (35=Y), a ResendRequest or a
SequenceReset means; `record` writes a message to the session log and that sentence to both
the session log and the process's log, so the reason for every logout and reject is on our
side too, not only in the counterparty's log.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Final
from typing import TextIO

import quickfix as fix

__all__ = [
    "FIX_LOG_DIR_VARIABLE",
    "FIX_LOG_MARKET_DATA_VARIABLE",
    "SessionLog",
    "describe",
    "fix_log_dir",
    "record",
    "redact",
    "session_log",
]

FIX_LOG_DIR_VARIABLE: Final = "TM_FIX_LOG_DIR"
FIX_LOG_MARKET_DATA_VARIABLE: Final = "TM_FIX_LOG_MARKET_DATA"
MARKET_DATA_REFRESHES: Final = frozenset({"W", "X"})

MSG_SEQ_NUM, MSG_TYPE, TEXT = 34, 35, 58
BEGIN_SEQ_NO, END_SEQ_NO, GAP_FILL_FLAG, NEW_SEQ_NO = 7, 16, 123, 36
REF_SEQ_NUM, REF_TAG_ID, REF_MSG_TYPE, SESSION_REJECT_REASON = 45, 371, 372, 373
BUSINESS_REJECT_REF_ID, BUSINESS_REJECT_REASON = 379, 380
MD_REQ_ID, MD_REQ_REJ_REASON = 262, 281

SOH: Final = "\x01"
_SECRET_FIELDS = re.compile("(\x01(?:554|925)=)[^\x01]*")

_MESSAGE_NAMES: Final = {
    "0": "Heartbeat",
    "1": "TestRequest",
    "2": "ResendRequest",
    "3": "Reject",
    "4": "SequenceReset",
    "5": "Logout",
    "8": "ExecutionReport",
    "9": "OrderCancelReject",
    "A": "Logon",
    "D": "NewOrderSingle",
    "F": "OrderCancelRequest",
    "G": "OrderCancelReplaceRequest",
    "H": "OrderStatusRequest",
    "Q": "DontKnowTrade",
    "V": "MarketDataRequest",
    "W": "MarketDataSnapshotFullRefresh",
    "X": "MarketDataIncrementalRefresh",
    "Y": "MarketDataRequestReject",
    "j": "BusinessMessageReject",
}
_SESSION_REJECT_REASONS: Final = {
    "0": "invalid tag number",
    "1": "required tag missing",
    "2": "tag not defined for this message type",
    "3": "undefined tag",
    "4": "tag specified without a value",
    "5": "value is incorrect (out of range) for this tag",
    "6": "incorrect data format for value",
    "7": "decryption problem",
    "8": "signature problem",
    "9": "CompID problem",
    "10": "SendingTime accuracy problem",
    "11": "invalid MsgType",
    "12": "XML validation error",
    "13": "tag appears more than once",
    "14": "tag specified out of required order",
    "15": "repeating group fields out of order",
    "16": "incorrect NumInGroup count for repeating group",
    "17": "non-data value includes field delimiter",
    "99": "other",
}
_BUSINESS_REJECT_REASONS: Final = {
    "0": "other",
    "1": "unknown ID",
    "2": "unknown security",
    "3": "unsupported message type",
    "4": "application not available",
    "5": "conditionally required field missing",
    "6": "not authorized",
    "7": "DeliverTo firm not available at this time",
}
_MD_REJECT_REASONS: Final = {
    "0": "unknown symbol",
    "1": "duplicate MDReqID",
    "2": "insufficient bandwidth",
    "3": "insufficient permissions",
    "4": "unsupported SubscriptionRequestType",
    "5": "unsupported MarketDepth",
    "6": "unsupported MDUpdateType",
    "7": "unsupported AggregatedBook",
    "8": "unsupported MDEntryType",
    "9": "unsupported TradingSessionID",
    "A": "unsupported Scope",
    "B": "unsupported OpenCloseSettlFlag",
    "C": "unsupported MDImplicitDelete",
}


def fix_log_dir(default: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """Where a process writes its FIX session logs: `TM_FIX_LOG_DIR` (the stack sets it to its
    log folder), else `default`."""
    value = environ.get(FIX_LOG_DIR_VARIABLE, "")
    return Path(value) if value else default


def session_log(default: Path, environ: Mapping[str, str] = os.environ) -> SessionLog:
    """A process's session log as its environment says: in `fix_log_dir`, with market data
    refreshes when `TM_FIX_LOG_MARKET_DATA=Y`."""
    market_data = environ.get(FIX_LOG_MARKET_DATA_VARIABLE, "N").upper() in ("Y", "1", "TRUE")
    return SessionLog(fix_log_dir(default, environ), market_data=market_data)


def redact(text: str) -> str:
    """`text` (a raw FIX message) with Password and NewPassword blanked."""
    if "\x01554=" not in text and "\x01925=" not in text:
        return text  # nearly every message: no regex on the hot path
    return _SECRET_FIELDS.sub(r"\1***", text)


class SessionLog:
    """One log file per session in `directory` (made 0700, files 0600: they hold every order).
    Any thread: QuickFIX calls back on its own, the simulator publishes on another."""

    def __init__(self, directory: Path, *, market_data: bool = False) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory = directory
        self.market_data = market_data  # whether refreshes (35=W, 35=X) are logged too
        self._lock = threading.Lock()
        self._files: dict[str, TextIO] = {}
        self._skipping: set[str] = set()  # sessions told that refreshes are left out

    @staticmethod
    def file_name(session: fix.SessionID) -> str:
        """`FIX.4.4-TRADINGMESH-LP-ALPHA.log`, after QuickFIX's own FileLog names."""
        parts = [
            session.getBeginString().getValue(),
            session.getSenderCompID().getValue(),
            session.getTargetCompID().getValue(),
        ]
        return "-".join(parts) + ".log"

    def incoming(self, session: fix.SessionID, message: fix.Message) -> None:
        if self._logged(session, message):
            self._write(session, "IN ", redact(message.toString()).replace(SOH, "|"))

    def outgoing(self, session: fix.SessionID, message: fix.Message) -> None:
        if self._logged(session, message):
            self._write(session, "OUT", redact(message.toString()).replace(SOH, "|"))

    def _logged(self, session: fix.SessionID, message: fix.Message) -> bool:
        if self.market_data or _get(message.getHeader(), MSG_TYPE) not in MARKET_DATA_REFRESHES:
            return True
        key = session.toString()
        if key not in self._skipping:  # said once per session (a race says it twice at most)
            self._skipping.add(key)
            self.event(
                session,
                "market data refreshes (35=W, 35=X) are not logged"
                f" ({FIX_LOG_MARKET_DATA_VARIABLE}=Y logs them)",
            )
        return False

    def event(self, session: fix.SessionID, text: str) -> None:
        self._write(session, "EVT", text)

    def close(self) -> None:
        with self._lock:
            for file in self._files.values():
                file.close()
            self._files.clear()

    def _write(self, session: fix.SessionID, kind: str, text: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H:%M:%S.%f")
        line = f"{stamp} {kind} {text}\n"
        key = session.toString()
        with self._lock:
            file = self._files.get(key)
            if file is None:
                path = self.directory / self.file_name(session)
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                # Kept open for the session's life (closed by `close`), hence no `with`.
                file = open(descriptor, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
                self._files[key] = file
            file.write(line)  # line-buffered: each line is on disk as it happens


def _get(message: fix.FieldMap, tag: int) -> str:
    return str(message.getField(tag)) if message.isSetField(tag) else ""


def _named(code: str, names: dict[str, str]) -> str:
    return f"{code} ({names[code]})" if code in names else code or "(none)"


def _message_name(msg_type: str) -> str:
    return f"{_MESSAGE_NAMES.get(msg_type, 'MsgType')} {msg_type}" if msg_type else "(unknown)"


_DESCRIBED: Final = frozenset({"2", "3", "4", "5", "Y", "j"})


def describe(message: fix.Message, incoming: bool) -> tuple[int, str] | None:
    """What a logout, reject, resend request or sequence reset says, as (logging level, one
    sentence); None for any other message."""
    msg_type = _get(message.getHeader(), MSG_TYPE)
    if msg_type not in _DESCRIBED:
        return None  # nearly every message: nothing more read
    direction = "received" if incoming else "sent"
    text = _get(message, TEXT)
    if msg_type == "5":  # Logout
        reason = text or "(no reason given)"
        return logging.WARNING if incoming or text else logging.INFO, (
            f"logout {direction}: {reason}"
        )
    if msg_type == "3":  # Reject (session level)
        tag = _get(message, REF_TAG_ID)
        return logging.WARNING, (
            f"session reject {direction}: message {_get(message, REF_SEQ_NUM) or '?'}"
            f" ({_message_name(_get(message, REF_MSG_TYPE))})"
            + (f", tag {tag}" if tag else "")
            + f", reason {_named(_get(message, SESSION_REJECT_REASON), _SESSION_REJECT_REASONS)}"
            + f": {text or '(no text)'}"
        )
    if msg_type == "j":  # Business Message Reject
        return logging.WARNING, (
            f"business reject {direction}: message {_get(message, REF_SEQ_NUM) or '?'}"
            f" ({_message_name(_get(message, REF_MSG_TYPE))})"
            f", id {_get(message, BUSINESS_REJECT_REF_ID) or '(none)'}"
            f", reason {_named(_get(message, BUSINESS_REJECT_REASON), _BUSINESS_REJECT_REASONS)}"
            f": {text or '(no text)'}"
        )
    if msg_type == "Y":  # MarketDataRequestReject
        return logging.WARNING, (
            f"market data request {_get(message, MD_REQ_ID) or '?'} refused ({direction})"
            f", reason {_named(_get(message, MD_REQ_REJ_REASON), _MD_REJECT_REASONS)}"
            f": {text or '(no text)'}"
        )
    if msg_type == "2":  # ResendRequest
        end = _get(message, END_SEQ_NO)
        return logging.WARNING, (
            f"resend request {direction}: messages {_get(message, BEGIN_SEQ_NO) or '?'}"
            f" to {end if end not in ('', '0') else 'the latest'}"
        )
    if msg_type == "4":  # SequenceReset
        kind = "gap fill" if _get(message, GAP_FILL_FLAG) == "Y" else "reset"
        return logging.INFO, (
            f"sequence reset ({kind}) {direction}: message {_get(message.getHeader(), MSG_SEQ_NUM)}"
            f", next number {_get(message, NEW_SEQ_NO) or '?'}"
        )
    return None


def record(
    logger: logging.Logger,
    session_log: SessionLog | None,
    message: fix.Message,
    session: fix.SessionID,
    *,
    incoming: bool,
) -> None:
    """Writes `message` to the session log and, if it is a logout, reject, resend request or
    sequence reset (`describe`), one sentence saying so to the session log and to `logger`."""
    if session_log is not None:
        if incoming:
            session_log.incoming(session, message)
        else:
            session_log.outgoing(session, message)
    described = describe(message, incoming)
    if described is None:
        return
    level, sentence = described
    name = session.toString()
    logger.log(level, "%s: %s", name, sentence, extra={"fix_session": name})
    if session_log is not None:
        session_log.event(session, sentence)

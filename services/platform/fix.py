"""FIX 4.4 initiator sessions to liquidity providers, as pricing's LP gateway (market data,
ADR 0006) and the OMS's order router (STP hedge orders, ADR 0007) both run them.

QuickFIX owns the sessions: logon, heartbeats, resend requests, and reconnecting every
`ReconnectInterval` seconds after a drop. What is shared here: the configured endpoints
(`TM_PRICING_LPS`, `TM_OMS_LPS`), the session settings, and the QuickFIX `Application` that puts
each LP's credentials from Vault (`secret/tradingmesh/lp/<lp>`) into the Logon (553/554) and hands
every other callback to the owner (`SessionOwner`). The sessions differ in their SenderCompID and
their message store: pricing's keeps no messages and resets sequence numbers at each logon,
the OMS's keeps both, so that an execution report is never lost across a restart.

Every session has a FIX session log (services/platform/fix_log.py): each message in and out
(market data refreshes only with `TM_FIX_LOG_MARKET_DATA=Y`), passwords redacted, in
`TM_FIX_LOG_DIR` (the stack's `logs/fix/`), else in a `log` folder in the message store; and
every logout, reject (35=3, 35=j, 35=Y), resend request and sequence reset, either way, is one
clear line with its reason in the session log and the process's log.
"""

from __future__ import annotations

import abc
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

import quickfix as fix

from services.platform.fix_log import SessionLog, record, session_log
from services.platform.secrets import Secret

__all__ = [
    "BEGIN_STRING",
    "InitiatorSessions",
    "LpApplication",
    "LpEndpoint",
    "SessionOwner",
    "get_field",
    "initiator_settings",
    "parse_fix_time",
]

log = logging.getLogger(__name__)

BEGIN_STRING: Final = "FIX.4.4"
MSG_TYPE: Final = 35
TEXT: Final = 58
USERNAME: Final = 553
PASSWORD: Final = 554


@dataclass(frozen=True)
class LpEndpoint:
    """One configured LP: its id (also its Vault path and, upper-cased, its TargetCompID)."""

    lp: str
    host: str
    port: int

    @property
    def target_comp_id(self) -> str:
        return self.lp.upper()

    @classmethod
    def parse_list(cls, text: str) -> list[LpEndpoint]:
        """`lp-alpha=127.0.0.1:17060,lp-beta=127.0.0.1:17061`"""
        endpoints = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            lp, _, address = item.partition("=")
            host, _, port = address.rpartition(":")
            if not lp or not host or not port.isdigit():
                raise ValueError(f"bad LP endpoint {item!r}: want <lp>=<host>:<port>")
            endpoints.append(cls(lp.strip(), host, int(port)))
        return endpoints


def get_field(message: fix.FieldMap, tag: int) -> str | None:
    """A field's text, or None when the message does not carry it."""
    return str(message.getField(tag)) if message.isSetField(tag) else None


def parse_fix_time(text: str | None) -> datetime | None:
    """FIX UTCTimestamp (YYYYMMDD-HH:MM:SS[.fff[fff]]) as an aware datetime."""
    if not text:
        return None
    for pattern in ("%Y%m%d-%H:%M:%S.%f", "%Y%m%d-%H:%M:%S"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def initiator_settings(
    endpoints: Iterable[LpEndpoint],
    sender_comp_id: str,
    store_dir: Path,
    *,
    persist_messages: bool,
    reset_on_logon: bool,
    reconnect_seconds: int,
    heartbeat_seconds: int,
) -> fix.SessionSettings:
    """One initiator session per endpoint, its store (sequence numbers and, with
    `persist_messages`, the messages sent) under `store_dir`, readable by this user only."""
    store_dir.mkdir(parents=True, exist_ok=True)
    store_dir.chmod(0o700)
    defaults = fix.Dictionary()
    for key, value in {
        "ConnectionType": "initiator",
        "StartTime": "00:00:00",
        "EndTime": "00:00:00",
        "HeartBtInt": str(heartbeat_seconds),
        "ReconnectInterval": str(reconnect_seconds),
        "FileStorePath": str(store_dir),
        "PersistMessages": "Y" if persist_messages else "N",
        "ResetOnLogon": "Y" if reset_on_logon else "N",
        "UseDataDictionary": "Y",
        "DataDictionary": str(Path(sys.prefix) / "share" / "quickfix" / "FIX44.xml"),
        "ValidateUserDefinedFields": "N",
        "TimestampPrecision": "6",
        "SocketNodelay": "Y",
    }.items():
        defaults.setString(key, value)
    settings = fix.SessionSettings()
    settings.set(defaults)
    for endpoint in endpoints:
        session = fix.Dictionary()
        session.setString("SocketConnectHost", endpoint.host)
        session.setString("SocketConnectPort", str(endpoint.port))
        settings.set(fix.SessionID(BEGIN_STRING, sender_comp_id, endpoint.target_comp_id), session)
    return settings


class SessionOwner(Protocol):
    """What runs the sessions; called on QuickFIX's threads."""

    def credentials(self, session: fix.SessionID) -> tuple[str, Secret]: ...

    def on_logon(self, session: fix.SessionID) -> None: ...

    def on_logout(self, session: fix.SessionID) -> None: ...

    def on_error(self, session: fix.SessionID, text: str) -> None: ...

    def on_app_message(self, message: fix.Message, session: fix.SessionID) -> None: ...

    def on_session_reject(self, message: fix.Message, session: fix.SessionID) -> None: ...


class LpApplication(fix.Application):  # type: ignore[misc]
    """QuickFIX callbacks: logon credentials and the session log here, everything else to the
    owner."""

    def __init__(self, owner: SessionOwner, session_log: SessionLog | None = None) -> None:
        super().__init__()
        self.owner = owner
        self.session_log = session_log

    def _event(self, session: fix.SessionID, text: str) -> None:
        if self.session_log is not None:
            self.session_log.event(session, text)

    def onCreate(self, session: fix.SessionID) -> None:  # noqa: N802 (QuickFIX's names)
        self._event(session, "session created")

    def onLogon(self, session: fix.SessionID) -> None:  # noqa: N802
        self._event(session, "logged on")
        self.owner.on_logon(session)

    def onLogout(self, session: fix.SessionID) -> None:  # noqa: N802
        self._event(session, "logged out")
        self.owner.on_logout(session)

    def toAdmin(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        if get_field(message.getHeader(), MSG_TYPE) == fix.MsgType_Logon:
            username, password = self.owner.credentials(session)
            message.setField(fix.StringField(USERNAME, username))
            message.setField(fix.StringField(PASSWORD, password.reveal()))
        record(log, self.session_log, message, session, incoming=False)  # password redacted

    def fromAdmin(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        record(log, self.session_log, message, session, incoming=True)
        msg_type = get_field(message.getHeader(), MSG_TYPE)
        if msg_type == fix.MsgType_Logout:
            text = get_field(message, TEXT)
            if text:
                self.owner.on_error(session, text)
        elif msg_type == fix.MsgType_Reject:
            self.owner.on_session_reject(message, session)

    def toApp(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        record(log, self.session_log, message, session, incoming=False)

    def fromApp(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        record(log, self.session_log, message, session, incoming=True)
        self.owner.on_app_message(message, session)


class InitiatorSessions(abc.ABC):
    """One QuickFIX initiator over the configured LPs; the subclass handles the sessions'
    callbacks (`SessionOwner`), on QuickFIX's threads."""

    def __init__(
        self,
        endpoints: Iterable[LpEndpoint],
        credentials: dict[str, tuple[str, Secret]],
        settings: fix.SessionSettings,
    ) -> None:
        """The session logs go to `TM_FIX_LOG_DIR`, else to `log` in the message store."""
        self.endpoints = {e.target_comp_id: e for e in endpoints}
        self._credentials_by_lp = credentials
        self._settings = settings
        store = Path(settings.get().getString("FileStorePath"))
        self.session_log = session_log(store / "log")
        self._app = LpApplication(self, self.session_log)
        self._initiator: fix.SocketInitiator | None = None

    def start(self) -> None:
        self._initiator = fix.SocketInitiator(
            self._app, fix.FileStoreFactory(self._settings), self._settings
        )
        self._initiator.start()

    def stop(self) -> None:
        """Logs out of every session and stops QuickFIX's threads (blocking; call it in a
        thread)."""
        if self._initiator is not None:
            self._initiator.stop()
            self._initiator = None
        self.session_log.close()

    def lp_of(self, session: fix.SessionID) -> str:
        return self.endpoints[session.getTargetCompID().getValue()].lp

    def credentials(self, session: fix.SessionID) -> tuple[str, Secret]:
        return self._credentials_by_lp[self.lp_of(session)]

    @abc.abstractmethod
    def on_logon(self, session: fix.SessionID) -> None: ...

    @abc.abstractmethod
    def on_logout(self, session: fix.SessionID) -> None: ...

    @abc.abstractmethod
    def on_error(self, session: fix.SessionID, text: str) -> None: ...

    @abc.abstractmethod
    def on_app_message(self, message: fix.Message, session: fix.SessionID) -> None: ...

    def on_session_reject(  # noqa: B027 (an optional hook: most owners need nothing)
        self, message: fix.Message, session: fix.SessionID
    ) -> None:
        """A session-level Reject (35=3) from the LP, already logged with its reason; a
        subclass that sent what it refers to (RefSeqNum) overrides this to act on it."""

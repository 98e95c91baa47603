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

Every session runs over TLS (ADR 0018), with QuickFIX's SSL initiator, one per LP: QuickFIX takes
its TLS settings from an initiator's [DEFAULT] section only, and each LP has its own CA
(`TM_FIX_LP_CA=lp-alpha=/path/ca.pem,...`; locally the stack's `tls/ca.pem`, in production the
CA that signs the LP's certificate). QuickFIX checks that the LP's certificate chains to that CA,
and nothing else: not its name, not the address (OpenSSL's verification without a host name). Our
client certificate is the process's own (`services.platform.certificates.own_certificate()`),
written with its key (0600) into `tls/` beside the message store. QuickFIX reads these files
once, when an initiator starts: after a renewal, an LP's initiator is replaced by one reading the
new files as soon as its session is not logged on (a live session keeps its connection, which
needs no valid certificate once established; the next logon uses the new one). QuickFIX itself
says little when a handshake fails ("SSL_connect failed", printed on stdout): an LP whose
session is not logged on is probed with Python's `ssl` and the same files, and the reason (the
LP's certificate is not from its CA, the LP refused ours, plaintext port, ...) is logged once
per change, naming the LP.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Final
from typing import Protocol

import quickfix as fix

from services.platform.certificates import Issued
from services.platform.certificates import Subscriber
from services.platform.certificates import own_certificate
from services.platform.fix_log import SessionLog
from services.platform.fix_log import record
from services.platform.fix_log import session_log
from services.platform.secrets import Secret

__all__ = [
    "BEGIN_STRING",
    "FIX_LP_CA_VARIABLE",
    "TLS_PROTOCOLS",
    "ClientTls",
    "InitiatorSessions",
    "LpApplication",
    "LpEndpoint",
    "OwnCertificate",
    "SessionOwner",
    "get_field",
    "initiator_settings",
    "parse_fix_time",
    "parse_lp_ca",
    "tls_problem",
]

log = logging.getLogger(__name__)

BEGIN_STRING: Final = "FIX.4.4"
MSG_TYPE: Final = 35
TEXT: Final = 58
USERNAME: Final = 553
PASSWORD: Final = 554

FIX_LP_CA_VARIABLE: Final = "TM_FIX_LP_CA"
TLS_PROTOCOLS: Final = "TLSv1_2 +TLSv1_3"
"""QuickFIX's `SSLProtocol`: TLS 1.2 and 1.3 (1.2 for LPs that have no 1.3 yet), nothing older."""
PROBE_EVERY_SECONDS: Final = 10.0
"""How often an LP whose session is not logged on is probed for a TLS problem."""


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


def parse_lp_ca(text: str) -> dict[str, Path]:
    """`lp-alpha=/path/ca.pem,lp-beta=/other/ca.pem`: the CA file each LP's certificate must
    chain to."""
    files: dict[str, Path] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        lp, _, path = item.partition("=")
        lp, path = lp.strip(), path.strip()
        if not lp or not path:
            raise ValueError(f"bad LP CA {item!r}: want <lp>=<path of a CA file>")
        if lp in files:
            raise ValueError(f"LP CA: {lp} is named twice")
        files[lp] = Path(path)
    return files


class OwnCertificate(Protocol):
    """The certificate we present (`services.platform.certificates.CertificateSource`)."""

    @property
    def current(self) -> Issued: ...

    def subscribe(self, subscriber: Subscriber) -> None: ...


@dataclass(frozen=True)
class ClientTls:
    """What our side of the LP sessions' TLS needs: each LP's CA file, and our certificate."""

    ca_files: Mapping[str, Path]
    certificate: OwnCertificate

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ClientTls:
        """The CAs from `TM_FIX_LP_CA`; the certificate is the process's own."""
        return cls(parse_lp_ca(environ.get(FIX_LP_CA_VARIABLE, "")), own_certificate())

    def ca_of(self, lp: str) -> Path:
        try:
            ca = self.ca_files[lp]
        except KeyError:
            raise ValueError(f"{FIX_LP_CA_VARIABLE} names no CA for LP {lp}") from None
        if not ca.is_file():
            raise ValueError(f"{FIX_LP_CA_VARIABLE}: the CA file of LP {lp}, {ca}, is missing")
        return ca


@dataclass(frozen=True)
class _ClientFiles:
    certificate: Path
    key: Path


def _write_client_files(directory: Path, issued: Issued) -> _ClientFiles:
    """Our certificate and key for QuickFIX, each replaced atomically; the key 0600."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    files = _ClientFiles(directory / "client.pem", directory / "client-key.pem")
    for path, content, mode in (
        (files.key, issued.key_pem.reveal().encode(), 0o600),
        (files.certificate, issued.certificate_pem, 0o644),
    ):
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.unlink(missing_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.replace(temporary, path)
    return files


def tls_problem(
    host: str, port: int, ca: Path, certificate: Path, key: Path, timeout: float = 5.0
) -> str | None:
    """Why a TLS session to an LP fails, tried as QuickFIX does it (the LP's certificate checked
    against `ca`, no host name; ours presented); None when the handshake succeeds."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False  # QuickFIX checks none either
    try:
        context.load_verify_locations(ca)
        context.load_cert_chain(certificate, key)
    except (OSError, ssl.SSLError) as error:
        return f"cannot load the TLS files ({ca}, {certificate}): {error}"
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw) as conn,
        ):
            # TLS 1.3: the server judges our certificate after the handshake; its refusal
            # arrives as an alert on the first read. A FIX acceptor says nothing before our
            # Logon, so a short silence means it took the certificate.
            conn.settimeout(0.5)
            with contextlib.suppress(TimeoutError):
                conn.recv(1)
    except ssl.SSLCertVerificationError as error:
        return f"the LP's certificate does not verify against its CA {ca}: {error.verify_message}"
    except ssl.SSLError as error:
        reason = error.reason or str(error)
        if reason == "WRONG_VERSION_NUMBER":
            return "the LP does not speak TLS on this port (plaintext?)"
        return f"TLS handshake failed: {reason}"
    except (TimeoutError, OSError) as error:
        return f"cannot connect: {error}"
    return None


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
        "SSLProtocol": TLS_PROTOCOLS,
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
    """One QuickFIX SSL initiator per configured LP (each LP has its own CA, and QuickFIX reads
    TLS settings per initiator only); the subclass handles the sessions' callbacks
    (`SessionOwner`), on QuickFIX's threads."""

    def __init__(
        self,
        endpoints: Iterable[LpEndpoint],
        credentials: dict[str, tuple[str, Secret]],
        settings: fix.SessionSettings,
        tls: ClientTls | None = None,
    ) -> None:
        """The session logs go to `TM_FIX_LOG_DIR`, else to `log` in the message store. `tls`:
        by default `ClientTls.from_env()`, read at `start`."""
        self.endpoints = {e.target_comp_id: e for e in endpoints}
        self._credentials_by_lp = credentials
        self._settings = settings
        self._tls = tls
        store = Path(settings.get().getString("FileStorePath"))
        self._tls_dir = store / "tls"
        self.session_log = session_log(store / "log")
        self._app = LpApplication(self, self.session_log)
        self._initiators: dict[str, fix.SSLSocketInitiator] = {}  # lp -> its initiator
        self._swap = threading.Lock()  # held while initiators start, stop or are replaced
        self._stale: set[str] = set()  # LPs whose initiator has read an older certificate
        self._files: _ClientFiles | None = None
        self._tls_stop = threading.Event()
        self._tls_watch: threading.Thread | None = None

    def _lp_settings(self, endpoint: LpEndpoint, tls: ClientTls) -> fix.SessionSettings:
        """The settings of one LP's initiator: the shared defaults, its session, its CA and our
        certificate files."""
        assert self._files is not None
        settings = fix.SessionSettings()
        settings.set(self._settings.get())  # a copy of the shared defaults
        defaults = settings.get()  # this one's own, changed in place (as QuickFIX hands it out)
        for key, value in {
            "SSLProtocol": TLS_PROTOCOLS,
            "CertificationAuthoritiesFile": str(tls.ca_of(endpoint.lp)),
            "ClientCertificateFile": str(self._files.certificate),
            "ClientCertificateKeyFile": str(self._files.key),
        }.items():
            defaults.setString(key, value)
        session_id = fix.SessionID(BEGIN_STRING, self._sender_comp_id(), endpoint.target_comp_id)
        settings.set(session_id, self._settings.get(session_id))  # copied, with these defaults
        return settings

    def _sender_comp_id(self) -> str:
        sessions = list(self._settings.getSessions())
        return str(sessions[0].getSenderCompID().getValue())

    def _start_lp(self, endpoint: LpEndpoint, tls: ClientTls) -> None:
        settings = self._lp_settings(endpoint, tls)
        initiator = fix.SSLSocketInitiator(self._app, fix.FileStoreFactory(settings), settings)
        initiator.start()
        self._initiators[endpoint.lp] = initiator

    def start(self) -> None:
        tls = self._tls if self._tls is not None else ClientTls.from_env()
        self._tls = tls
        for endpoint in self.endpoints.values():
            tls.ca_of(endpoint.lp)  # every LP's CA is there before any session starts
        with self._swap:
            self._files = _write_client_files(self._tls_dir, tls.certificate.current)
            for endpoint in self.endpoints.values():
                self._start_lp(endpoint, tls)
        tls.certificate.subscribe(self._renewed)
        self._tls_stop.clear()
        self._tls_watch = threading.Thread(target=self._watch_tls, name="fix-tls", daemon=True)
        self._tls_watch.start()

    def _renewed(self, issued: Issued) -> None:
        """Our certificate was renewed: new files, which each LP's initiator reads once it is
        replaced (`_watch_tls`)."""
        with self._swap:
            if not self._initiators:
                return
            self._files = _write_client_files(self._tls_dir, issued)
            self._stale = set(self._initiators)

    def _watch_tls(self) -> None:
        """Replaces the initiator of an LP that is not logged on and read an older certificate,
        and says why an LP's TLS fails (once per change of reason)."""
        problems: dict[str, str | None] = {}
        probed: dict[str, float] = {}
        started = time.monotonic()
        while not self._tls_stop.wait(1.0):
            for endpoint in self.endpoints.values():
                lp = endpoint.lp
                with self._swap:
                    if lp not in self._initiators or self._tls_stop.is_set():
                        return
                    logged_on = bool(self._initiators[lp].isLoggedOn())
                    if not logged_on and lp in self._stale:
                        self._replace_lp(endpoint)
                    files = self._files
                now = time.monotonic()
                if logged_on:
                    if problems.get(lp):
                        log.info("FIX session to %s: TLS works again, logged on", lp)
                    problems[lp] = None
                    continue
                if now - started < 3 or now - probed.get(lp, 0.0) < PROBE_EVERY_SECONDS:
                    continue
                probed[lp] = now
                assert files is not None
                assert self._tls is not None
                problem = tls_problem(
                    endpoint.host,
                    endpoint.port,
                    self._tls.ca_of(lp),
                    files.certificate,
                    files.key,
                )
                if problem is not None and problem != problems.get(lp):
                    log.warning(
                        "FIX session to %s (%s:%d) cannot log on: %s",
                        lp,
                        endpoint.host,
                        endpoint.port,
                        problem,
                    )
                    self._event(endpoint, f"TLS: {problem}")
                problems[lp] = problem

    def _replace_lp(self, endpoint: LpEndpoint) -> None:
        """A new initiator for the LP, reading the current files (holding `_swap`). The old one
        is gone first: its session's ID would otherwise still name the old session in
        QuickFIX's registry (`Session.sendToTarget`)."""
        self._stale.discard(endpoint.lp)
        old = self._initiators.pop(endpoint.lp)
        old.stop()
        del old  # QuickFIX's sessions are deleted with their initiator
        assert self._tls is not None
        self._start_lp(endpoint, self._tls)
        log.info("FIX session to %s: the next logon presents our renewed certificate", endpoint.lp)
        self._event(endpoint, "TLS: the next logon presents our renewed certificate")

    def _event(self, endpoint: LpEndpoint, text: str) -> None:
        session_id = fix.SessionID(BEGIN_STRING, self._sender_comp_id(), endpoint.target_comp_id)
        self.session_log.event(session_id, text)

    def stop(self) -> None:
        """Logs out of every session and stops QuickFIX's threads (blocking; call it in a
        thread)."""
        self._tls_stop.set()
        if self._tls_watch is not None:
            self._tls_watch.join(timeout=PROBE_EVERY_SECONDS)
            self._tls_watch = None
        with self._swap:
            for initiator in self._initiators.values():
                initiator.stop()
            self._initiators.clear()
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

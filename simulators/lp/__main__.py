"""`python -m simulators.lp`: one LP simulator, configured from the environment.

    TM_LPSIM_NAME          the LP's name, e.g. lp-alpha; its FIX SenderCompID is the name in
                           upper case (LP-ALPHA)
    TM_LPSIM_PORT          the FIX acceptor's port on 127.0.0.1, TLS only (ADR 0018)
    TM_LPSIM_CERT_FILE     its certificate (PEM; the stack's tls/<name>.pem, from the platform CA)
    TM_LPSIM_KEY_FILE      its private key (PEM)
    TM_LPSIM_CA_FILE       the CA a client's certificate must chain to (the stack's tls/ca.pem):
                           a client presents one or the handshake fails
    TM_LPSIM_USERNAME      the Username (553) a logon must carry
    TM_LPSIM_PASSWORD      the Password (554) a logon must carry (the stack takes it from Vault)
    TM_LPSIM_SEED          the seed of its random walk (an integer)
    TM_LPSIM_SPREAD_FACTOR its spread, times the instrument's typical spread (a decimal)
    TM_LPSIM_RATE          price updates per second per instrument (a decimal)
    TM_LPSIM_FILL_DELAY_MS the delay before it answers an order (the control port can change it)
    TM_LPSIM_CONTROL_PORT  the control port on 127.0.0.1 (simulators/lp/control.py), optional
    TM_LPSIM_CLIENTS       the SenderCompIDs its clients log on with, comma-separated
                           (default TRADINGMESH; the stack adds TRADINGMESH-QA for tests and
                           benchmarks, so they can connect while the platform is connected)
    TM_LPSIM_PERSONALITY   its dialect at start, traits comma-separated, e.g.
                           `limit-only,status-bmr` (simulators/lp/personality.py; default:
                           none, the standard behaviour); the control port can change it
    TM_FIX_LOG_DIR         where its FIX session logs go, one file per session
                           (services/platform/fix_log.py); default: `fix-log` in the working
                           directory; TM_FIX_LOG_MARKET_DATA=Y logs market data refreshes too

Its FIX message store lives in the working directory, so sequence numbers survive a restart and
a reconnecting client can ask for a resend; so does its book of orders and fills (`book.jsonl`,
simulators/lp/book_store.py), so a status request after its restart still knows an order.
SIGTERM stops it (logging out every session).

TLS (QuickFIX's SSL acceptor): TLS 1.2 or 1.3, nothing older, no plaintext; a client must present
a certificate from TM_LPSIM_CA_FILE (CertificateVerifyLevel 1: required). QuickFIX reads the files
once, at start: a renewed certificate (`tradingmesh certs rotate`) takes effect when the
simulator restarts. A plaintext client's connection is closed without an answer.

QuickFIX validates what arrives against FIX 4.4 (required fields, values, formats) but leniently
otherwise (fields out of order, empty values, user-defined and unknown fields pass), as many LPs
do; the `strict-dictionary` trait adds those checks at run time.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import FrameType

import quickfix as fix

from services.platform.fix import TLS_PROTOCOLS
from services.platform.fix_log import session_log
from simulators.lp.book_store import BookFile
from simulators.lp.catalogue import CATALOGUE
from simulators.lp.control import Controls
from simulators.lp.control import serve
from simulators.lp.fix import Credentials
from simulators.lp.fix import LpApplication
from simulators.lp.market import Market
from simulators.lp.market import Profile
from simulators.lp.personality import Personality
from simulators.lp.personality import UnknownTraitError
from simulators.lp.rejects import dictionary_path

BEGIN_STRING = "FIX.4.4"


def data_dictionary() -> Path:
    """FIX44.xml, which the quickfix package installs under <prefix>/share/quickfix."""
    path = dictionary_path()
    if not path.is_file():
        raise SystemExit(f"lpsim: {path} is missing (is the quickfix package installed?)")
    return path


@dataclass(frozen=True)
class ServerTls:
    certificate: Path
    key: Path
    ca: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServerTls:
        files = cls(
            Path(env["TM_LPSIM_CERT_FILE"]),
            Path(env["TM_LPSIM_KEY_FILE"]),
            Path(env["TM_LPSIM_CA_FILE"]),
        )
        for path in (files.certificate, files.key, files.ca):
            if not path.is_file():
                raise ValueError(f"{path} is missing")
        return files


def session_settings(
    name: str, port: int, clients: list[str], store: Path, tls: ServerTls
) -> fix.SessionSettings:
    defaults = fix.Dictionary()
    defaults.setString("ConnectionType", "acceptor")
    defaults.setString("SocketAcceptAddress", "127.0.0.1")
    defaults.setString("SocketAcceptPort", str(port))
    defaults.setString("FileStorePath", str(store))
    defaults.setString("StartTime", "00:00:00")
    defaults.setString("EndTime", "00:00:00")  # a 24-hour session
    defaults.setString("UseDataDictionary", "Y")
    defaults.setString("DataDictionary", str(data_dictionary()))
    # Lenient beyond the dictionary's types, values and required fields (see above).
    defaults.setString("ValidateFieldsOutOfOrder", "N")
    defaults.setString("ValidateFieldsHaveValues", "N")
    defaults.setString("ValidateUserDefinedFields", "N")
    defaults.setString("AllowUnknownMsgFields", "Y")
    defaults.setString("TimestampPrecision", "6")
    defaults.setString("SocketNodelay", "Y")
    defaults.setString("SSLProtocol", TLS_PROTOCOLS)
    defaults.setString("ServerCertificateFile", str(tls.certificate))
    defaults.setString("ServerCertificateKeyFile", str(tls.key))
    defaults.setString("CertificationAuthoritiesFile", str(tls.ca))
    defaults.setString("CertificateVerifyLevel", "1")  # a client certificate is required
    settings = fix.SessionSettings()
    settings.set(defaults)
    for client in clients:
        settings.set(fix.SessionID(BEGIN_STRING, name.upper(), client), fix.Dictionary())
    return settings


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    env = os.environ
    try:
        name = env["TM_LPSIM_NAME"]
        port = int(env["TM_LPSIM_PORT"])
        credentials = Credentials(env["TM_LPSIM_USERNAME"], env["TM_LPSIM_PASSWORD"])
        personality = Personality.from_text(env.get("TM_LPSIM_PERSONALITY", ""))
        tls = ServerTls.from_env(env)
    except UnknownTraitError as error:
        raise SystemExit(f"lpsim: TM_LPSIM_PERSONALITY: {error}") from None
    except (KeyError, ValueError) as error:
        raise SystemExit(f"lpsim: missing or bad setting {error}") from None
    profile = Profile(
        name=name,
        seed=int(env.get("TM_LPSIM_SEED", "1")),
        spread_factor=Decimal(env.get("TM_LPSIM_SPREAD_FACTOR", "1")),
        updates_per_second=Decimal(env.get("TM_LPSIM_RATE", "4")),
        fill_delay_ms=int(env.get("TM_LPSIM_FILL_DELAY_MS", "2")),
    )
    market = Market(CATALOGUE, profile)
    fix_log = session_log(Path.cwd() / "fix-log", env)
    book = BookFile(Path.cwd() / "book.jsonl")
    app = LpApplication(market, credentials, personality, fix_log, book)
    store = Path.cwd() / "fix-store"
    store.mkdir(exist_ok=True)
    clients = [
        c.strip() for c in env.get("TM_LPSIM_CLIENTS", "TRADINGMESH").split(",") if c.strip()
    ]
    settings = session_settings(name, port, clients, store, tls)
    acceptor = fix.SSLSocketAcceptor(app, fix.FileStoreFactory(settings), settings)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    controls = Controls(name, market, app.lock, profile.updates_per_second, app.publish, app)
    control_port = env.get("TM_LPSIM_CONTROL_PORT")
    control = serve(controls, int(control_port)) if control_port else None

    orders = threading.Thread(target=app.run_orders, name="orders", daemon=True)
    orders.start()
    acceptor.start()
    logging.getLogger("lpsim").info(
        "%s: FIX 4.4 acceptor on 127.0.0.1:%d (TLS), %s updates/s per instrument, personality %s",
        name,
        port,
        profile.updates_per_second,
        personality,
    )
    next_at = time.monotonic()
    while not stop.is_set():
        with app.lock:
            quotes = [q for s in market.symbols if (q := market.step(s)) is not None]
        app.publish(quotes)
        # Seconds between rounds (a duration, not money); the control port may change the rate.
        next_at = max(next_at + 1 / float(controls.rate), time.monotonic() - 1)
        stop.wait(max(next_at - time.monotonic(), 0))
    if control is not None:
        control.shutdown()
    app.orders.put(None)
    acceptor.stop()
    orders.join(timeout=2)
    fix_log.close()
    book.close()


if __name__ == "__main__":
    main()

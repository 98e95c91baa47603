"""A small QuickFIX 4.4 initiator for tests: logs on to one LP, collects what it sends.

Only for tests of the LP simulators themselves; the platform's own initiator is the pricing
service's LP gateway. The simulators accept TLS only (ADR 0018): the client presents the
stack's operator certificate and checks the LP's against the stack's CA (`tls_dir`, the
stack's `tls/`); `tls_dir=None` tries plaintext, which a simulator refuses.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import quickfix as fix
import quickfix44 as fix44

from services.platform.fix import TLS_PROTOCOLS
from stack.components.lpsim import QA_COMP_ID
from tests.integration.conftest import RunningStack

USERNAME, PASSWORD = 553, 554


@dataclass(frozen=True)
class Received:
    msg_type: str
    fields: dict[int, str]
    groups: list[dict[int, str]]


def _read(message: fix.Message, tags: tuple[int, ...], group_tags: tuple[int, ...]) -> Received:
    header = message.getHeader()
    msg_type = str(header.getField(35))
    fields = {t: str(message.getField(t)) for t in tags if message.isSetField(t)}
    groups: list[dict[int, str]] = []
    if message.isSetField(268):  # NoMDEntries
        group = fix.Group(268, 269)
        for i in range(1, int(message.getField(268)) + 1):
            message.getGroup(i, group)
            groups.append({t: str(group.getField(t)) for t in group_tags if group.isSetField(t)})
    return Received(msg_type, fields, groups)


MESSAGE_TAGS = (
    *(6, 11, 14, 17, 31, 32, 37, 38, 39, 45, 55, 58, 150, 151, 262, 281),
    *(371, 372, 373, 379, 380),  # what a Reject (3) or a Business Message Reject (j) refers to
)
ENTRY_TAGS = (55, 269, 270, 271, 279)


class _App(fix.Application):  # type: ignore[misc]
    def __init__(self, username: str, password: str) -> None:
        super().__init__()
        self.username = username
        self.password = password
        self.received: queue.Queue[Received] = queue.Queue()
        self.logged_on = threading.Event()
        self.logged_out = threading.Event()
        self.session: fix.SessionID | None = None

    def onCreate(self, session: fix.SessionID) -> None:  # noqa: N802
        self.session = session

    def onLogon(self, session: fix.SessionID) -> None:  # noqa: N802
        self.logged_on.set()

    def onLogout(self, session: fix.SessionID) -> None:  # noqa: N802
        self.logged_out.set()

    def toAdmin(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        if str(message.getHeader().getField(35)) == fix.MsgType_Logon:
            message.setField(fix.StringField(USERNAME, self.username))
            message.setField(fix.StringField(PASSWORD, self.password))

    def fromAdmin(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        if str(message.getHeader().getField(35)) == fix.MsgType_Reject:  # a session Reject
            self.received.put(_read(message, MESSAGE_TAGS, ENTRY_TAGS))

    def toApp(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        pass

    def fromApp(self, message: fix.Message, session: fix.SessionID) -> None:  # noqa: N802
        self.received.put(_read(message, MESSAGE_TAGS, ENTRY_TAGS))


class FixClient:
    def __init__(self, app: _App) -> None:
        self.app = app

    def send(self, message: fix.Message) -> None:
        assert self.app.session is not None
        fix.Session.sendToTarget(message, self.app.session)

    def expect(self, predicate: Callable[[Received], bool], timeout: float = 10.0) -> Received:
        """The next received message that satisfies `predicate` (others are dropped)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.app.received.get(timeout=left)
            except queue.Empty:
                break
            if predicate(message):
                return message
        raise AssertionError(f"no expected FIX message within {timeout} s")

    def subscribe(self, request_id: str, symbols: list[str], kind: str = "1") -> None:
        request = fix44.MarketDataRequest()
        request.setField(fix.StringField(262, request_id))
        request.setField(fix.StringField(263, kind))
        request.setField(fix.StringField(264, "1"))  # top of book
        for entry_type in ("0", "1"):
            types = fix44.MarketDataRequest.NoMDEntryTypes()
            types.setField(fix.StringField(269, entry_type))
            request.addGroup(types)
        for symbol in symbols:
            related = fix44.MarketDataRequest.NoRelatedSym()
            related.setField(fix.StringField(55, symbol))
            request.addGroup(related)
        self.send(request)

    def status_request(self, client_order_id: str, symbol: str, side: str) -> None:
        request = fix44.OrderStatusRequest()
        for tag, value in ((11, client_order_id), (55, symbol), (54, side), (790, "q-1")):
            request.setField(fix.StringField(tag, value))
        self.send(request)

    def new_order(
        self,
        client_order_id: str,
        symbol: str,
        side: str,
        quantity: str,
        limit_price: str | None = None,
        time_in_force: str = "3",
    ) -> None:
        order = fix44.NewOrderSingle()
        order.setField(fix.StringField(11, client_order_id))
        order.setField(fix.StringField(55, symbol))
        order.setField(fix.StringField(54, side))
        order.setField(fix.StringField(38, quantity))
        order.setField(fix.StringField(40, "2" if limit_price else "1"))
        if limit_price:
            order.setField(fix.StringField(44, limit_price))
        order.setField(fix.StringField(59, time_in_force))
        order.setField(fix.StringField(60, time.strftime("%Y%m%d-%H:%M:%S", time.gmtime())))
        self.send(order)


def stack_tls(running_stack: RunningStack) -> Path:
    """The stack's `tls/`: its CA (`ca.pem`) and the operator's certificate."""
    return Path(running_stack.state.endpoints.ca_file).parent


@contextmanager
def fix_session(
    port: int,
    target_comp_id: str,
    username: str,
    password: str,
    workdir: Path,
    use_dictionary: bool = True,
    *,
    tls_dir: Path | None,
) -> Iterator[FixClient]:
    """An initiator session to 127.0.0.1:`port`, started and stopped around the block.
    `use_dictionary=False`: incoming messages are not checked against FIX 4.4 (to see what an
    LP sends that 4.4 does not allow, e.g. ExecType 2), and their groups are not parsed.
    `tls_dir`: the stack's `tls/` (`stack_tls`), for TLS as the operator; None: plaintext."""
    defaults = fix.Dictionary()
    defaults.setString("ConnectionType", "initiator")
    defaults.setString("SocketConnectHost", "127.0.0.1")
    defaults.setString("SocketConnectPort", str(port))
    defaults.setString("HeartBtInt", "5")
    defaults.setString("ReconnectInterval", "1")
    defaults.setString("StartTime", "00:00:00")
    defaults.setString("EndTime", "00:00:00")
    defaults.setString("ResetOnLogon", "Y")
    defaults.setString("FileStorePath", str(workdir))
    defaults.setString("UseDataDictionary", "Y" if use_dictionary else "N")
    defaults.setString("DataDictionary", str(Path(sys.prefix) / "share" / "quickfix" / "FIX44.xml"))
    if tls_dir is not None:
        defaults.setString("SSLProtocol", TLS_PROTOCOLS)
        defaults.setString("CertificationAuthoritiesFile", str(tls_dir / "ca.pem"))
        defaults.setString("ClientCertificateFile", str(tls_dir / "operator.pem"))
        defaults.setString("ClientCertificateKeyFile", str(tls_dir / "operator-key.pem"))
    settings = fix.SessionSettings()
    settings.set(defaults)
    # Not the platform's own comp id: its LP gateway holds that session.
    settings.set(fix.SessionID("FIX.4.4", QA_COMP_ID, target_comp_id), fix.Dictionary())
    app = _App(username, password)
    initiator_class = fix.SocketInitiator if tls_dir is None else fix.SSLSocketInitiator
    initiator = initiator_class(app, fix.FileStoreFactory(settings), settings)
    initiator.start()
    try:
        yield FixClient(app)
    finally:
        initiator.stop()

"""The LP gateway (ADR 0006): one QuickFIX 4.4 initiator session per liquidity provider.

QuickFIX owns the sessions (services/platform/fix.py, shared with the OMS's order router). On
each logon the gateway subscribes to the top of book
of every instrument in one MarketDataRequest, so that a refresh carries every symbol that moved.
If the LP refuses that request (one symbol it does not quote refuses all), the gateway asks again
one symbol at a time, so it loses only what the LP does not quote. An instrument created later is
subscribed at once (`subscribe`). The LP answers with a snapshot per instrument, then incremental
refreshes.
Each FIX message becomes a batch of `LpQuote`s handed to the event loop in one step.

A logged-on LP serves only while its market data does (services/pricing/lp_health.py): when
every symbol asked is refused (MarketDataRequestReject 35=Y, a Business Message Reject 35=j or a
session Reject 35=3 of our MarketDataRequest), or nothing arrives for `silence_seconds`
(`TM_PRICING_LP_SILENCE_S`, default 5), the LP is reported not serving with the reason (its gRPC
health entry, the LP listing's state CONNECTING and last error, `tradingmesh_pricing_lp_serving`),
the reason is logged, and a watchdog thread subscribes again (cancelling what is still open) after
a back-off of 1 s doubling to 15 s, until prices flow again.

Credentials come from Vault (`secret/tradingmesh/lp/<lp>`, `username` and `password`) and go into
the Logon (553/554). `PersistMessages=N`: the message store holds sequence numbers only, so the
logon, with its password, is never written to disk; what we send is gap-filled on a resend
request, never re-sent stale. `ResetOnLogon=Y`: each logon starts both sides at sequence number 1,
so there is never a gap to fill after a reconnect. (With a gap, the subscription sent at logon
fell inside the range the LP asked to be resent and was gap-filled away: the LP was logged on
but sent no prices.)
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from decimal import InvalidOperation
from enum import Enum
from pathlib import Path

import quickfix as fix
import quickfix44 as fix44
from prometheus_client import Counter

from services.platform.fix import InitiatorSessions
from services.platform.fix import LpEndpoint
from services.platform.fix import get_field
from services.platform.fix import initiator_settings
from services.platform.fix import parse_fix_time
from services.platform.metrics import REGISTRY
from services.platform.secrets import Secret
from services.pricing.lp_health import SERVING
from services.pricing.lp_health import FeedHealth
from services.pricing.lp_health import FeedState
from services.pricing.lp_health import Tick
from services.pricing.model import LpQuote

log = logging.getLogger(__name__)

SENDER_COMP_ID = "TRADINGMESH"

MSG_TYPE, MSG_SEQ_NUM, SENDING_TIME, SYMBOL, TEXT = 35, 34, 52, 55, 58
MD_REQ_ID, NO_MD_ENTRIES, MD_ENTRY_TYPE, MD_ENTRY_PX, MD_ENTRY_SIZE = 262, 268, 269, 270, 271
MD_UPDATE_ACTION = 279
REF_MSG_TYPE, BUSINESS_REJECT_REF_ID = 372, 379
BID, OFFER = "0", "1"
DELETE = "2"
SUBSCRIBE, UNSUBSCRIBE = "1", "2"

SILENCE_SECONDS = 5.0
RETRY_MIN_SECONDS, RETRY_MAX_SECONDS = 1.0, 15.0
WATCH_SECONDS = 0.5  # how often the watchdog looks at every LP's market data

MD_REFUSALS = Counter(
    "tradingmesh_pricing_lp_market_data_refusals",
    "market data requests an LP refused (35=Y, or 35=j / 35=3 referring to a MarketDataRequest)",
    ["lp"],
    registry=REGISTRY,
)
MD_SILENCES = Counter(
    "tradingmesh_pricing_lp_market_data_silences",
    "times an LP's market data was found silent (nothing for the silence limit)",
    ["lp"],
    registry=REGISTRY,
)
MD_RETRIES = Counter(
    "tradingmesh_pricing_lp_market_data_retries",
    "market data subscriptions sent again after a refusal or a silence",
    ["lp"],
    registry=REGISTRY,
)


class SessionState(Enum):
    CONNECTING = "CONNECTING"
    LOGGED_ON = "LOGGED_ON"
    DISCONNECTED = "DISCONNECTED"


@dataclass
class LpStatus:
    """What the gateway knows of one LP's session, for health, metrics and the admin API."""

    lp: str
    state: SessionState = SessionState.CONNECTING
    state_changed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_error: str = ""
    last_quote_at: datetime | None = None
    logons: int = 0
    feed: FeedState = FeedState.WAITING  # its market data, while logged on

    @property
    def serving(self) -> bool:
        """Logged on, and its market data neither refused nor silent."""
        return self.state is SessionState.LOGGED_ON and self.feed in SERVING


@dataclass
class _Side:
    price: Decimal | None = None
    size: Decimal = Decimal(0)


@dataclass
class _Book:
    bid: _Side = field(default_factory=_Side)
    ask: _Side = field(default_factory=_Side)


QuoteSink = Callable[[list[LpQuote]], None]
StateSink = Callable[[LpStatus], None]


class LpGateway(InitiatorSessions):
    """Runs the initiator; delivers quotes and session changes on the asyncio loop."""

    def __init__(
        self,
        endpoints: Sequence[LpEndpoint],
        credentials: dict[str, tuple[str, Secret]],
        symbols: Sequence[str],
        store_dir: Path,
        loop: asyncio.AbstractEventLoop,
        on_quotes: QuoteSink,
        on_state: StateSink,
        reconnect_seconds: int = 2,
        heartbeat_seconds: int = 10,
        silence_seconds: float = SILENCE_SECONDS,
        retry_seconds: tuple[float, float] = (RETRY_MIN_SECONDS, RETRY_MAX_SECONDS),
    ) -> None:
        super().__init__(
            endpoints,
            credentials,
            initiator_settings(
                endpoints,
                SENDER_COMP_ID,
                store_dir,
                persist_messages=False,
                reset_on_logon=True,
                reconnect_seconds=reconnect_seconds,
                heartbeat_seconds=heartbeat_seconds,
            ),
        )
        self.symbols = list(symbols)
        self.loop = loop
        self.on_quotes = on_quotes
        self.on_state = on_state
        self.status = {e.lp: LpStatus(e.lp) for e in endpoints}
        self._books: dict[str, dict[str, _Book]] = {e.lp: {} for e in endpoints}
        self._lock = threading.Lock()
        self._logged_on: dict[str, fix.SessionID] = {}  # lp -> its session, while logged on
        # Per LP, this session's open requests: MDReqID -> the symbols it asked for.
        self._requests: dict[str, dict[str, list[str]]] = {e.lp: {} for e in endpoints}
        # Per LP, requests we cancelled (re-subscribing): an answer to one is not news.
        self._cancelled: dict[str, set[str]] = {e.lp: set() for e in endpoints}
        self._request_ids = itertools.count(1)
        self._health = {
            e.lp: FeedHealth(silence_seconds, retry_seconds[0], retry_seconds[1]) for e in endpoints
        }
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None

    def start(self) -> None:
        super().start()
        self._stopping.clear()
        self._watchdog = threading.Thread(target=self._watch, name="lp-md-watchdog", daemon=True)
        self._watchdog.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=2)
            self._watchdog = None
        super().stop()

    # -- callbacks (QuickFIX threads) ----------------------------------------------------------

    def _set_state(self, lp: str, state: SessionState, error: str = "") -> None:
        with self._lock:
            status = self.status[lp]
            status.state = state
            status.state_changed_at = datetime.now(UTC)
            if state is SessionState.LOGGED_ON:
                status.logons += 1
                status.last_error = ""
                status.feed = FeedState.WAITING
            elif error:
                status.last_error = error
            snapshot = LpStatus(**vars(status))
        self.loop.call_soon_threadsafe(self.on_state, snapshot)

    def _feed_changed(self, lp: str) -> None:
        """Reports the LP's market data health (the caller holds `_lock`): serving or not, and
        why not."""
        status, health = self.status[lp], self._health[lp]
        was_serving = status.serving
        status.feed = health.state
        if status.serving != was_serving:
            status.state_changed_at = datetime.now(UTC)
        status.last_error = health.reason
        snapshot = LpStatus(**vars(status))
        self.loop.call_soon_threadsafe(self.on_state, snapshot)

    def on_logon(self, session: fix.SessionID) -> None:
        lp = self.lp_of(session)
        with self._lock:
            self._books[lp] = {}
            self._requests[lp] = {}  # a new session: the old one's requests are gone with it
            self._cancelled[lp] = set()
            self._health[lp].logged_on(time.monotonic())
        self._set_state(lp, SessionState.LOGGED_ON)
        log.info("LP session logged on", extra={"lp": lp})
        with self._lock:
            self._logged_on[lp] = session
            symbols = list(self.symbols)
        self._request(session, symbols)

    def subscribe(self, symbols: Sequence[str]) -> None:
        """Asks every logged-on LP for the symbols not asked for yet (a new instrument), and
        every LP that logs on later for all of them. Any thread."""
        with self._lock:
            new = [s for s in symbols if s not in self.symbols]
            self.symbols.extend(new)
            sessions = list(self._logged_on.values())
        for session in sessions:
            if new:
                self._request(session, new)

    def on_logout(self, session: fix.SessionID) -> None:
        lp = self.lp_of(session)
        with self._lock:
            self._logged_on.pop(lp, None)
        self._set_state(lp, SessionState.DISCONNECTED)
        log.warning("LP session logged out", extra={"lp": lp})

    def on_error(self, session: fix.SessionID, text: str) -> None:
        lp = self.lp_of(session)
        with self._lock:
            self.status[lp].last_error = text
        log.warning("LP session error", extra={"lp": lp, "error": text})

    def _request(self, session: fix.SessionID, symbols: Sequence[str]) -> None:
        request_id = f"md-{next(self._request_ids)}"
        with self._lock:
            self._requests[self.lp_of(session)][request_id] = list(symbols)
        fix.Session.sendToTarget(_market_data_request(request_id, symbols), session)

    def _on_refused(self, session: fix.SessionID, request_id: str | None, text: str) -> None:
        """The LP refused a market data request: `request_id`'s, or (None) the subscription
        as a whole, when the refusal names no request (a session Reject, a Business Message
        Reject without BusinessRejectRefID)."""
        lp = self.lp_of(session)
        with self._lock:
            requests = self._requests[lp]
            if request_id is not None and request_id in self._cancelled[lp]:
                return  # the answer to a request we cancelled: nothing changes
            if request_id is None:
                symbols = [s for asked in requests.values() for s in asked]
                requests.clear()
            elif request_id in requests:
                symbols = requests.pop(request_id)
            else:
                log.warning(
                    "LP refused a market data request we do not know",
                    extra={"lp": lp, "md_req_id": request_id, "error": text},
                )
                return
            MD_REFUSALS.labels(lp).inc()
            everything = (not requests and len(symbols) <= 1) or request_id is None
            if everything:
                self._health[lp].refused(f"market data refused: {text}", time.monotonic())
                self._feed_changed(lp)
        if request_id is not None and len(symbols) > 1:
            # One symbol the LP does not quote refuses the whole request: ask for each alone.
            log.warning(
                "LP refused the market data request; asking per symbol",
                extra={"lp": lp, "error": text},
            )
            for symbol in symbols:
                self._request(session, [symbol])
        elif everything:
            log.warning(
                "LP refused market data for every symbol: not serving; will ask again",
                extra={"lp": lp, "error": text},
            )
        else:
            self.on_error(session, f"market data refused: {text}")

    def on_session_reject(self, message: fix.Message, session: fix.SessionID) -> None:
        if get_field(message, REF_MSG_TYPE) == fix.MsgType_MarketDataRequest:
            self._on_refused(session, None, get_field(message, TEXT) or "session reject")

    # -- the watchdog (its own thread) ---------------------------------------------------------

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_SECONDS):
            for lp in list(self._health):
                self.check(lp, time.monotonic())

    def check(self, lp: str, now: float) -> None:
        """Finds the LP's market data silent, or subscribes again when its back-off is over."""
        with self._lock:
            session = self._logged_on.get(lp)
            if session is None:
                return
            health = self._health[lp]
            tick = health.tick(now)
            if tick is Tick.CHANGED:
                MD_SILENCES.labels(lp).inc()
                self._feed_changed(lp)
                log.warning(
                    "LP market data silent: not serving; will ask again",
                    extra={"lp": lp, "error": health.reason},
                )
                return
            if tick is not Tick.RETRY:
                return
            health.resubscribed(now)
            open_requests = dict(self._requests[lp])
            self._requests[lp].clear()
            self._cancelled[lp].update(open_requests)
            symbols = list(self.symbols)
        MD_RETRIES.labels(lp).inc()
        log.info(
            "asking the LP for market data again",
            extra={"lp": lp, "symbols": len(symbols), "cancelled": len(open_requests)},
        )
        for request_id, asked in open_requests.items():
            fix.Session.sendToTarget(_market_data_request(request_id, asked, UNSUBSCRIBE), session)
        self._request(session, symbols)

    def on_app_message(self, message: fix.Message, session: fix.SessionID) -> None:
        header = message.getHeader()
        msg_type = get_field(header, MSG_TYPE)
        if msg_type == fix.MsgType_MarketDataRequestReject:
            self._on_refused(
                session, get_field(message, MD_REQ_ID) or "", get_field(message, TEXT) or ""
            )
            return
        if msg_type == fix.MsgType_BusinessMessageReject:
            if get_field(message, REF_MSG_TYPE) == fix.MsgType_MarketDataRequest:
                self._on_refused(
                    session,
                    get_field(message, BUSINESS_REJECT_REF_ID),
                    get_field(message, TEXT) or "business message reject",
                )
            return
        if msg_type not in (
            fix.MsgType_MarketDataSnapshotFullRefresh,
            fix.MsgType_MarketDataIncrementalRefresh,
        ):
            return  # execution reports belong to the OMS's STP flow (issue #6)
        lp = self.lp_of(session)
        received_at = datetime.now(UTC)
        lp_time = parse_fix_time(get_field(header, SENDING_TIME))
        sequence = get_field(header, MSG_SEQ_NUM) or "0"
        snapshot = msg_type == fix.MsgType_MarketDataSnapshotFullRefresh
        message_symbol = get_field(message, SYMBOL)
        group = fix.Group(NO_MD_ENTRIES, MD_ENTRY_TYPE)
        touched: set[str] = set()
        with self._lock:
            books = self._books[lp]
            logons = self.status[lp].logons
            for i in range(1, int(get_field(message, NO_MD_ENTRIES) or "0") + 1):
                message.getGroup(i, group)
                symbol = get_field(group, SYMBOL) or message_symbol
                entry_type = get_field(group, MD_ENTRY_TYPE)
                if symbol is None or entry_type not in (BID, OFFER):
                    continue
                book = books.setdefault(symbol, _Book())
                side = book.bid if entry_type == BID else book.ask
                if get_field(group, MD_UPDATE_ACTION) == DELETE:
                    side.price = None
                else:
                    try:
                        side.price = Decimal(get_field(group, MD_ENTRY_PX) or "")
                        side.size = Decimal(get_field(group, MD_ENTRY_SIZE) or "0")
                    except InvalidOperation:
                        log.warning("bad price from LP", extra={"lp": lp, "symbol": symbol})
                        side.price = None
                touched.add(symbol)
            quotes = []
            for symbol in sorted(touched):
                book = books[symbol]
                if book.bid.price is None or book.ask.price is None:
                    continue
                quotes.append(
                    LpQuote(
                        lp=lp,
                        symbol=symbol,
                        bid=book.bid.price,
                        ask=book.ask.price,
                        bid_size=book.bid.size,
                        ask_size=book.ask.size,
                        quote_id=f"{lp}:{logons}:{sequence}:{symbol}",
                        lp_time=lp_time,
                        received_at=received_at,
                        sequence=int(sequence),
                    )
                )
            if quotes:
                self.status[lp].last_quote_at = received_at
            if self._health[lp].data(time.monotonic()):
                if self.status[lp].feed is not FeedState.WAITING:
                    log.info("LP market data flowing again", extra={"lp": lp})
                self._feed_changed(lp)
        if quotes or snapshot:
            self.loop.call_soon_threadsafe(self.on_quotes, quotes)


def _market_data_request(
    request_id: str, symbols: Sequence[str], kind: str = SUBSCRIBE
) -> fix.Message:
    """A subscription (snapshot + updates, top of book, incremental) or, with UNSUBSCRIBE, its
    cancellation (the same MDReqID and symbols)."""
    request = fix44.MarketDataRequest()
    request.setField(fix.StringField(MD_REQ_ID, request_id))
    request.setField(fix.StringField(263, kind))  # 1: snapshot + updates; 2: unsubscribe
    request.setField(fix.StringField(264, "1"))  # top of book
    request.setField(fix.StringField(265, "1"))  # incremental refresh
    for entry_type in (BID, OFFER):
        types = fix44.MarketDataRequest.NoMDEntryTypes()
        types.setField(fix.StringField(MD_ENTRY_TYPE, entry_type))
        request.addGroup(types)
    for symbol in symbols:
        related = fix44.MarketDataRequest.NoRelatedSym()
        related.setField(fix.StringField(SYMBOL, symbol))
        request.addGroup(related)
    return request

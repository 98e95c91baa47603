"""The LP gateway (ADR 0006): one QuickFIX 4.4 initiator session per liquidity provider.

QuickFIX owns the sessions (services/platform/fix.py, shared with the OMS's order router). On
each logon the gateway subscribes to the top of book
of every instrument in one MarketDataRequest, so that a refresh carries every symbol that moved.
If the LP refuses that request (one symbol it does not quote refuses all), the gateway asks again
one symbol at a time, so it loses only what the LP does not quote. An instrument created later is
subscribed at once (`subscribe`). The LP answers with a snapshot per instrument, then incremental
refreshes.
Each FIX message becomes a batch of `LpQuote`s handed to the event loop in one step.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path

import quickfix as fix
import quickfix44 as fix44

from services.platform.fix import (
    InitiatorSessions,
    LpEndpoint,
    get_field,
    initiator_settings,
    parse_fix_time,
)
from services.platform.secrets import Secret
from services.pricing.model import LpQuote

log = logging.getLogger(__name__)

SENDER_COMP_ID = "TRADINGMESH"

MSG_TYPE, MSG_SEQ_NUM, SENDING_TIME, SYMBOL, TEXT = 35, 34, 52, 55, 58
MD_REQ_ID, NO_MD_ENTRIES, MD_ENTRY_TYPE, MD_ENTRY_PX, MD_ENTRY_SIZE = 262, 268, 269, 270, 271
MD_UPDATE_ACTION = 279
BID, OFFER = "0", "1"
DELETE = "2"


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
        self._request_ids = itertools.count(1)

    # -- callbacks (QuickFIX threads) ----------------------------------------------------------

    def _set_state(self, lp: str, state: SessionState, error: str = "") -> None:
        with self._lock:
            status = self.status[lp]
            status.state = state
            status.state_changed_at = datetime.now(UTC)
            if state is SessionState.LOGGED_ON:
                status.logons += 1
                status.last_error = ""
            elif error:
                status.last_error = error
            snapshot = LpStatus(**vars(status))
        self.loop.call_soon_threadsafe(self.on_state, snapshot)

    def on_logon(self, session: fix.SessionID) -> None:
        lp = self.lp_of(session)
        with self._lock:
            self._books[lp] = {}
            self._requests[lp] = {}  # a new session: the old one's requests are gone with it
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

    def _on_refused(self, session: fix.SessionID, message: fix.Message) -> None:
        with self._lock:
            symbols = self._requests[self.lp_of(session)].pop(
                get_field(message, MD_REQ_ID) or "", []
            )
        text = get_field(message, TEXT) or ""
        if len(symbols) > 1:
            # One symbol the LP does not quote refuses the whole request: ask for each alone.
            log.warning(
                "LP refused the market data request; asking per symbol",
                extra={"lp": self.lp_of(session), "error": text},
            )
            for symbol in symbols:
                self._request(session, [symbol])
        else:
            self.on_error(session, f"market data refused: {text}")

    def on_app_message(self, message: fix.Message, session: fix.SessionID) -> None:
        header = message.getHeader()
        msg_type = get_field(header, MSG_TYPE)
        if msg_type == fix.MsgType_MarketDataRequestReject:
            self._on_refused(session, message)
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
        if quotes or snapshot:
            self.loop.call_soon_threadsafe(self.on_quotes, quotes)


def _market_data_request(request_id: str, symbols: Sequence[str]) -> fix.Message:
    request = fix44.MarketDataRequest()
    request.setField(fix.StringField(MD_REQ_ID, request_id))
    request.setField(fix.StringField(263, "1"))  # snapshot + updates
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

"""What PricingAdminService does (ADR 0006, "Instrument administration"): instrument set-up,
trading halts, the provenance of a price and the health of the LP sessions.

A change of an instrument is one transaction: lock or insert the row, check the domain rules
(a refused change writes nothing), write the row and its event (`pricing.outbox`). Only once it
has committed is it handed to this process's reference data and engine (`Reference.put`); its
event goes out with the commit's hand-off to the outbox relay. The row is locked (`FOR UPDATE`)
for the change, so concurrent changes of one instrument apply one after the other, each to the
result of the one before; none is lost, so ABORTED / CONCURRENT_MODIFICATION is never needed.

Pricing has no audit log: the platform's audit chain is the account service's own (ADR 0005).
Each change's event says who (metadata.actor), what and the state after.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Any
from typing import Final

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform import schedule
from services.platform.access import ADMIN
from services.platform.access import DEALER
from services.platform.db import Database
from services.platform.enums import enum_name
from services.platform.errors import DomainError
from services.platform.errors import not_found
from services.platform.identity import Caller
from services.platform.outbox import add_event
from services.platform.outbox import event_metadata
from services.pricing import store
from services.pricing.engine import PricingEngine
from services.pricing.gateway import LpStatus
from services.pricing.gateway import SessionState
from services.pricing.model import LpQuote
from services.pricing.quotes import QuoteReader
from services.pricing.reference import Reference
from services.pricing.reference import instrument_from_row
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.events_pb2 import EventMetadata
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.common.v1.types_pb2 import ActorKind
from tradingmesh.exact import plain_decimal
from tradingmesh.pricing.v1 import pricing_admin_service_pb2
from tradingmesh.pricing.v1 import pricing_events_pb2
from tradingmesh.pricing.v1 import pricing_pb2

log = logging.getLogger(__name__)

SCHEMA: Final = "pricing"
PRODUCER: Final = "pricing"
CHANGE_ROLES: Final = frozenset({ADMIN, DEALER})  # reads: every staff role (STAFF_ROLES)
# The contract's update_mask paths; the rest give open positions their meaning, or are output.
UPDATABLE_PATHS: Final = frozenset(
    {
        "description",
        "digits",
        "tick_size",
        "min_lot",
        "max_lot",
        "lot_step",
        "margin_rate",
        "sessions",
    }
)
DECIMAL_FIELDS: Final = (
    "tick_size",
    "contract_size",
    "min_lot",
    "max_lot",
    "lot_step",
    "margin_rate",
)
LATENCY_WINDOW: Final = timedelta(minutes=1)

_R = ErrorReason
_SESSION_STATE: Final = {
    SessionState.CONNECTING: pricing_pb2.LIQUIDITY_PROVIDER_SESSION_STATE_CONNECTING,
    SessionState.LOGGED_ON: pricing_pb2.LIQUIDITY_PROVIDER_SESSION_STATE_CONNECTED,
    SessionState.DISCONNECTED: pricing_pb2.LIQUIDITY_PROVIDER_SESSION_STATE_DISCONNECTED,
}


# -- instrument rules (pure) -------------------------------------------------------------------


def invalid(violations: Sequence[tuple[str, str]]) -> DomainError:
    """VALIDATION_FAILED with one field violation per (field, description)."""
    return DomainError(
        _R.ERROR_REASON_VALIDATION_FAILED,
        "; ".join(f"{name}: {why}" for name, why in violations),
        field_violations=violations,
    )


def unknown_instrument(*symbols: str) -> DomainError:
    """UNKNOWN_INSTRUMENT (NOT_FOUND) for one symbol or several, which the metadata's `symbol`
    names (comma-separated), as every service's does (ADR 0002)."""
    return DomainError(
        _R.ERROR_REASON_UNKNOWN_INSTRUMENT,
        f"unknown instrument{'s' if len(symbols) > 1 else ''}: {', '.join(symbols)}",
        metadata={"symbol": ",".join(symbols)},
    )


def canonical(value: str) -> str:
    """A decimal string in its one spelling ("0.010" and "0.01" are the same value), so that a
    change is recognised by value and stored values read back as they were given."""
    return plain_decimal(Decimal(value))


def check_instrument(instrument: pricing_pb2.Instrument, prefix: str = "instrument") -> None:
    """Refuses what the contract's per-field rules cannot see: fields that disagree with each
    other, and the table's ranges. Every problem is reported at once."""
    violations: list[tuple[str, str]] = []
    for name in DECIMAL_FIELDS:
        if not getattr(instrument, name):
            violations.append((f"{prefix}.{name}", "is required"))
    if violations:
        raise invalid(violations)
    point = Decimal(1).scaleb(-instrument.digits)
    if Decimal(instrument.tick_size) % point:
        violations.append(
            (f"{prefix}.tick_size", f"must be a whole number of points ({point}) of the digits")
        )
    min_lot, max_lot = Decimal(instrument.min_lot), Decimal(instrument.max_lot)
    if min_lot > max_lot:
        violations.append((f"{prefix}.min_lot", "must not be above max_lot"))
    if min_lot % Decimal(instrument.lot_step):
        violations.append((f"{prefix}.min_lot", "must be a multiple of lot_step"))
    if not Decimal(0) < Decimal(instrument.margin_rate) <= Decimal(1):
        violations.append((f"{prefix}.margin_rate", "must be above 0 and at most 1"))
    if violations:
        raise invalid(violations)


def new_instrument(given: pricing_pb2.Instrument) -> pricing_pb2.Instrument:
    """What CreateInstrument stores: the given fields, decimals canonical, output-only fields
    dropped; checked."""
    instrument = pricing_pb2.Instrument()
    instrument.CopyFrom(given)
    for name in ("trading_status", "halt_reason", "update_time"):
        instrument.ClearField(name)
    for name in DECIMAL_FIELDS:
        if getattr(instrument, name):
            setattr(instrument, name, canonical(getattr(instrument, name)))
    check_instrument(instrument)
    return instrument


def merge(
    current: pricing_pb2.Instrument, given: pricing_pb2.Instrument, paths: Sequence[str]
) -> pricing_pb2.Instrument:
    """`current` with the fields named in `paths` taken from `given`; `sessions` is replaced
    whole. Other paths are refused: they give open positions their meaning, or are output."""
    refused = [p for p in paths if p not in UPDATABLE_PATHS]
    if refused:
        raise invalid([("update_mask", f"{p!r} cannot be changed") for p in refused])
    after = pricing_pb2.Instrument()
    after.CopyFrom(current)
    for path in paths:
        if path == "sessions":
            del after.sessions[:]
            after.sessions.extend(given.sessions)
        elif path in DECIMAL_FIELDS:
            value = getattr(given, path)
            setattr(after, path, canonical(value) if value else "")
        else:
            setattr(after, path, getattr(given, path))
    check_instrument(after)
    return after


def changed_paths(
    before: pricing_pb2.Instrument, after: pricing_pb2.Instrument, paths: Iterable[str]
) -> list[str]:
    """The paths whose value differs, in the order given, each once."""
    return [p for p in dict.fromkeys(paths) if _value(before, p) != _value(after, p)]


def _value(instrument: pricing_pb2.Instrument, path: str) -> object:
    value = getattr(instrument, path)
    return list(value) if path == "sessions" else value


def row_values(instrument: pricing_pb2.Instrument) -> dict[str, object]:
    """The bind parameters of an instrument's row; decimals as Decimal, never floats."""
    values: dict[str, object] = {
        "symbol": instrument.symbol,
        "description": instrument.description,
        "asset_class": enum_name(pricing_pb2.AssetClass, instrument.asset_class),
        "base_currency": instrument.base_currency,
        "quote_currency": instrument.quote_currency,
        "digits": instrument.digits,
        "sessions": schedule.to_json(instrument.sessions),
    }
    values.update({name: Decimal(getattr(instrument, name)) for name in DECIMAL_FIELDS})
    return values


def operator_metadata(caller: Caller, version: int, now: datetime) -> EventMetadata:
    """An admin change's event metadata: the staff member as the actor (OPERATOR)."""
    actor = Actor(kind=ActorKind.ACTOR_KIND_OPERATOR, id=caller.subject)
    return event_metadata(PRODUCER, actor, now, version=version, correlation_id=caller.request_id)


# -- the books and the provenance (pure) -------------------------------------------------------


def _side(quote: LpQuote, price: Decimal) -> pricing_pb2.LiquidityProviderQuoteRef:
    ref = pricing_pb2.LiquidityProviderQuoteRef(
        liquidity_provider_id=quote.lp,
        lp_quote_id=quote.lp_entry_id,
        sequence=quote.sequence,
        raw_price=format(price, "f"),
    )
    if quote.lp_time is not None:
        ref.lp_quote_time.FromDatetime(quote.lp_time)
    ref.receive_time.FromDatetime(quote.received_at)
    return ref


def _size(size: Decimal) -> str:
    # The gateway records 0 when the LP sent no size. Sizes are passed on as the LP states
    # them: our LPs quote in lots, as they take order quantities (ADR 0006).
    return format(size, "f") if size else ""


def lp_book(lp: str, entry: tuple[LpQuote, bool] | None) -> pricing_pb2.LiquidityProviderBook:
    """One LP's top of book; an LP without any quote of the instrument has no sides and counts
    as stale (it takes no part in aggregation)."""
    book = pricing_pb2.LiquidityProviderBook(liquidity_provider_id=lp, stale=True)
    if entry is not None:
        quote, stale = entry
        book.bid.CopyFrom(_side(quote, quote.bid))
        book.ask.CopyFrom(_side(quote, quote.ask))
        book.bid_size = _size(quote.bid_size)
        book.ask_size = _size(quote.ask_size)
        book.stale = stale
    return book


def provenance_response(
    quote: pricing_pb2.Quote | None,
    books: Sequence[tuple[LpQuote, bool]],
    lps: Iterable[str],
) -> pricing_admin_service_pb2.GetQuoteProvenanceResponse:
    """GetQuoteProvenance's answer: the group's price as published (provenance included) and a
    book for every configured LP and every LP that quoted, ordered by LP id."""
    by_lp = {q.lp: (q, stale) for q, stale in books}
    response = pricing_admin_service_pb2.GetQuoteProvenanceResponse(
        books=[lp_book(lp, by_lp.get(lp)) for lp in sorted(set(lps) | set(by_lp))]
    )
    if quote is not None:
        response.quote.CopyFrom(quote)
    return response


# -- LP session activity -----------------------------------------------------------------------


def nearest_rank(ordered: Sequence[timedelta], percent: int) -> timedelta:
    """The `percent`-th percentile of sorted values, nearest-rank (an observed value)."""
    rank = -(-percent * len(ordered) // 100)  # ceil, in integers
    return ordered[max(rank, 1) - 1]


@dataclass
class _Activity:
    quotes: int = 0
    logons: int = -1  # the session (its logon count) the quotes are counted for
    last_quote_at: datetime | None = None
    delays: deque[tuple[datetime, timedelta]] = field(default_factory=deque)


class LpActivity:
    """Per LP, what the session snapshots (`LpStatus`) lack: quote updates since the last logon,
    when the last one arrived, and the delays (LP SendingTime to receipt) of the last minute.

    Fed on the event loop with each batch the gateway delivers, which is one FIX message: its
    quotes share one SendingTime and one receipt time, so each message is one delay sample.
    """

    def __init__(self, window: timedelta = LATENCY_WINDOW) -> None:
        self.window = window
        self._lps: dict[str, _Activity] = {}

    def _of(self, lp: str) -> _Activity:
        return self._lps.setdefault(lp, _Activity())

    def on_quotes(self, quotes: Sequence[LpQuote]) -> None:
        for quote in quotes:
            activity = self._of(quote.lp)
            activity.quotes += 1
            activity.last_quote_at = quote.received_at
            delays = activity.delays
            if quote.lp_time is not None and (not delays or delays[-1][0] != quote.received_at):
                delays.append((quote.received_at, quote.received_at - quote.lp_time))
        for lp in {quote.lp for quote in quotes}:
            self._prune(self._of(lp), quotes[-1].received_at)

    def on_state(self, status: LpStatus) -> None:
        activity = self._of(status.lp)
        # Counted per session: a new logon starts again (a change of market data health
        # within the session, reported too, does not).
        if status.state is SessionState.LOGGED_ON and status.logons != activity.logons:
            activity.logons = status.logons
            activity.quotes = 0

    def _prune(self, activity: _Activity, now: datetime) -> None:
        oldest = now - self.window
        while activity.delays and activity.delays[0][0] < oldest:
            activity.delays.popleft()

    def quote_count(self, lp: str) -> int:
        return self._of(lp).quotes

    def last_quote_at(self, lp: str) -> datetime | None:
        return self._of(lp).last_quote_at

    def latency(self, lp: str, now: datetime) -> tuple[timedelta, timedelta] | None:
        """(median, 99th percentile) of the last minute's delays; None without any."""
        activity = self._of(lp)
        self._prune(activity, now)
        ordered = sorted(delay for _, delay in activity.delays)
        if not ordered:
            return None
        return nearest_rank(ordered, 50), nearest_rank(ordered, 99)


def liquidity_provider(
    status: LpStatus,
    activity: LpActivity,
    subscribed: int,
    stale: int,
    now: datetime,
) -> pricing_pb2.LiquidityProvider:
    """The contract's view of one LP session. `subscribed` and `stale` count instruments; both
    are 0 while the session is not logged on (nothing is subscribed then). CONNECTED means
    logged on with market data subscribed: a session whose LP refuses its market data or sends
    none is CONNECTING (the gateway subscribes again with back-off), with the reason as its
    last error."""
    state = _SESSION_STATE[status.state]
    if status.state is SessionState.LOGGED_ON and not status.serving:
        state = pricing_pb2.LIQUIDITY_PROVIDER_SESSION_STATE_CONNECTING
    provider = pricing_pb2.LiquidityProvider(
        id=status.lp,
        name=status.lp,  # no display names are configured; the id is the name
        fix_session_id=f"FIX.4.4:TRADINGMESH->{status.lp.upper()}",
        session_state=state,
        last_error="" if status.serving else status.last_error,
        quote_count=activity.quote_count(status.lp),
        subscribed_instrument_count=subscribed,
        stale_instrument_count=stale,
    )
    provider.state_change_time.FromDatetime(status.state_changed_at)
    # The snapshot's own last_quote_at is as old as its last state change; the activity is live.
    times = [t for t in (status.last_quote_at, activity.last_quote_at(status.lp)) if t]
    if times:
        provider.last_quote_time.FromDatetime(max(times))
    latency = activity.latency(status.lp, now)
    if latency is not None:
        provider.median_latency.FromTimedelta(latency[0])
        provider.p99_latency.FromTimedelta(latency[1])
    return provider


# -- the service's side: PostgreSQL (`store`), the outbox, the in-memory copies -----------------

# The subject each instrument event is published under, as its consumers subscribe to it.
_SUBJECTS: Final[Mapping[type[Message], str]] = {
    pricing_events_pb2.InstrumentCreated: "pricing.instrument.created",
    pricing_events_pb2.InstrumentUpdated: "pricing.instrument.updated",
    pricing_events_pb2.InstrumentTradingStatusChanged: "pricing.instrument.trading_status_changed",
}


class _Change:
    """One change of an instrument, in its transaction: who makes it, when, and what it wrote
    (`announce`), which is handed to this process's copies once the transaction has committed
    (`PricingAdmin._changing`)."""

    def __init__(self, session: AsyncSession, caller: Caller) -> None:
        self.session = session
        self.caller = caller
        self.now = datetime.now(UTC)
        self.written: tuple[pricing_pb2.Instrument, int] | None = None

    async def announce(
        self, row: Mapping[Any, Any], event: Callable[..., Message], **fields: Any
    ) -> pricing_pb2.Instrument:
        """The instrument the change wrote (its returned row), announced by `event` in the
        change's transaction."""
        instrument, version = instrument_from_row(row, self.now), int(row["version"])
        metadata = operator_metadata(self.caller, version, self.now)
        message = event(metadata=metadata, instrument=instrument, **fields)
        await add_event(self.session, SCHEMA, _SUBJECTS[type(message)], message)
        self.written = instrument, version
        return instrument


class PricingAdmin:
    """PricingAdminService's work; the servicer checks roles and maps messages."""

    def __init__(
        self,
        db: Database,
        reference: Reference,
        engine: PricingEngine,
        reader: QuoteReader,
        lp_status: Mapping[str, LpStatus],
        activity: LpActivity,
        subscribed: Callable[[], Sequence[str]],
    ) -> None:
        self.db = db
        self.reference = reference
        self.engine = engine
        self.reader = reader
        self.lp_status = lp_status  # the runtime's, kept current by the gateway's callbacks
        self.activity = activity
        self.subscribed = subscribed  # the symbols the gateway asks each LP for at logon

    # -- changes -------------------------------------------------------------------------------

    @asynccontextmanager
    async def _changing(self, caller: Caller) -> AsyncIterator[_Change]:
        """A change's transaction; what it wrote goes to the reference data (and so the
        engine) once committed. A change that writes nothing, or fails, hands over nothing."""
        async with self.db.transaction() as session:
            change = _Change(session, caller)
            yield change
        if change.written is not None:
            self.reference.put(*change.written)

    async def create(self, caller: Caller, given: pricing_pb2.Instrument) -> pricing_pb2.Instrument:
        wanted = new_instrument(given)
        async with self._changing(caller) as change:
            row = await store.insert_instrument(change.session, row_values(wanted))
            if row is None:
                raise DomainError(
                    _R.ERROR_REASON_ALREADY_EXISTS,
                    f"instrument {wanted.symbol} exists",
                    metadata={"symbol": wanted.symbol},
                )
            instrument = await change.announce(row, pricing_events_pb2.InstrumentCreated)
        try:
            # A group may offer the symbol already (an offer of an unknown symbol is skipped).
            await self.reference.reload_groups()
        except Exception:
            log.exception("reloading the groups' offers failed", extra={"symbol": given.symbol})
        return instrument

    async def update(
        self,
        caller: Caller,
        symbol: str,
        given: pricing_pb2.Instrument,
        paths: Sequence[str],
    ) -> pricing_pb2.Instrument:
        async with self._changing(caller) as change:
            before = instrument_from_row(await self._locked(change.session, symbol), change.now)
            after = merge(before, given, list(dict.fromkeys(paths)))
            changed = changed_paths(before, after, paths)
            if not changed:
                return before  # nothing to write, publish or apply
            written = await store.update_instrument_spec(change.session, row_values(after))
            return await change.announce(
                written,
                pricing_events_pb2.InstrumentUpdated,
                update_mask=FieldMask(paths=changed),
            )

    async def set_trading_status(
        self,
        caller: Caller,
        symbol: str,
        status: pricing_pb2.TradingStatus.ValueType,
        reason: str,
    ) -> pricing_pb2.Instrument:
        if status not in (pricing_pb2.TRADING_STATUS_TRADING, pricing_pb2.TRADING_STATUS_HALTED):
            raise invalid([("status", "must be TRADING or HALTED")])
        halt = status == pricing_pb2.TRADING_STATUS_HALTED
        halt_reason = reason if halt else ""  # kept only while halted
        async with self._changing(caller) as change:
            row = await self._locked(change.session, symbol)
            before = instrument_from_row(row, change.now)
            if (row["trading_status"] == "HALTED") == halt and row["halt_reason"] == halt_reason:
                return before  # nothing changes (resuming a trading instrument, say)
            written = await store.update_trading_status(
                change.session, symbol, "HALTED" if halt else "TRADING", halt_reason
            )
            return await change.announce(
                written,
                pricing_events_pb2.InstrumentTradingStatusChanged,
                previous_status=before.trading_status,
                reason=reason,
            )

    async def _locked(self, session: AsyncSession, symbol: str) -> Mapping[Any, Any]:
        row = await store.lock_instrument(session, symbol)
        if row is None:
            raise unknown_instrument(symbol)
        return row

    # -- reads ---------------------------------------------------------------------------------

    async def provenance(
        self, symbol: str, group_id: str
    ) -> pricing_admin_service_pb2.GetQuoteProvenanceResponse:
        if symbol not in self.reference.instruments:
            raise unknown_instrument(symbol)
        if group_id not in self.reference.groups:
            raise not_found("client group", "group_id", group_id)
        quotes = await self.reader.read(group_id, [symbol])
        books = self.engine.lp_books(symbol, datetime.now(UTC))
        return provenance_response(quotes.get(symbol), books, self.lp_status)

    def liquidity_providers(self, now: datetime) -> list[pricing_pb2.LiquidityProvider]:
        """Every configured LP, ordered by id."""
        symbols = self.subscribed()
        providers = []
        for lp, status in sorted(self.lp_status.items()):
            subscribed = stale = 0
            if status.state is SessionState.LOGGED_ON:
                subscribed = len(symbols)
                stale = sum(1 for symbol in symbols if not self._counts(lp, symbol, now))
            providers.append(liquidity_provider(status, self.activity, subscribed, stale, now))
        return providers

    def _counts(self, lp: str, symbol: str, now: datetime) -> bool:
        """Whether the LP's latest quote of the symbol takes part in aggregation."""
        return any(q.lp == lp and not stale for q, stale in self.engine.lp_books(symbol, now))

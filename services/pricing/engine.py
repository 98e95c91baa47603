"""The pricing engine (ADR 0006): LP quotes in, marked-up prices per client group out. No I/O.

Per instrument it keeps each LP's latest top of book. A quote counts while it is younger than
`max_quote_age` and its LP's session is up. The raw price is the best (highest) bid and the best
(lowest) ask across the LPs that count; if those cross or lock, the raw price is instead the
single LP quote with the tightest spread, so a client never sees a crossed or zero-spread price.
Each client group offered the instrument then gets the raw price widened by its markup
(`common/v1/pricing.proto`: POINTS or PERCENT, split between bid and ask in whole points).

Prices are emitted only when they change, each with a per-group, per-instrument version and the
provenance of both sides.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from decimal import ROUND_CEILING
from decimal import Decimal
from typing import Final

from services.pricing.model import LpQuote
from services.pricing.model import Markup
from services.pricing.model import MarkupKind
from services.pricing.model import PublishedPrice
from services.pricing.model import SourceRef

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class GroupConfig:
    """What one client group is offered: per symbol, the markup that applies to it."""

    group_id: str
    markups: Mapping[str, Markup]  # symbol -> markup; symbols absent are not offered


@dataclass
class Update:
    """What one engine call produced: new prices, and (group, symbol) pairs gone stale."""

    prices: list[PublishedPrice] = field(default_factory=list)
    stale: list[tuple[str, str]] = field(default_factory=list)

    def extend(self, other: Update) -> None:
        self.prices.extend(other.prices)
        self.stale.extend(other.stale)


@dataclass
class _Published:
    bid: Decimal
    ask: Decimal
    version: int
    live: bool
    time: datetime


def markup_points(markup: Markup, raw_bid: Decimal, raw_ask: Decimal, point: Decimal) -> int:
    """How many points `markup` widens the spread by (a whole number, never negative)."""
    if markup.kind is MarkupKind.POINTS:
        return int(markup.value)
    mid = (raw_bid + raw_ask) / 2
    widening = mid * markup.value / HUNDRED
    return int((widening / point).to_integral_value(rounding=ROUND_CEILING))


def apply_markup(
    markup: Markup, raw_bid: Decimal, raw_ask: Decimal, point: Decimal
) -> tuple[Decimal, Decimal]:
    """The amounts taken off the bid and added to the ask: half the points (rounded down) off
    the bid, the rest onto the ask."""
    points = markup_points(markup, raw_bid, raw_ask, point)
    bid_points = points // 2
    return point * bid_points, point * (points - bid_points)


# A live price is published again, unchanged, once it is this old (when an LP quote arrives):
# consumers tell a live price from a stale one by its age (QuotePublished), and a price that
# does not move, e.g. a quiet market or a pinned test price, is still live.
REFRESH: Final = timedelta(seconds=1)


class PricingEngine:
    def __init__(
        self, digits: Mapping[str, int], max_quote_age: timedelta, refresh: timedelta = REFRESH
    ) -> None:
        self.refresh = refresh
        self.points = {symbol: Decimal(1).scaleb(-d) for symbol, d in digits.items()}
        self.max_quote_age = max_quote_age
        self.books: dict[str, dict[str, LpQuote]] = {symbol: {} for symbol in digits}
        # Every LP's last quote per symbol, kept after it stops counting, for the staff's view
        # of the books (`lp_books`); `books` holds only the quotes that count.
        self.last_quotes: dict[str, dict[str, LpQuote]] = {symbol: {} for symbol in digits}
        self.groups: dict[str, GroupConfig] = {}
        self.offered: dict[str, list[GroupConfig]] = {}  # symbol -> groups offered it
        self.published: dict[tuple[str, str], _Published] = {}
        self.lps_down: set[str] = set()

    # -- configuration -------------------------------------------------------------------------

    def set_instruments(self, digits: Mapping[str, int]) -> None:
        for symbol, d in digits.items():
            self.points[symbol] = Decimal(1).scaleb(-d)
            self.books.setdefault(symbol, {})
            self.last_quotes.setdefault(symbol, {})

    def set_groups(self, groups: Iterable[GroupConfig], now: datetime) -> Update:
        """Replaces the groups; every price is recomputed (a markup may have changed)."""
        self.groups = {g.group_id: g for g in groups}
        self.offered = {}
        for group in self.groups.values():
            for symbol in group.markups:
                self.offered.setdefault(symbol, []).append(group)
        live_pairs = {(g.group_id, s) for g in self.groups.values() for s in g.markups}
        update = Update()
        for pair in [p for p in self.published if p not in live_pairs]:
            if self.published.pop(pair).live:
                update.stale.append(pair)
        for symbol in self.books:
            update.extend(self._recompute(symbol, now))
        return update

    # -- input ---------------------------------------------------------------------------------

    def on_quotes(self, quotes: Iterable[LpQuote], now: datetime) -> Update:
        touched: set[str] = set()
        for quote in quotes:
            book = self.books.get(quote.symbol)
            if book is None or quote.lp in self.lps_down:
                continue  # not an instrument of ours, or a late message of a dead session
            book[quote.lp] = quote
            self.last_quotes[quote.symbol][quote.lp] = quote
            touched.add(quote.symbol)
        update = Update()
        for symbol in touched:
            update.extend(self._recompute(symbol, now))
        return update

    def lp_up(self, lp: str) -> None:
        self.lps_down.discard(lp)

    def lp_down(self, lp: str, now: datetime) -> Update:
        """The LP's session ended: none of its quotes count any more."""
        self.lps_down.add(lp)
        update = Update()
        for symbol, book in self.books.items():
            if book.pop(lp, None) is not None:
                update.extend(self._recompute(symbol, now))
        return update

    def expire(self, now: datetime) -> Update:
        """Drops quotes older than the maximum age; call it a few times a second."""
        oldest = now - self.max_quote_age
        update = Update()
        for symbol, book in self.books.items():
            stale = [lp for lp, q in book.items() if q.received_at < oldest]
            for lp in stale:
                del book[lp]
            if stale:
                update.extend(self._recompute(symbol, now))
        return update

    # -- output --------------------------------------------------------------------------------

    def lp_books(self, symbol: str, now: datetime) -> list[tuple[LpQuote, bool]]:
        """Each LP's last top of book for `symbol`, by LP id, with whether it is stale (no longer
        counted: too old, or its LP's session ended)."""
        oldest = now - self.max_quote_age
        live = self.books.get(symbol, {})
        return [
            (quote, live.get(lp) is not quote or quote.received_at < oldest)
            for lp, quote in sorted(self.last_quotes.get(symbol, {}).items())
        ]

    def raw(self, symbol: str, now: datetime) -> tuple[LpQuote, LpQuote] | None:
        """The quotes behind the raw bid and ask of `symbol` now, or None without a price."""
        oldest = now - self.max_quote_age
        fresh = [q for q in self.books.get(symbol, {}).values() if q.received_at >= oldest]
        if not fresh:
            return None
        best_bid = max(fresh, key=lambda q: (q.bid, q.lp))
        best_ask = min(fresh, key=lambda q: (q.ask, q.lp))
        if best_bid.bid < best_ask.ask:
            return best_bid, best_ask
        # Crossed or locked across LPs: the single tightest LP quote that is itself sound.
        sound = [q for q in fresh if q.bid < q.ask]
        if not sound:
            return None
        tightest = min(sound, key=lambda q: (q.ask - q.bid, q.lp))
        return tightest, tightest

    def _recompute(self, symbol: str, now: datetime) -> Update:
        update = Update()
        groups = self.offered.get(symbol, ())
        if not groups:
            return update
        sources = self.raw(symbol, now)
        if sources is None:
            for group in groups:
                last = self.published.get((group.group_id, symbol))
                if last is not None and last.live:
                    last.live = False
                    update.stale.append((group.group_id, symbol))
            return update
        bid_quote, ask_quote = sources
        point = self.points[symbol]
        bid_source = _ref(bid_quote, bid_quote.bid)
        ask_source = _ref(ask_quote, ask_quote.ask)
        for group in groups:
            markup = group.markups[symbol]
            bid_markup, ask_markup = apply_markup(markup, bid_quote.bid, ask_quote.ask, point)
            bid, ask = bid_quote.bid - bid_markup, ask_quote.ask + ask_markup
            key = (group.group_id, symbol)
            last = self.published.get(key)
            if (
                last is not None
                and last.live
                and (last.bid, last.ask) == (bid, ask)
                and now - last.time < self.refresh
            ):
                continue
            version = last.version + 1 if last else 1
            self.published[key] = _Published(bid, ask, version, live=True, time=now)
            update.prices.append(
                PublishedPrice(
                    group_id=group.group_id,
                    symbol=symbol,
                    bid=bid,
                    ask=ask,
                    time=now,
                    version=version,
                    bid_source=bid_source,
                    ask_source=ask_source,
                    markup=markup,
                    bid_markup=bid_markup,
                    ask_markup=ask_markup,
                )
            )
        return update


def _ref(quote: LpQuote, price: Decimal) -> SourceRef:
    return SourceRef(
        quote.lp,
        quote.quote_id,
        price,
        quote.lp_time,
        quote.received_at,
        quote.sequence,
        quote.lp_entry_id,
    )

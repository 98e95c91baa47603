"""Live prices for execution: the latest quote per (client group, symbol), from NATS (ADR 0007).

Pricing publishes each new price of a group as `QuotePublished` on
`pricing.quote.published.<group_id>.<symbol token>` (a core publish that the PRICING_QUOTES
stream also captures; services/pricing/feed.py). The book subscribes to every group's subjects
and keeps the newest quote per group and symbol in memory; an order reads it without a round
trip. A quote counts as live when it is not marked stale and not older than the maximum age
(`TM_OMS_MAX_QUOTE_AGE_MS`, default 2000 ms, the same 2 s pricing applies to LP quotes).

Pricing publishes a price when it changes and again, unchanged, once the last one is a second
old (ADR 0006), so a quiet or pinned price stays live and only a price pricing stopped
publishing (no LP quote, pricing down) ages out.

At start, once subscribed, the book also reads the PRICING_QUOTES stream's last price of every
subject (as risk's feed does), before the service reports SERVING: without it, the first orders
after an OMS restart were REJECTED / PRICE_UNAVAILABLE until pricing next published each price
(issue #18: the first order after the OMS serves must succeed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Final

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from services.oms.entry.execution import LiveQuote
from services.platform.bus import last_per_subject
from services.platform.prices import SUBJECTS

__all__ = ["QuoteBook"]

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE: Final = timedelta(seconds=2)


class QuoteBook:
    """The newest quote of every (group, symbol); `start` subscribes, `stop` unsubscribes."""

    def __init__(self, max_age: timedelta = DEFAULT_MAX_AGE) -> None:
        self.max_age = max_age
        self._quotes: dict[tuple[str, str], LiveQuote] = {}
        self._subscription: Subscription | None = None
        self._listeners: list[Callable[[LiveQuote], None]] = []

    def listen(self, listener: Callable[[LiveQuote], None]) -> None:
        """Calls `listener(quote)` with every quote the book keeps (the trigger engine); it runs
        on the event loop and must not block."""
        self._listeners.append(listener)

    def put(self, quote: LiveQuote) -> None:
        """Keeps `quote` unless the book holds a newer one (messages may arrive out of order)."""
        key = (quote.group_id, quote.symbol)
        held = self._quotes.get(key)
        if held is None or quote.time >= held.time:
            self._quotes[key] = quote
            for listener in self._listeners:
                try:
                    listener(quote)
                except Exception:
                    log.exception("a quote listener failed", extra={"symbol": quote.symbol})

    def latest(self, group_id: str, symbol: str) -> LiveQuote | None:
        """The newest quote, live or not."""
        return self._quotes.get((group_id, symbol))

    def live(self, group_id: str, symbol: str, now: datetime | None = None) -> LiveQuote | None:
        """The newest quote if it is live now, else None."""
        quote = self._quotes.get((group_id, symbol))
        if quote is None or not quote.is_live(now or datetime.now(UTC), self.max_age):
            return None
        return quote

    async def on_message(self, message: Msg) -> None:
        self.take(message)

    def take(self, message: Msg) -> bool:
        quote = LiveQuote.read(message.data)
        if quote is None:
            log.warning("a message without a usable price", extra={"subject": message.subject})
            return False
        self.put(quote)
        return True

    async def start(self, nats: NatsClient, js: JetStreamContext | None = None) -> None:
        """Subscribes; with `js`, then reads the stream's last price per subject."""
        self._subscription = await nats.subscribe(SUBJECTS, cb=self.on_message)
        if js is not None:
            try:
                await self._read_snapshot(js)
            except Exception:
                # Not fatal: the prices come over the subscription within a second.
                log.exception("reading the last prices from PRICING_QUOTES failed")

    async def _read_snapshot(self, js: JetStreamContext) -> None:
        """The stream's last price per subject."""
        taken = await last_per_subject(js, SUBJECTS, self.take)
        log.info("prices loaded", extra={"prices": taken})

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None

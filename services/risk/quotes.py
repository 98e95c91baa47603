"""Live prices: every client group's published price of every instrument, latest only.

Pricing publishes each new price on NATS (`pricing.quote.published.<group>.<symbol_token>`,
QuotePublished) with a plain publish, which its PRICING_QUOTES stream keeps, last per subject.
The feed subscribes to all of them (core NATS: conflatable, no acknowledgements) and, at start,
reads the stream's last price of every subject, so the service knows every price at once rather
than after each one next changes. A price older than the one held (by its time, then by
aggregate_version, which a restarted pricing counts from 1 again) is dropped, whichever of the
two paths brought it. Each price taken is handed to `on_price` (the margin watcher looks for big
moves).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from services.platform.bus import last_per_subject
from services.platform.prices import SUBJECTS
from services.platform.prices import PublishedPrice
from services.risk.model import Quote
from services.risk.state import RiskState

__all__ = ["QuoteFeed", "parse_quote"]

log = logging.getLogger(__name__)


def parse_quote(data: bytes) -> tuple[str, str, Quote] | None:
    """(group id, symbol, quote) of a QuotePublished; None for one without a usable price
    (`services.platform.prices`). Without its raw LP prices, the group's own stand in."""
    price = PublishedPrice.read(data)
    if price is None:
        return None
    quote = Quote(
        bid=price.bid,
        ask=price.ask,
        raw_bid=price.raw_bid or price.bid,
        raw_ask=price.raw_ask or price.ask,
        time=price.time,
        version=price.version,
    )
    return price.group_id, price.symbol, quote


class QuoteFeed:
    def __init__(self, state: RiskState, on_price: Callable[[str, Quote], None]) -> None:
        self.state = state
        self.on_price = on_price
        self._subscription: Subscription | None = None

    async def start(self, nats: NatsClient, js: JetStreamContext) -> None:
        self._subscription = await nats.subscribe(SUBJECTS, cb=self._on_message)
        await self._read_snapshot(js)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None

    async def _on_message(self, message: Msg) -> None:
        self.take(message.data)

    def take(self, data: bytes) -> bool:
        parsed = parse_quote(data)
        if parsed is None:
            log.warning("a quote that breaks its contract was dropped")
            return False
        group_id, symbol, quote = parsed
        if not self.state.put_quote(group_id, symbol, quote):
            return False
        self.on_price(symbol, quote)
        return True

    async def _read_snapshot(self, js: JetStreamContext) -> None:
        """The stream's last price per subject."""
        taken = await last_per_subject(js, SUBJECTS, lambda message: self.take(message.data))
        log.info("prices loaded", extra={"prices": taken})

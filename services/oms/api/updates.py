"""StreamOrderUpdates' source: the committed order changes, as the outbox publishes them.

Every order change is an `oms.order.<event>` event, published by the outbox relay only after
its transaction committed, in the envelope of that change (ADR 0009). The hub holds ONE core
NATS subscription on `oms.>` per process (the OMS stream captures the same messages for durable
consumers) and hands each order change of an envelope to the streams of its account. A stream
that cannot keep up (its queue is full) is ended with UNAVAILABLE: the contract lets the server
end a stream at any time, and the client reconnects with send_open_orders, which loses nothing,
rather than silently miss an update.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Final

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.oms.store.events import order_update_of
from services.platform.envelope import events_of
from tradingmesh.oms.v1 import oms_pb2

__all__ = ["ORDER_SUBJECTS", "OrderStream", "OrderUpdateHub"]

log = logging.getLogger(__name__)

ORDER_SUBJECTS: Final = "oms.>"  # envelopes; the order events are picked from them
QUEUE_LIMIT: Final = 1000


class OrderStream:
    """One client's stream: the updates of one account, in arrival order. `overflowed` once it
    fell QUEUE_LIMIT updates behind."""

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.queue: asyncio.Queue[oms_pb2.OrderUpdate | None] = asyncio.Queue()
        self.overflowed = False

    def offer(self, update: oms_pb2.OrderUpdate) -> None:
        if self.overflowed:
            return
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.overflowed = True
            self.queue.put_nowait(None)  # wakes the reader, which ends the stream
            return
        self.queue.put_nowait(update)

    async def next(self) -> oms_pb2.OrderUpdate | None:
        """The next update; None when the stream fell behind and must end."""
        return await self.queue.get()


class OrderUpdateHub:
    def __init__(self) -> None:
        self._streams: dict[str, set[OrderStream]] = defaultdict(set)
        self._subscription: Subscription | None = None

    def open(self, account_id: str) -> OrderStream:
        stream = OrderStream(account_id)
        self._streams[account_id].add(stream)
        return stream

    def close(self, stream: OrderStream) -> None:
        streams = self._streams.get(stream.account_id)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._streams[stream.account_id]

    def dispatch(self, update: oms_pb2.OrderUpdate) -> None:
        for stream in tuple(self._streams.get(update.order.account_id, ())):
            stream.offer(update)

    async def on_message(self, message: Msg) -> None:
        if not self._streams:
            return
        for event in events_of(message):
            update = order_update_of(event.subject, event.data)
            if update is not None:
                self.dispatch(update)

    async def start(self, nats: NatsClient) -> None:
        self._subscription = await nats.subscribe(ORDER_SUBJECTS, cb=self.on_message)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None

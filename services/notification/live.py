"""Live notification streams (StreamNotifications) across replicas, over core NATS.

After a consumer commits notifications, its process publishes each on `notification.live`
(core NATS, not a stream: a stream that misses one finds it again by resuming, the contract's
at-least-once), with the user or account it belongs to in headers. Every replica's `LiveHub`
subscribes once and hands each message to its open streams whose caller may see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from typing import Final

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.notification import convert
from services.notification.store import Stored
from services.notification.store import Viewer
from tradingmesh.notification.v1.notification_pb2 import Notification

log = logging.getLogger(__name__)

SUBJECT: Final = "notification.live"
USER_HEADER: Final = "tm-user-id"
ACCOUNT_HEADER: Final = "tm-account-id"
POSITION_HEADER: Final = "tm-position"
QUEUE_LIMIT: Final = 1000


@dataclass(frozen=True)
class Live:
    """A new notification as a stream receives it."""

    position: int
    notification: Notification


@dataclass(eq=False)
class Listener:
    """One open stream: whose notifications it may see, and its queue. `overflowed` is set when
    the client did not keep up (the stream ends; the client resumes with after_id)."""

    viewer: Viewer
    kinds: frozenset[int]
    queue: asyncio.Queue[Live] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: bool = False

    def wants(self, user_id: str, account_id: str, kind: int) -> bool:
        if self.kinds and kind not in self.kinds:
            return False
        if account_id:
            return account_id in self.viewer.account_ids
        return bool(user_id) and user_id == self.viewer.user_id


class LiveHub:
    def __init__(self) -> None:
        self._listeners: set[Listener] = set()
        self._nats: NatsClient | None = None
        self._subscription: Subscription | None = None
        self._publishing: set[asyncio.Task[None]] = set()

    async def start(self, nats: NatsClient) -> None:
        self._nats = nats
        self._subscription = await nats.subscribe(SUBJECT, cb=self._on_message)

    async def stop(self) -> None:
        for task in list(self._publishing):
            with contextlib.suppress(Exception):
                await task
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None

    @contextlib.contextmanager
    def listening(self, viewer: Viewer, kinds: Iterable[int]) -> Iterator[Listener]:
        listener = Listener(viewer, frozenset(kinds))
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)

    def announce(self, stored: list[Stored]) -> None:
        """Publishes notifications committed just now (called after the commit)."""
        if self._nats is None or not stored:
            return
        task = asyncio.get_running_loop().create_task(self._publish(stored))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, stored: list[Stored]) -> None:
        assert self._nats is not None
        try:
            for item in stored:
                await self._nats.publish(
                    SUBJECT,
                    convert.notification(item).SerializeToString(),
                    headers={
                        USER_HEADER: item.user_id or "",
                        ACCOUNT_HEADER: item.account_id or "",
                        POSITION_HEADER: str(item.position),
                    },
                )
        except Exception:  # streams catch up by resuming; the notifications are stored
            log.exception("publishing live notifications failed")

    async def _on_message(self, message: Msg) -> None:
        if not self._listeners:
            return
        headers = message.headers or {}
        try:
            notification = Notification.FromString(message.data)
            position = int(headers.get(POSITION_HEADER, "0"))
        except Exception:
            log.warning("a live notification message that does not decode was dropped")
            return
        user_id, account_id = headers.get(USER_HEADER, ""), headers.get(ACCOUNT_HEADER, "")
        for listener in list(self._listeners):
            if listener.overflowed or not listener.wants(user_id, account_id, notification.kind):
                continue
            try:
                listener.queue.put_nowait(Live(position, notification))
            except asyncio.QueueFull:
                listener.overflowed = True

"""gRPC servicer of the notification service: map request -> store/domain -> response.

Every RPC works on the caller's own notifications only (`viewer`): a user's and their accounts'
(the accounts of the access token), an API key's accounts' only. Another user's notification is
never found: MarkNotificationsRead ignores it, StreamNotifications' after_id answers NOT_FOUND,
a filter on another user's account answers NOT_FOUND (ADR 0002, ADR 0005).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import Final

import grpc

from services.notification import convert
from services.notification import domain
from services.notification import store
from services.notification.live import LiveHub
from services.platform.access import account_not_found
from services.platform.access import require_user
from services.platform.db import Database
from services.platform.errors import DomainError
from services.platform.identity import Caller
from services.platform.messages import timestamp
from services.platform.paging import bad_token
from services.platform.paging import decode_token as decode_parts
from services.platform.paging import encode_token as encode_parts
from services.platform.paging import page_size
from services.platform.runtime import Ready
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.notification.v1 import notification_pb2 as pb
from tradingmesh.notification.v1 import notification_service_pb2 as api
from tradingmesh.notification.v1 import notification_service_pb2_grpc

R = ErrorReason
Context = grpc.aio.ServicerContext[Any, Any]
REPLAY_PAGE: Final = 500
HEARTBEAT_SECONDS: Final = 30.0


class NotificationParts:
    """What the servicer uses: the live hub, and the database once the runtime has opened."""

    db = Ready[Database]()

    def __init__(self, hub: LiveHub, heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        self.hub = hub
        self.heartbeat_seconds = heartbeat_seconds


def viewer(caller: Caller) -> store.Viewer:
    """Whose notifications the caller sees: an API key only its accounts'."""
    user_id = caller.subject if caller.api_key_id is None else None
    return store.Viewer(user_id=user_id, account_ids=caller.account_ids)


def _kinds(kinds: list[int]) -> tuple[str, ...]:
    return tuple(domain.kind_name(k) for k in kinds)  # type: ignore[arg-type]


def encode_token(position: int) -> str:
    return encode_parts("n", str(position))


def decode_token(token: str) -> int | None:
    """The position a page continues before; None for the first page."""
    parts = decode_parts(token, 2)
    if parts is None:
        return None
    tag, position = parts
    if tag != "n" or not position.isdigit() or int(position) < 1:
        raise bad_token()
    return int(position)


class NotificationService(notification_service_pb2_grpc.NotificationServiceServicer):
    """tradingmesh.notification.v1.NotificationService."""

    def __init__(self, parts: NotificationParts) -> None:
        self.parts = parts

    async def StreamNotifications(  # noqa: N802  # the contract's name
        self, request: api.StreamNotificationsRequest, context: Context
    ) -> AsyncIterator[api.StreamNotificationsResponse]:
        caller = require_user()
        db, hub = self.parts.db, self.parts.hub
        seen = viewer(caller)
        kinds = _kinds(list(request.kinds))
        resume = request.WhichOneof("resume")
        with hub.listening(seen, set(request.kinds)) as listener:  # before the replay: no gap
            after_position: int | None = None
            since: datetime | None = None
            if resume == "after_id":
                async with db.lone_reads() as session:
                    after_position = await store.position_of(session, seen, request.after_id)
                if after_position is None:
                    raise DomainError(
                        R.ERROR_REASON_NOT_FOUND,
                        "after_id names no notification of yours; resume with since_time",
                    )
            elif resume == "since_time":
                since = request.since_time.ToDatetime(tzinfo=UTC)
            last, replayed = after_position or 0, 0
            sent: set[int] = set()  # replayed positions, which may also arrive live
            while resume is not None:  # a page per read: no connection held while sending
                async with db.lone_reads() as session:
                    rows = await store.after(
                        session,
                        seen,
                        kinds,
                        after_position=last or None,
                        since=since,
                        limit=REPLAY_PAGE,
                    )
                for row in rows:
                    yield api.StreamNotificationsResponse(notification=convert.notification(row))
                    last = row.position
                    sent.add(row.position)
                replayed += len(rows)
                if len(rows) < REPLAY_PAGE:
                    break
            async with db.lone_reads() as session:
                unread = await store.unread_count(session, seen, kinds)
            yield api.StreamNotificationsResponse(
                caught_up=api.StreamCaughtUp(replayed_count=replayed, unread_count=unread)
            )
            while True:
                try:
                    live = await asyncio.wait_for(
                        listener.queue.get(), timeout=self.parts.heartbeat_seconds
                    )
                except TimeoutError:
                    if listener.overflowed:
                        break
                    heartbeat = api.StreamHeartbeat()
                    heartbeat.server_time.GetCurrentTime()
                    yield api.StreamNotificationsResponse(heartbeat=heartbeat)
                    continue
                if live.position in sent:  # replayed already (commits may come out of order)
                    continue
                yield api.StreamNotificationsResponse(notification=live.notification)
                if listener.overflowed and listener.queue.empty():
                    break
        raise DomainError(
            R.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
            "the stream fell behind; resume with after_id",
        )

    async def ListNotifications(  # noqa: N802  # the contract's name
        self, request: api.ListNotificationsRequest, context: Context
    ) -> api.ListNotificationsResponse:
        caller = require_user()
        seen = viewer(caller)
        if request.account_id and request.account_id not in seen.account_ids:
            raise account_not_found(request.account_id)
        time_range = request.time_range
        filters = store.Filters(
            kinds=_kinds(list(request.kinds)),
            unread_only=request.unread_only,
            account_id=request.account_id or None,
            since=time_range.start_time.ToDatetime(tzinfo=UTC)
            if time_range.HasField("start_time")
            else None,
            until=time_range.end_time.ToDatetime(tzinfo=UTC)
            if time_range.HasField("end_time")
            else None,
        )
        size = page_size(request.page_size)
        async with self.parts.db.lone_reads() as session:
            rows, unread = await store.page(
                session,
                seen,
                filters,
                before_position=decode_token(request.page_token),
                limit=size + 1,
            )
        more = len(rows) > size
        rows = rows[:size]
        return api.ListNotificationsResponse(
            notifications=[convert.notification(r) for r in rows],
            next_page_token=encode_token(rows[-1].position) if more else "",
            unread_count=unread,
        )

    async def MarkNotificationsRead(  # noqa: N802  # the contract's name
        self, request: api.MarkNotificationsReadRequest, context: Context
    ) -> api.MarkNotificationsReadResponse:
        caller = require_user()
        async with self.parts.db.lone_writes() as session:
            marked, unread = await store.mark_read(
                session, viewer(caller), None if request.all else list(request.ids)
            )
        return api.MarkNotificationsReadResponse(marked_count=marked, unread_count=unread)

    async def GetNotificationPreferences(  # noqa: N802  # the contract's name
        self, request: api.GetNotificationPreferencesRequest, context: Context
    ) -> api.GetNotificationPreferencesResponse:
        caller = require_user()
        async with self.parts.db.lone_reads() as session:
            settings, changed = await store.preferences(session, caller.subject)
        return api.GetNotificationPreferencesResponse(preferences=_preferences(settings, changed))

    async def UpdateNotificationPreferences(  # noqa: N802  # the contract's name
        self,
        request: api.UpdateNotificationPreferencesRequest,
        context: Context,
    ) -> api.UpdateNotificationPreferencesResponse:
        caller = require_user()
        if caller.api_key_id is not None:
            raise DomainError(
                R.ERROR_REASON_PERMISSION_DENIED,
                "an API key may read but not change the user's notification preferences",
            )
        changes = domain.email_switches(
            (item.kind, item.email_enabled) for item in request.preferences.kinds
        )
        async with self.parts.db.transaction() as session:
            await store.save_preferences(session, caller.subject, changes)
            settings, changed = await store.preferences(session, caller.subject)
        return api.UpdateNotificationPreferencesResponse(
            preferences=_preferences(settings, changed)
        )


def _preferences(settings: dict[str, bool], changed: datetime | None) -> pb.NotificationPreferences:
    preferences = pb.NotificationPreferences(
        kinds=[
            pb.NotificationKindPreference(
                kind=kind,
                email_enabled=kind in domain.EMAIL_REQUIRED
                or settings.get(domain.kind_name(kind), domain.email_default(kind)),
                email_required=kind in domain.EMAIL_REQUIRED,
            )
            for kind in domain.ALL_KINDS
        ]
    )
    if changed is not None:
        preferences.update_time.CopyFrom(timestamp(changed))
    return preferences

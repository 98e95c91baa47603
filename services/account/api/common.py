"""What every servicer of the account service shares: the context type, the staff role sets,
the audit record and event metadata of a change, a page of a list (`offset_listing`), and the
base of the admin servicer's parts (`AdminPart.listing`: a page in a read session of its
own)."""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Final
from typing import Protocol
from typing import TypeVar

import grpc.aio
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.account import audit
from services.account import convert
from services.account import events
from services.account.convert import Row
from services.account.margin import MarginFigures
from services.platform.access import ADMIN
from services.platform.access import BACKOFFICE
from services.platform.access import DEALER
from services.platform.enums import enum_name
from services.platform.identity import Caller
from services.platform.paging import next_offset_token
from services.platform.paging import offset_page
from services.platform.resources import Resources
from tradingmesh.common.v1.events_pb2 import EventMetadata

Context = grpc.aio.ServicerContext[Any, Any]
M = TypeVar("M", bound=Message)
ANY_STAFF: Final = (ADMIN, DEALER, BACKOFFICE)
MONEY_STAFF: Final = (ADMIN, BACKOFFICE)


class PageRequest(Protocol):
    """A list request's paging fields (`page_size`, `page_token`)."""

    @property
    def page_size(self) -> int: ...

    @property
    def page_token(self) -> str: ...


class AdminPart:
    """A part of AccountAdminService (`admin.py`): the RPCs of one resource."""

    resources: Resources
    margin: MarginFigures

    async def listing(
        self,
        request: PageRequest,
        rows: Callable[..., Awaitable[Sequence[Row]]],
        message: Callable[[Row], M],
        **filters: Any,
    ) -> tuple[list[M], str]:
        """`offset_listing` in a read session of its own."""
        async with self.resources.db.read_session() as session:
            return await offset_listing(session, request, rows, message, **filters)


async def audit_change(
    session: AsyncSession,
    caller: Caller,
    action: str,
    after: Any,
    *,
    before: Message | None = None,
    note: Mapping[str, str] | None = None,
    entity_id: str | None = None,
) -> None:
    """The audit record of a change to `after` (an entity with an `id`), in the change's
    transaction; the entity type is the action's prefix ("user" of "user.create"). `after` is
    a message with an `id` field (User, TradingAccount, Withdrawal, ...), or `entity_id` names
    the entity."""
    await audit.append_audit(
        session,
        actor=caller,
        action=action,
        entity_type=action.rpartition(".")[0],
        entity_id=after.id if entity_id is None else entity_id,
        before=None if before is None else convert.snapshot(before),
        after={**convert.snapshot(after), **(note or {})},
    )


def event_metadata(caller: Caller, *, version: int = 0) -> EventMetadata:
    return events.metadata(
        audit.actor_of(caller), aggregate_version=version, correlation_id=caller.request_id
    )


def enum_names(wrapper: Any, values: Iterable[int]) -> list[str]:
    """The stored names of `values` of the protobuf enum `wrapper` (`convert.enum_name`)."""
    return [enum_name(wrapper, v) for v in values]


async def offset_listing(
    session: AsyncSession,
    request: PageRequest,
    rows: Callable[..., Awaitable[Sequence[Row]]],
    message: Callable[[Row], M],
    **filters: Any,
) -> tuple[list[M], str]:
    """The page of a list by offset that `request` asks for: `rows(session, **filters,
    limit=..., offset=...)` (a store function) as messages, and the next page's token ("" after
    the last)."""
    limit, offset = offset_page(request.page_size, request.page_token)
    found = await rows(session, **filters, limit=limit, offset=offset)
    return [message(r) for r in found], next_offset_token(offset, limit, len(found) == limit)

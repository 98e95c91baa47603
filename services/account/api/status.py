"""The one way a user's or a trading account's status changes, for UpdateUserStatus and
UpdateTradingAccountStatus: the step from the domain's table (`domain.status_step`), the
closing precondition, the write, the `*.status_changed` event and the audit record with the
operator's reason, all in the caller's transaction (which holds the entity's row lock)."""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.account import events
from services.account.api.common import audit_change
from services.account.api.common import event_metadata
from services.account.convert import Row
from services.account.domain import StatusStep
from services.account.domain import status_step
from services.account.store import Table
from services.platform.identity import Caller
from tradingmesh.common.v1.events_pb2 import EventMetadata

S = TypeVar("S", bound=enum.StrEnum)
M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class StatusChanges(Generic[S, M]):
    """What differs between the entities whose status an operator sets."""

    # The entity in event subjects and audit actions: its change is the event
    # "account.<entity>.status_changed" and the audit action "<entity>.update_status".
    entity: str
    noun: str  # in the refusal: "the <noun> is closed for good"
    table: Table  # where the status is written
    steps: Mapping[tuple[S, S], StatusStep]  # the domain's table
    status: Callable[[str], S]  # the stored status as the domain's enum
    message: Callable[[Row], M]  # a row as the contract's message
    # Raises the refusal when the entity may not be closed yet; it may take further locks.
    check_close: Callable[[AsyncSession, Row], Awaitable[None]]
    event: Callable[[EventMetadata, M, M, str], Message]  # (metadata, after, before, reason)


async def change_status(
    changes: StatusChanges[S, M],
    session: AsyncSession,
    caller: Caller,
    row: Row,
    requested: S,
    reason: str,
) -> M:
    """The entity after its status is set to `requested` (`row` is its locked row): unchanged
    and nothing written when it has that status, INVALID_STATE when the table allows no such
    change, the closing precondition checked before a change to CLOSED."""
    step = status_step(changes.steps, changes.status(row["status"]), requested, changes.noun)
    if step is StatusStep.UNCHANGED:
        return changes.message(row)
    if step is StatusStep.CLOSE:
        await changes.check_close(session, row)
    before = changes.message(row)
    after = changes.message(await changes.table.set_status(session, row["id"], requested))
    await events.emit(
        session,
        f"account.{changes.entity}.status_changed",
        changes.event(event_metadata(caller), after, before, reason),
    )
    await audit_change(
        session,
        caller,
        f"{changes.entity}.update_status",
        after,
        before=before,
        note={"reason": reason},
    )
    return after

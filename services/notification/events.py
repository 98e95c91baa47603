"""What the notification service reads from the domain streams (ADR 0009, ADR 0011).

Three durable consumers (`oms.>`, `risk.>`, `account.>`), each the platform's `EventConsumer`
with the service's inbox (envelope ids), batches and a linger. The handlers only decode events
and collect what they make in the transaction's `Batch`; `before_commit` writes the batch with
multi-row statements (the copies of users and accounts, the completed rollovers whose daily
statements become due, the margin-call throttle, the sign-in addresses, then every notification
and its email delivery in one statement). After the commit
the batch's new notifications are pushed to live streams and the email sender is woken.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import date
from datetime import timedelta
from typing import Any
from typing import Final

from google.protobuf.message import DecodeError
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.notification import domain
from services.notification import store
from services.notification.domain import Draft
from services.platform.enums import enum_name
from services.platform.envelope import Event
from services.platform.inbox import Outcome
from services.platform.inbox import UndeliverableError
from tradingmesh.account.v1 import account_events_pb2 as account_events
from tradingmesh.account.v1 import account_pb2
from tradingmesh.oms.v1 import oms_events_pb2 as oms_events
from tradingmesh.risk.v1 import risk_events_pb2 as risk_events

_BATCH_KEY: Final = "notification_batch"

# subject -> (message type, what it makes)
OMS: Final[dict[str, tuple[type[Message], Callable[[Any], Draft | None]]]] = {
    "oms.trade.executed": (oms_events.TradeExecuted, domain.trade_executed),
    "oms.order.rejected": (oms_events.OrderRejected, domain.order_rejected),
    "oms.order.cancelled": (oms_events.OrderCancelled, domain.order_cancelled),
    "oms.order.expired": (oms_events.OrderExpired, domain.order_expired),
}
RISK: Final[dict[str, tuple[type[Message], Callable[[Any], Draft | None]]]] = {
    "risk.account.margin_call_issued": (risk_events.MarginCallIssued, domain.margin_call),
    "risk.account.margin_call_resolved": (
        risk_events.MarginCallResolved,
        domain.margin_call_resolved,
    ),
    "risk.account.stop_out_completed": (risk_events.StopOutCompleted, domain.stop_out),
}
ACCOUNT: Final[dict[str, tuple[type[Message], Callable[[Any], Draft | None]]]] = {
    "account.ledger_entry.posted": (account_events.LedgerEntryPosted, domain.deposit),
    "account.withdrawal.completed": (
        account_events.WithdrawalCompleted,
        domain.withdrawal_completed,
    ),
    "account.withdrawal.rejected": (account_events.WithdrawalRejected, domain.withdrawal_rejected),
    "account.user.kyc_status_changed": (account_events.KycStatusChanged, domain.kyc_changed),
    "account.token_family.revoked": (
        account_events.TokenFamilyRevoked,
        domain.token_family_revoked,
    ),
}
# Account events that only feed the copies (who owns an account, a user's address).
USER_SNAPSHOTS: Final = {
    "account.user.created": account_events.UserCreated,
    "account.user.status_changed": account_events.UserStatusChanged,
    "account.user.kyc_status_changed": account_events.KycStatusChanged,
}
ACCOUNT_SNAPSHOTS: Final = {
    "account.trading_account.created": account_events.TradingAccountCreated,
    "account.trading_account.status_changed": account_events.TradingAccountStatusChanged,
}
SIGNED_IN: Final = "account.user.signed_in"
# A trading day's rollover: its daily statements become due (statements.py).
ROLLOVER_COMPLETED: Final = "oms.rollover.completed"

FOLLOWED: Final = frozenset(
    {*OMS, *RISK, *ACCOUNT, *USER_SNAPSHOTS, *ACCOUNT_SNAPSHOTS, SIGNED_IN, ROLLOVER_COMPLETED}
)


@dataclass
class Batch:
    """What the handlers of one transaction collected, and what it stored."""

    drafts: list[Draft] = field(default_factory=list)
    margin: list[Draft] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    sign_ins: list[account_events.UserSignedIn] = field(default_factory=list)
    rollovers: list[store.RolloverSeen] = field(default_factory=list)
    stored: list[store.Stored] = field(default_factory=list)
    announced: bool = False


def _decode(message_type: type[Message], event: Event) -> Any:
    try:
        return message_type.FromString(event.data)
    except DecodeError as error:
        raise UndeliverableError(f"{event.subject} does not decode") from error


class Notifier:
    """The handlers and the batch writer of the three consumers; `announce` is called after a
    commit with the notifications it stored."""

    def __init__(
        self,
        margin_call_interval: timedelta,
        announce: Callable[[list[store.Stored]], None],
        statement_delay: timedelta = timedelta(0),
        rollover_recorded: Callable[[], None] | None = None,
    ) -> None:
        self.interval = margin_call_interval
        self._announce = announce
        self.statement_delay = statement_delay
        self._rollover_recorded = rollover_recorded

    def _batch(self, session: AsyncSession) -> Batch:
        batch = session.info.get(_BATCH_KEY)
        if batch is None:
            batch = session.info[_BATCH_KEY] = Batch()
        assert isinstance(batch, Batch)
        return batch

    def _after_commit(self, batch: Batch) -> Callable[[], None]:
        def announce() -> None:
            if batch.announced:
                return
            batch.announced = True
            if batch.stored:
                self._announce(batch.stored)
            if batch.rollovers and self._rollover_recorded is not None:
                self._rollover_recorded()

        return announce

    async def handle(self, session: AsyncSession, event: Event) -> Outcome:
        batch = self._batch(session)
        subject = event.subject
        if subject in USER_SNAPSHOTS:
            user = _decode(USER_SNAPSHOTS[subject], event).user
            batch.users[user.id] = {
                "id": user.id,
                "email": user.email,
                "display_name": user.display_name,
                "status": enum_name(account_pb2.UserStatus, user.status),
            }
        if subject in ACCOUNT_SNAPSHOTS:
            account = _decode(ACCOUNT_SNAPSHOTS[subject], event).account
            batch.accounts[account.id] = {
                "id": account.id,
                "user_id": account.user_id,
                "account_number": account.account_number,
                "currency": account.currency,
            }
        if subject == SIGNED_IN:
            batch.sign_ins.append(_decode(account_events.UserSignedIn, event))
        if subject == ROLLOVER_COMPLETED:
            batch.rollovers.append(self._rollover(_decode(oms_events.RolloverCompleted, event)))
        made = OMS.get(subject) or RISK.get(subject) or ACCOUNT.get(subject)
        if made is not None:
            message_type, convert = made
            draft = convert(_decode(message_type, event))
            if draft is not None:
                if draft.kind in domain.THROTTLED:
                    batch.margin.append(draft)
                else:
                    batch.drafts.append(draft)
        return self._after_commit(batch)

    async def before_commit(self, session: AsyncSession) -> None:
        batch = session.info.pop(_BATCH_KEY, None)
        if not isinstance(batch, Batch):
            return
        await store.save_users(session, batch.users.values())
        await store.save_rollovers(session, batch.rollovers)
        await store.save_accounts(session, batch.accounts.values())
        drafts = list(batch.drafts)
        if batch.margin:
            states = await store.margin_states(
                session, [d.account_id for d in batch.margin if d.account_id]
            )
            passed, after = domain.throttle_batch(states, batch.margin, self.interval)
            await store.save_margin_states(session, after)
            drafts += passed
        if batch.sign_ins:
            drafts += await self._new_addresses(session, batch.sign_ins)
        batch.stored = await store.insert_notifications(
            session, [(str(uuid.uuid4()), draft) for draft in drafts]
        )

    def _rollover(self, event: oms_events.RolloverCompleted) -> store.RolloverSeen:
        """The day whose statements the rollover makes due, at its completion plus the
        settling delay."""
        rollover = event.rollover
        try:
            trading_date = date.fromisoformat(rollover.trading_date)
        except ValueError as error:
            raise UndeliverableError(f"{ROLLOVER_COMPLETED}: {error}") from error
        completed = (
            rollover.complete_time
            if rollover.HasField("complete_time")
            else event.metadata.occurred_at
        ).ToDatetime(tzinfo=UTC)
        return store.RolloverSeen(
            trading_date=trading_date,
            rollover_time=rollover.rollover_time.ToDatetime(tzinfo=UTC),
            completed_at=completed,
            period_end=completed + self.statement_delay,
        )

    async def _new_addresses(
        self, session: AsyncSession, sign_ins: list[account_events.UserSignedIn]
    ) -> list[Draft]:
        with_address = [s for s in sign_ins if s.source_ip]
        known = await store.known_addresses(session, [s.user_id for s in with_address])
        drafts = []
        for event in with_address:
            seen = known.setdefault(event.user_id, set())
            if seen and event.source_ip not in seen:
                drafts.append(domain.signed_in_from_new_address(event))
            seen.add(event.source_ip)
        await store.save_addresses(session, ((s.user_id, s.source_ip) for s in with_address))
        return drafts

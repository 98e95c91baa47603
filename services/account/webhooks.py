"""Payment and KYC webhooks (WebhookService contract): authenticate, parse, apply exactly once.

Order of checks: provider known (NOT_FOUND), source address, signature, freshness
(`webhook_auth`), body shape; then, in one transaction, the (provider, event_id) row is claimed
(a redelivery finds it and answers DUPLICATE) and the event applied: a ledger entry or a
withdrawal or KYC status change, its outbox event and an audit record. A provider report that
conflicts with our state (a REJECTED withdrawal reported completed) is recorded in its own
transaction, logged for staff, and answered FAILED_PRECONDITION.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import Final

import grpc.aio
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.account import audit
from services.account import convert
from services.account import events
from services.account import store
from services.account import withdrawals
from services.account.domain import Reason
from services.account.domain import WithdrawalAction
from services.account.domain import WithdrawalStatus
from services.account.domain import parse_amount
from services.account.domain import withdrawal_action
from services.account.store import accounts as account_store
from services.account.store import ledger
from services.account.store import webhooks as webhook_store
from services.account.store import withdrawals as withdrawal_store
from services.account.webhook_auth import SIGNATURE_HEADER
from services.account.webhook_auth import Provider
from services.account.webhook_auth import check_source
from services.account.webhook_auth import verify_signature
from services.account.webhook_bodies import KycEvent
from services.account.webhook_bodies import PaymentEvent
from services.account.webhook_bodies import bad_field
from services.account.webhook_bodies import parse_kyc
from services.account.webhook_bodies import parse_payment
from services.platform.errors import DomainError
from services.platform.identity import Caller
from services.platform.resources import Resources
from tradingmesh.account.v1 import account_events_pb2 as ev
from tradingmesh.account.v1.webhook_service_pb2 import WebhookEventOutcome
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.events_pb2 import EventMetadata
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.common.v1.types_pb2 import ActorKind

__all__ = ["WebhookReceiver"]

_R = ErrorReason
_O = WebhookEventOutcome
_log = logging.getLogger(__name__)
# Refusals that a re-read provider configuration may turn around.
_STALE_CONFIG: Final = (
    ErrorReason.ERROR_REASON_NOT_FOUND,
    ErrorReason.ERROR_REASON_WEBHOOK_SIGNATURE_INVALID,
)


class WebhookReceiver:
    """Authenticates and applies webhook events.

    `providers` come from Vault at start. A rotated key or a new provider takes effect without
    a restart: when a call names a provider not known here or its signature matches none of
    the keys held, the configuration is read again from Vault (`reload`, at most once per
    `RELOAD_SECONDS`) and the call checked against it before it is refused."""

    RELOAD_SECONDS: Final = 10.0

    def __init__(
        self,
        resources: Resources,
        providers: Mapping[str, Provider],
        reload: Callable[[], Mapping[str, Provider]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resources = resources
        self._providers = dict(providers)
        self._reload = reload
        self._clock = clock
        self._reloaded_at: float | None = None

    async def _refreshed(self) -> bool:
        """Reads the providers again unless that happened less than RELOAD_SECONDS ago; True
        if it read them."""
        now = self._clock()
        if self._reload is None or (
            self._reloaded_at is not None and now - self._reloaded_at < self.RELOAD_SECONDS
        ):
            return False
        self._reloaded_at = now
        try:
            self._providers = dict(await asyncio.to_thread(self._reload))
        except Exception:
            _log.exception("re-reading the webhook providers failed; keeping the ones held")
            return False
        _log.info("webhook providers re-read", extra={"providers": len(self._providers)})
        return True

    def _check(
        self, kind: str, provider_name: str, headers: list[str], body: bytes, client_ip: str
    ) -> Provider:
        """The call's provider, if the call passes its allow-list and signature."""
        provider = self._providers.get(provider_name)
        if provider is None or provider.kind != kind:
            raise DomainError(
                _R.ERROR_REASON_NOT_FOUND,
                f"no {kind} provider named {provider_name}",
                metadata={"provider": provider_name},
            )
        check_source(provider, client_ip)
        verify_signature(provider, headers, body, time.time())
        return provider

    async def _authenticate(
        self, kind: str, provider_name: str, headers: list[str], body: bytes, client_ip: str
    ) -> Provider:
        """`_check`, and once more after re-reading the providers when the configuration held
        may be out of date (an unknown provider, or a signature no held key matches)."""
        try:
            return self._check(kind, provider_name, headers, body, client_ip)
        except DomainError as error:
            if error.reason not in _STALE_CONFIG or not await self._refreshed():
                raise
        return self._check(kind, provider_name, headers, body, client_ip)

    async def receive(
        self,
        kind: str,
        provider_name: str,
        body: bytes,
        context: grpc.aio.ServicerContext[Any, Any],
        caller: Caller,
    ) -> tuple[str, WebhookEventOutcome.ValueType]:
        metadata = context.invocation_metadata() or ()
        headers = [str(v) for k, v in metadata if k == SIGNATURE_HEADER]
        provider = await self._authenticate(kind, provider_name, headers, body, caller.client_ip)
        actor = Actor(kind=ActorKind.ACTOR_KIND_PROVIDER, id=provider.name)
        event: PaymentEvent | KycEvent = (
            parse_payment(body) if kind == "payment" else parse_kyc(body)
        )
        try:
            async with self._resources.db.transaction() as session:
                if not await self._record(session, kind, provider, event, body, "RECEIVED"):
                    return event.event_id, _O.WEBHOOK_EVENT_OUTCOME_DUPLICATE
                applying = _Applying(session, provider, actor, caller)
                if isinstance(event, PaymentEvent):
                    applied = await _apply_payment(applying, event)
                else:
                    applied = await _apply_kyc(applying, event)
                outcome = (
                    _O.WEBHOOK_EVENT_OUTCOME_APPLIED
                    if applied
                    else _O.WEBHOOK_EVENT_OUTCOME_IGNORED
                )
                await webhook_store.set_event_outcome(
                    session,
                    provider=provider.name,
                    event_id=event.event_id,
                    outcome=WebhookEventOutcome.Name(outcome),
                )
        except DomainError as error:
            if error.reason == _R.ERROR_REASON_INVALID_STATE:
                await self._record_conflict(kind, provider, event, body, error)
            raise
        return event.event_id, outcome

    @staticmethod
    async def _record(
        session: AsyncSession,
        kind: str,
        provider: Provider,
        event: PaymentEvent | KycEvent,
        body: bytes,
        outcome: str,
    ) -> bool:
        """Records the event once (`webhook_store.record_event`); False for a redelivery."""
        return await webhook_store.record_event(
            session,
            provider=provider.name,
            event_id=event.event_id,
            kind=kind,
            outcome=outcome,
            body=body.decode(),
            occurred_at=event.occurred_at,
        )

    async def _record_conflict(
        self,
        kind: str,
        provider: Provider,
        event: PaymentEvent | KycEvent,
        body: bytes,
        error: DomainError,
    ) -> None:
        async with self._resources.db.transaction() as session:
            await self._record(session, kind, provider, event, body, "CONFLICT")
        _log.error(
            "webhook event conflicts with the platform's state; reconcile by hand",
            extra={"provider": provider.name, "event_id": event.event_id, "error": error.message},
        )


@dataclass(frozen=True)
class _Applying:
    """What applying one provider event works with: the transaction that recorded it, the
    provider, the provider as the change's actor, and the call (correlation id, address)."""

    session: AsyncSession
    provider: Provider
    actor: Actor
    caller: Caller

    def metadata(self) -> EventMetadata:
        """The metadata of an event the provider's change publishes."""
        return events.metadata(self.actor, correlation_id=self.caller.request_id)

    async def emit(self, subject: str, event: Message) -> None:
        await events.emit(self.session, subject, event)

    async def audit(self, action: str, resource_id: str, after: Mapping[str, Any]) -> None:
        """The audit record of a payment event applied (`resource_id` "provider/event_id")."""
        await audit.append_audit_record(
            self.session,
            actor=self.actor,
            action=action,
            entity_type="payment_event",
            entity_id=resource_id,
            before=None,
            after=after,
            correlation_id=self.caller.request_id,
            source_ip=self.caller.client_ip,
        )


async def _apply_payment(at: _Applying, event: PaymentEvent) -> bool:
    if event.type == "deposit":
        return await _apply_deposit(at, event)
    return await _apply_withdrawal(at, event)


async def _apply_deposit(at: _Applying, event: PaymentEvent) -> bool:
    account = await account_store.account_by_number(at.session, event.account_number)
    if account is None:
        raise DomainError(
            _R.ERROR_REASON_NOT_FOUND,
            f"no trading account numbered {event.account_number}",
            metadata={"account_number": event.account_number},
        )
    currency = account["currency"].strip()
    _check_currency(event.currency, currency)
    amount = parse_amount(event.amount, currency, "amount", positive=True)
    if event.status != "completed":
        return False
    posted = await ledger.post(
        at.session,
        account_id=account["id"],
        reason=Reason.DEPOSIT,
        amount=amount,
        reference_type="payment_event",
        reference_id=f"{at.provider.name}:{event.event_id}",
        actor=at.actor,
        description=f"Deposit via {at.provider.name}",
        references=ledger.References(provider_event_id=event.event_id),
        correlation_id=at.caller.request_id,
    )
    await at.audit(
        "payment_event.apply",
        f"{at.provider.name}/{event.event_id}",
        {"type": "deposit", "ledger_entry": convert.snapshot(posted.entry)},
    )
    return True


async def _apply_withdrawal(at: _Applying, event: PaymentEvent) -> bool:
    session = at.session
    withdrawal_id = store.as_uuid(event.reference)
    row = (
        None
        if withdrawal_id is None
        else await withdrawal_store.locked_withdrawal(session, withdrawal_id)
    )
    if row is None:
        raise DomainError(
            _R.ERROR_REASON_NOT_FOUND,
            f"no withdrawal {event.reference}",
            metadata={"reference": event.reference},
        )
    account = await store.require_account_row(session, str(row["account_id"]))
    currency = account["currency"].strip()
    _check_currency(event.currency, currency)
    amount = parse_amount(event.amount, currency, "amount", positive=True)
    if account["account_number"] != event.account_number or amount != row["amount"]:
        raise bad_field("the amount or account differs from the withdrawal referenced", "reference")
    action = withdrawal_action(WithdrawalStatus(row["status"]), event.status)
    before = convert.withdrawal(row)
    if action is WithdrawalAction.IGNORE:
        return False
    if action is WithdrawalAction.FAIL:
        after = await withdrawals.reverse_withdrawal(
            session,
            row,
            actor=at.actor,
            reason=event.reason or "The payment provider failed the payout",
            correlation_id=at.caller.request_id,
            provider_event_id=event.event_id,
        )
    else:
        status = (
            WithdrawalStatus.PROCESSING
            if action is WithdrawalAction.TO_PROCESSING
            else WithdrawalStatus.COMPLETED
        )
        after = convert.withdrawal(
            await webhook_store.set_payout_status(session, row["id"], status.value)
        )
        if status is WithdrawalStatus.COMPLETED:
            await at.emit(
                "account.withdrawal.completed",
                ev.WithdrawalCompleted(
                    metadata=at.metadata(),
                    withdrawal=after,
                    **withdrawals.withdrawal_event_fields(account),
                ),
            )
    await at.audit(
        "payment_event.apply",
        f"{at.provider.name}/{event.event_id}",
        {"type": "withdrawal", "before": convert.snapshot(before)}
        | {"after": convert.snapshot(after)},
    )
    return True


async def _apply_kyc(at: _Applying, event: KycEvent) -> bool:
    session = at.session
    row = await store.require_user_row(session, event.user_id, lock=True)
    status = event.status.upper()
    last = row["kyc_event_time"]
    if (last is not None and event.occurred_at < last) or row["kyc_status"] == status:
        return False
    before = convert.user(row)
    user = convert.user(
        await webhook_store.set_kyc_status(session, row["id"], status, event.occurred_at)
    )
    await at.emit(
        "account.user.kyc_status_changed",
        ev.KycStatusChanged(
            metadata=at.metadata(),
            user=user,
            previous_kyc_status=before.kyc_status,
            provider=at.provider.name,
            provider_event_id=event.event_id,
            reason=event.reason,
        ),
    )
    await audit.append_audit_record(
        session,
        actor=at.actor,
        action="user.kyc_status_change",
        entity_type="user",
        entity_id=user.id,
        before=convert.snapshot(before),
        after=convert.snapshot(user),
        correlation_id=at.caller.request_id,
        source_ip=at.caller.client_ip,
    )
    return True


def _check_currency(given: str, account_currency: str) -> None:
    if given != account_currency:
        raise DomainError(
            _R.ERROR_REASON_CURRENCY_MISMATCH,
            f"the account's currency is {account_currency}, not {given}",
            metadata={"currency": given, "account_currency": account_currency},
        )

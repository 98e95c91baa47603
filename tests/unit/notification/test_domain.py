"""The notification service's pure rules: what each event says, the margin-call throttle and the
email back-off (services/notification/domain.py)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from services.notification import domain
from services.notification.domain import Draft
from services.notification.domain import MarginCallState
from services.notification.domain import RetryPolicy
from services.platform.errors import DomainError
from tradingmesh.account.v1 import account_events_pb2 as account_events
from tradingmesh.account.v1 import account_pb2
from tradingmesh.common.v1 import errors_pb2
from tradingmesh.common.v1 import ledger_pb2
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.events_pb2 import EventMetadata
from tradingmesh.notification.v1.notification_pb2 import NotificationKind
from tradingmesh.notification.v1.notification_pb2 import NotificationSeverity
from tradingmesh.oms.v1 import oms_events_pb2 as oms_events
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.risk.v1 import risk_events_pb2 as risk_events
from tradingmesh.risk.v1 import risk_pb2

K = NotificationKind
S = NotificationSeverity
AT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
ACCOUNT = "6f1c2a1e-2a55-4f7e-9a59-2a7c1b5f8d01"
USER = "0b9d3c4e-1f2a-4b5c-8d6e-7f8091a2b3c4"


def _metadata(event_id: str = "e-1", at: datetime = AT) -> EventMetadata:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return EventMetadata(event_id=event_id, occurred_at=stamp, producer="test")


def _stamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def _order(**values: object) -> oms_pb2.Order:
    base: dict[str, object] = {
        "id": "o-1",
        "account_id": ACCOUNT,
        "symbol": "EURUSD",
        "side": types_pb2.SIDE_BUY,
        "type": trading_pb2.ORDER_TYPE_MARKET,
        "quantity": "1.00",
        "filled_quantity": "0",
    }
    return oms_pb2.Order(**(base | values))  # type: ignore[arg-type]


# ---- events -> notifications -------------------------------------------------------------------


def test_a_fill_is_an_info_notification_of_the_account_with_its_order_and_position() -> None:
    event = oms_events.TradeExecuted(
        metadata=_metadata("fill-1"),
        trade=oms_pb2.Trade(
            id="t-1",
            order_id="o-1",
            account_id=ACCOUNT,
            symbol="EURUSD",
            side=types_pb2.SIDE_BUY,
            quantity="1.00",
            price="1.08524",
            position_id="p-1",
            position_effect=trading_pb2.POSITION_EFFECT_OPEN,
            realized_pnl="0",
        ),
        currency="USD",
    )

    draft = domain.trade_executed(event)

    assert draft.event_id == "fill-1"
    assert (draft.kind, draft.severity) == (
        K.NOTIFICATION_KIND_ORDER_FILLED,
        S.NOTIFICATION_SEVERITY_INFO,
    )
    assert draft.account_id == ACCOUNT
    assert draft.user_id is None
    assert draft.title == "Order filled: buy 1 lot EURUSD"
    assert draft.body == "Your order to buy 1 lot EURUSD was filled at 1.08524."
    assert dict(draft.details) == {
        "order_id": "o-1",
        "trade_id": "t-1",
        "position_id": "p-1",
        "symbol": "EURUSD",
    }
    assert draft.created_at == AT


def test_a_closing_fill_tells_the_realized_pnl_exactly() -> None:
    event = oms_events.TradeExecuted(
        metadata=_metadata(),
        trade=oms_pb2.Trade(
            account_id=ACCOUNT,
            symbol="XAUUSD",
            side=types_pb2.SIDE_SELL,
            quantity="0.25",
            price="2031.15",
            position_effect=trading_pb2.POSITION_EFFECT_CLOSE,
            realized_pnl="-1234.5",
        ),
        currency="USD",
    )

    draft = domain.trade_executed(event)

    assert draft.body == (
        "Your order to sell 0.25 lots XAUUSD was filled at 2031.15. Realized P&L: -1,234.50 USD."
    )


def test_a_rejected_order_is_a_warning_naming_the_reason() -> None:
    order = _order(
        type=trading_pb2.ORDER_TYPE_LIMIT,
        status_reason=errors_pb2.ERROR_REASON_INSUFFICIENT_MARGIN,
    )
    draft = domain.order_rejected(oms_events.OrderRejected(metadata=_metadata(), order=order))

    assert (draft.kind, draft.severity) == (
        K.NOTIFICATION_KIND_ORDER_REJECTED,
        S.NOTIFICATION_SEVERITY_WARNING,
    )
    assert draft.body == ("Your limit order to buy 1 lot EURUSD was rejected: INSUFFICIENT_MARGIN.")
    assert draft.details["reason"] == "INSUFFICIENT_MARGIN"


def test_a_cancelled_order_says_how_much_was_filled() -> None:
    order = _order(quantity="2", filled_quantity="0.5", position_id="p-9")
    draft = domain.order_cancelled(oms_events.OrderCancelled(metadata=_metadata(), order=order))

    assert draft.kind == K.NOTIFICATION_KIND_ORDER_CANCELLED
    assert draft.body == "Your order to buy 2 lots EURUSD was cancelled after 0.5 lots filled."
    assert draft.details["position_id"] == "p-9"


def test_an_expired_order_is_info() -> None:
    order = _order(type=trading_pb2.ORDER_TYPE_STOP)
    draft = domain.order_expired(oms_events.OrderExpired(metadata=_metadata(), order=order))

    assert (draft.kind, draft.severity) == (
        K.NOTIFICATION_KIND_ORDER_EXPIRED,
        S.NOTIFICATION_SEVERITY_INFO,
    )
    assert "stop order to buy 1 lot EURUSD expired" in draft.body


def _risk(figures: dict[str, str]) -> risk_pb2.AccountRisk:
    account_risk = risk_pb2.AccountRisk(currency="USD")
    for name, value in figures.items():
        setattr(account_risk, name, value)
    return account_risk


def _margin_event(kind: type, **risk: str) -> object:
    figures = {"margin_level": "85.20", "margin_call_level": "100", "stop_out_level": "50"}
    return kind(
        metadata=_metadata("m-1"),
        margin_event=risk_pb2.MarginEvent(
            id="me-1",
            account_id=ACCOUNT,
            account_risk=_risk(figures | risk),
            create_time=_stamp(AT),
            closed_position_ids=["p-1", "p-2"],
            closing_order_ids=["o-7", "o-8"],
            realized_pnl="-512.4",
        ),
    )


def test_a_margin_call_is_a_warning_with_the_levels_as_decimal_strings() -> None:
    draft = domain.margin_call(_margin_event(risk_events.MarginCallIssued))  # type: ignore[arg-type]

    assert (draft.kind, draft.severity) == (
        K.NOTIFICATION_KIND_MARGIN_CALL,
        S.NOTIFICATION_SEVERITY_WARNING,
    )
    assert draft.details == {"margin_level": "85.20", "margin_call_level": "100"}
    assert draft.body.startswith(
        "Your account's margin level is 85.2%, below the margin-call level of 100%."
    )
    assert draft.created_at == AT


def test_a_stop_out_is_critical_and_lists_the_closed_positions() -> None:
    draft = domain.stop_out(_margin_event(risk_events.StopOutCompleted, margin_level="61"))  # type: ignore[arg-type]

    assert (draft.kind, draft.severity) == (
        K.NOTIFICATION_KIND_STOP_OUT,
        S.NOTIFICATION_SEVERITY_CRITICAL,
    )
    assert "2 positions were closed; realized P&L -512.40 USD" in draft.body
    assert draft.details["position_ids"] == "p-1,p-2"
    assert draft.details["order_ids"] == "o-7,o-8"


def test_only_a_deposit_entry_of_the_ledger_is_a_notification() -> None:
    def posted(reason: ledger_pb2.LedgerEntryReason.ValueType) -> account_events.LedgerEntryPosted:
        return account_events.LedgerEntryPosted(
            metadata=_metadata(),
            entry=account_pb2.LedgerEntry(
                id="le-1",
                account_id=ACCOUNT,
                reason=reason,
                amount="1000",
                currency="USD",
            ),
            balance="1500.5",
            account_number="100042",
        )

    draft = domain.deposit(posted(ledger_pb2.LEDGER_ENTRY_REASON_DEPOSIT))
    other = domain.deposit(posted(ledger_pb2.LEDGER_ENTRY_REASON_COMMISSION))

    assert other is None
    assert draft is not None
    assert draft.kind == K.NOTIFICATION_KIND_DEPOSIT_COMPLETED
    assert draft.body == "1,000.00 USD was credited to account 100042. Balance: 1,500.50 USD."
    assert draft.details == {"ledger_entry_id": "le-1", "amount": "1000", "currency": "USD"}


def test_withdrawals_paid_and_rejected() -> None:
    withdrawal = account_pb2.Withdrawal(
        id="w-1", account_id=ACCOUNT, amount="250.5", currency="EUR", rejection_reason="bank"
    )
    paid = domain.withdrawal_completed(
        account_events.WithdrawalCompleted(
            metadata=_metadata(), withdrawal=withdrawal, account_number="7"
        )
    )
    refused = domain.withdrawal_rejected(
        account_events.WithdrawalRejected(
            metadata=_metadata(), withdrawal=withdrawal, account_number="7"
        )
    )

    assert paid.kind == K.NOTIFICATION_KIND_WITHDRAWAL_COMPLETED
    assert paid.body == "Your withdrawal of 250.50 EUR from account 7 was paid out."
    assert refused.severity == S.NOTIFICATION_SEVERITY_WARNING
    assert "was rejected: bank. The amount was credited back." in refused.body


def test_kyc_changes_are_about_the_user_and_a_rejection_is_a_warning() -> None:
    def changed(status: int) -> Draft:
        user = account_pb2.User(id=USER, kyc_status=status)  # type: ignore[arg-type]
        return domain.kyc_changed(
            account_events.KycStatusChanged(metadata=_metadata(), user=user, reason="blurry")
        )

    approved, rejected = (
        changed(account_pb2.KYC_STATUS_APPROVED),
        changed(account_pb2.KYC_STATUS_REJECTED),
    )

    assert approved.user_id == USER
    assert approved.account_id is None
    assert approved.severity == S.NOTIFICATION_SEVERITY_INFO
    assert approved.details == {"kyc_status": "APPROVED"}
    assert rejected.severity == S.NOTIFICATION_SEVERITY_WARNING
    assert rejected.body.endswith("Reason: blurry.")


def test_token_reuse_is_critical_and_an_ordinary_logout_is_not_a_notification() -> None:
    reasons = account_events.TokenFamilyRevokeReason

    def revoked(reason: account_events.TokenFamilyRevokeReason.ValueType) -> Draft | None:
        return domain.token_family_revoked(
            account_events.TokenFamilyRevoked(
                metadata=_metadata(),
                user_id=USER,
                reason=reason,
                source_ip="203.0.113.9",
            )
        )

    reuse = revoked(reasons.TOKEN_FAMILY_REVOKE_REASON_REUSE_DETECTED)

    assert revoked(reasons.TOKEN_FAMILY_REVOKE_REASON_LOGOUT) is None
    assert reuse is not None
    assert (reuse.kind, reuse.severity) == (
        K.NOTIFICATION_KIND_SECURITY,
        S.NOTIFICATION_SEVERITY_CRITICAL,
    )
    assert reuse.details == {"event": "token_family_revoked", "source_ip": "203.0.113.9"}


def test_a_sign_in_from_a_new_address_names_it() -> None:
    draft = domain.signed_in_from_new_address(
        account_events.UserSignedIn(metadata=_metadata(), user_id=USER, source_ip="198.51.100.4")
    )

    assert draft.kind == K.NOTIFICATION_KIND_SECURITY
    assert draft.details == {"event": "new_address_sign_in", "source_ip": "198.51.100.4"}
    assert "198.51.100.4" in draft.body


def test_titles_and_bodies_are_clipped_to_the_contract() -> None:
    order = _order(status_message="x" * 5000, symbol="EURUSD")
    draft = domain.order_rejected(oms_events.OrderRejected(metadata=_metadata(), order=order))

    assert len(draft.body) == domain.BODY_MAX
    assert draft.body.endswith("…")


# ---- the margin-call throttle ----------------------------------------------------------------


def _call(at: datetime, kind: int = K.NOTIFICATION_KIND_MARGIN_CALL) -> Draft:
    return Draft(
        event_id=f"{kind}-{at.isoformat()}",
        kind=kind,  # type: ignore[arg-type]
        severity=S.NOTIFICATION_SEVERITY_WARNING,
        title="t",
        body="b",
        created_at=at,
        account_id=ACCOUNT,
    )


INTERVAL = timedelta(minutes=5)


def test_a_burst_of_margin_calls_is_notified_once_per_interval() -> None:
    burst = [_call(AT + timedelta(seconds=s)) for s in (0, 5, 30, 299, 300, 301, 599, 600)]

    passed, after = domain.throttle_batch({}, burst, INTERVAL)

    assert [d.created_at - AT for d in passed] == [
        timedelta(0),
        timedelta(seconds=300),
        timedelta(seconds=600),
    ]
    assert after[ACCOUNT] == MarginCallState(AT + timedelta(seconds=600), True)


def test_the_throttle_remembers_the_last_call_across_batches() -> None:
    states = {ACCOUNT: MarginCallState(AT, True)}

    passed, after = domain.throttle_batch(states, [_call(AT + timedelta(seconds=60))], INTERVAL)

    assert passed == []
    assert after[ACCOUNT] == MarginCallState(AT, True)


def test_a_resolution_is_notified_only_for_an_open_notified_call() -> None:
    resolved = K.NOTIFICATION_KIND_MARGIN_CALL_RESOLVED
    events = [
        _call(AT + timedelta(seconds=1), resolved),  # no call before: not told
        _call(AT + timedelta(seconds=2)),  # told
        _call(AT + timedelta(seconds=3), resolved),  # told
        _call(AT + timedelta(seconds=4)),  # within the interval: not told
        _call(AT + timedelta(seconds=5), resolved),  # its call was not told: not told either
    ]

    passed, after = domain.throttle_batch({}, events, INTERVAL)

    assert [(d.kind, d.created_at.second) for d in passed] == [
        (K.NOTIFICATION_KIND_MARGIN_CALL, 2),
        (resolved, 3),
    ]
    assert after[ACCOUNT] == MarginCallState(AT + timedelta(seconds=2), False)


def test_a_zero_interval_tells_every_margin_call() -> None:
    calls = [_call(AT), _call(AT), _call(AT + timedelta(seconds=1))]

    passed, _ = domain.throttle_batch({}, calls, timedelta(0))

    assert len(passed) == 3


# ---- email back-off ------------------------------------------------------------------------


def test_the_back_off_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(base=timedelta(seconds=1), cap=timedelta(seconds=20), max_attempts=6)

    assert [policy.delay(n).total_seconds() for n in range(1, 8)] == [1, 2, 4, 8, 16, 20, 20]
    assert policy.delay(10_000) == timedelta(seconds=20)


@pytest.mark.parametrize(("attempts", "status"), [(1, "PENDING"), (5, "PENDING"), (6, "DEAD")])
def test_a_delivery_is_dead_after_its_last_attempt(attempts: int, status: str) -> None:
    assert RetryPolicy(max_attempts=6).after_failure(attempts) == status


def test_every_kind_but_unspecified_has_a_setting_and_email_is_required_for_two() -> None:
    assert K.NOTIFICATION_KIND_UNSPECIFIED not in domain.ALL_KINDS
    assert len(domain.ALL_KINDS) == len(K.values()) - 1
    assert {K.NOTIFICATION_KIND_STOP_OUT, K.NOTIFICATION_KIND_SECURITY} == domain.EMAIL_REQUIRED
    assert domain.kind_of(domain.kind_name(K.NOTIFICATION_KIND_ORDER_FILLED)) == (
        K.NOTIFICATION_KIND_ORDER_FILLED
    )


# ---- preferences ----------------------------------------------------------------------------


def test_email_switches_are_read_by_kind_name() -> None:
    changes = domain.email_switches(
        [(K.NOTIFICATION_KIND_ORDER_FILLED, True), (K.NOTIFICATION_KIND_DEPOSIT_COMPLETED, False)]
    )

    assert changes == {"ORDER_FILLED": True, "DEPOSIT_COMPLETED": False}


def test_switching_off_an_always_mailed_kind_is_refused_naming_each_switch() -> None:
    with pytest.raises(DomainError) as refused:
        domain.email_switches(
            [
                (K.NOTIFICATION_KIND_ORDER_FILLED, False),
                (K.NOTIFICATION_KIND_STOP_OUT, False),
                (K.NOTIFICATION_KIND_SECURITY, False),
            ]
        )

    assert refused.value.reason == errors_pb2.ERROR_REASON_VALIDATION_FAILED
    assert [v.field for v in refused.value.field_violations] == [
        "preferences.kinds[1].email_enabled",
        "preferences.kinds[2].email_enabled",
    ]

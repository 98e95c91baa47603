"""What the notification consumers collect from envelopes' events (services/notification/
events.py): the handlers decode and collect, without a statement; the writing is the store's."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from services.notification.events import FOLLOWED
from services.notification.events import Batch
from services.notification.events import Notifier
from services.platform.envelope import Event
from services.platform.inbox import UndeliverableError
from tradingmesh.account.v1 import account_events_pb2 as account_events
from tradingmesh.account.v1 import account_pb2
from tradingmesh.common.v1 import ledger_pb2
from tradingmesh.common.v1.events_pb2 import EventMetadata
from tradingmesh.notification.v1.notification_pb2 import NotificationKind
from tradingmesh.oms.v1 import oms_events_pb2
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.risk.v1 import risk_events_pb2
from tradingmesh.risk.v1 import risk_pb2

K = NotificationKind
ACCOUNT = "6f1c2a1e-2a55-4f7e-9a59-2a7c1b5f8d01"
USER = "0b9d3c4e-1f2a-4b5c-8d6e-7f8091a2b3c4"


def _collect(*events: tuple[str, Any]) -> Batch:
    session = SimpleNamespace(info={})
    notifier = Notifier(margin_call_interval=timedelta(0), announce=print)

    async def apply() -> None:
        for subject, message in events:
            await notifier.handle(session, Event(subject, message.SerializeToString()))  # type: ignore[arg-type]

    asyncio.run(apply())
    batch = session.info["notification_batch"]
    assert isinstance(batch, Batch)
    return batch


def test_fills_and_deposits_become_drafts_and_margin_calls_wait_for_the_throttle() -> None:
    batch = _collect(
        (
            "oms.trade.executed",
            oms_events_pb2.TradeExecuted(
                metadata=EventMetadata(event_id="f"),
                trade=oms_pb2.Trade(account_id=ACCOUNT, quantity="1", symbol="EURUSD"),
            ),
        ),
        (
            "account.ledger_entry.posted",
            account_events.LedgerEntryPosted(
                metadata=EventMetadata(event_id="d"),
                entry=account_pb2.LedgerEntry(
                    account_id=ACCOUNT,
                    reason=ledger_pb2.LEDGER_ENTRY_REASON_DEPOSIT,
                    amount="5",
                    currency="USD",
                ),
            ),
        ),
        (
            "account.ledger_entry.posted",  # not a deposit: nothing to tell
            account_events.LedgerEntryPosted(
                metadata=EventMetadata(event_id="c"),
                entry=account_pb2.LedgerEntry(
                    account_id=ACCOUNT, reason=ledger_pb2.LEDGER_ENTRY_REASON_COMMISSION
                ),
            ),
        ),
        (
            "risk.account.margin_call_issued",
            risk_events_pb2.MarginCallIssued(
                metadata=EventMetadata(event_id="m"),
                margin_event=risk_pb2.MarginEvent(account_id=ACCOUNT),
            ),
        ),
    )

    assert [(d.event_id, d.kind) for d in batch.drafts] == [
        ("f", K.NOTIFICATION_KIND_ORDER_FILLED),
        ("d", K.NOTIFICATION_KIND_DEPOSIT_COMPLETED),
    ]
    assert [d.event_id for d in batch.margin] == ["m"]


def test_account_events_feed_the_copies_of_users_and_accounts() -> None:
    user = account_pb2.User(
        id=USER,
        email="ann@example.test",
        display_name="Ann",
        status=account_pb2.USER_STATUS_ACTIVE,
        kyc_status=account_pb2.KYC_STATUS_APPROVED,
    )
    batch = _collect(
        ("account.user.created", account_events.UserCreated(user=user)),
        (
            "account.user.kyc_status_changed",
            account_events.KycStatusChanged(metadata=EventMetadata(event_id="k"), user=user),
        ),
        (
            "account.trading_account.created",
            account_events.TradingAccountCreated(
                account=account_pb2.TradingAccount(
                    id=ACCOUNT, user_id=USER, account_number="100042", currency="USD"
                )
            ),
        ),
        (
            "account.user.signed_in",
            account_events.UserSignedIn(user_id=USER, source_ip="198.51.100.4"),
        ),
    )

    assert batch.users == {
        USER: {"id": USER, "email": "ann@example.test", "display_name": "Ann", "status": "ACTIVE"}
    }
    assert batch.accounts[ACCOUNT]["user_id"] == USER
    assert [d.kind for d in batch.drafts] == [K.NOTIFICATION_KIND_KYC_STATUS_CHANGED]
    assert [s.source_ip for s in batch.sign_ins] == ["198.51.100.4"]


def test_an_event_that_does_not_decode_is_undeliverable() -> None:
    session = SimpleNamespace(info={})
    notifier = Notifier(margin_call_interval=timedelta(0), announce=print)

    with pytest.raises(UndeliverableError):
        asyncio.run(notifier.handle(session, Event("oms.trade.executed", b"\xff\xff")))  # type: ignore[arg-type]


def test_the_consumers_follow_only_what_they_apply() -> None:
    assert "oms.order.created" not in FOLLOWED
    assert "oms.trade.executed" in FOLLOWED
    assert "account.user.signed_in" in FOLLOWED

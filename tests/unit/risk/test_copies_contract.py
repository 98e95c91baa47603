"""Risk's copies skip an event that breaks its contract, as the OMS's do (platform/copies.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.platform.copies import AccountCopy, version_of
from services.platform.inbox import UndeliverableError
from services.risk.copies import _copy
from tradingmesh.account.v1 import account_events_pb2, account_pb2
from tradingmesh.common.v1 import events_pb2, types_pb2

ACCOUNT = account_pb2.TradingAccount(
    id="a1",
    user_id="u1",
    group_id="g1",
    currency="USD",
    status=account_pb2.TRADING_ACCOUNT_STATUS_ACTIVE,
    position_mode=types_pb2.POSITION_MODE_NETTING,
)


def test_an_account_event_is_ordered_by_when_it_occurred() -> None:
    event = account_events_pb2.TradingAccountCreated(account=ACCOUNT)
    event.metadata.occurred_at.FromDatetime(datetime(2026, 12, 7, 10, 0, tzinfo=UTC))
    assert _copy(version_of, event) == version_of(event) > 0
    assert _copy(AccountCopy.of, event.account).account_id == "a1"


def test_an_account_event_without_occurred_at_is_skipped_not_stored_as_version_zero() -> None:
    event = account_events_pb2.TradingAccountCreated(
        account=ACCOUNT, metadata=events_pb2.EventMetadata(event_id="e1")
    )
    with pytest.raises(UndeliverableError, match="occurred_at"):
        _copy(version_of, event)


def test_an_account_without_its_owner_is_skipped() -> None:
    account = account_pb2.TradingAccount()
    account.CopyFrom(ACCOUNT)
    account.user_id = ""
    with pytest.raises(UndeliverableError):
        _copy(AccountCopy.of, account)

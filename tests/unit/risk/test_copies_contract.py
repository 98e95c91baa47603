"""Risk's copies skip an event that breaks its contract, as the OMS's do (platform/copies.py)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

import pytest

from services.platform.copies import version_of
from services.platform.inbox import UndeliverableError
from services.risk.copies import _copy
from tradingmesh.account.v1 import account_events_pb2
from tradingmesh.common.v1 import events_pb2


def test_an_account_event_is_ordered_by_when_it_occurred() -> None:
    event = account_events_pb2.TradingAccountStatusChanged()
    event.metadata.occurred_at.FromDatetime(datetime(2026, 12, 7, 10, 0, tzinfo=UTC))
    assert _copy(version_of, event) == version_of(event) > 0


def test_an_account_event_without_occurred_at_is_skipped_not_stored_as_version_zero() -> None:
    event = account_events_pb2.TradingAccountStatusChanged(
        metadata=events_pb2.EventMetadata(event_id="e1")
    )
    with pytest.raises(UndeliverableError, match="occurred_at"):
        _copy(version_of, event)

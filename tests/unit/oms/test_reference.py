"""Account and pricing events become the OMS's copies: which statement, which values."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from services.oms.feeds.reference import SUBJECTS
from services.oms.feeds.reference import decode
from services.oms.feeds.reference import upsert_of
from tests.messages import fx_instrument
from tests.messages import index_instrument
from tradingmesh.account.v1 import account_events_pb2
from tradingmesh.account.v1 import account_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.events_pb2 import EventMetadata
from tradingmesh.pricing.v1 import pricing_events_pb2
from tradingmesh.pricing.v1 import pricing_pb2

GROUP = "3f7c2d1e-1b2a-4c3d-8e9f-0a1b2c3d4e5f"
ACCOUNT = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
USER = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


def meta(micros: int = 1_700_000_000_000_000, version: int = 0) -> EventMetadata:
    m = EventMetadata(event_id="e0e0e0e0-0000-4000-8000-000000000001", aggregate_version=version)
    m.occurred_at.FromMicroseconds(micros)
    return m


def test_a_created_account_is_copied_with_its_owner_group_and_mode() -> None:
    event = account_events_pb2.TradingAccountCreated(
        metadata=meta(),
        account=account_pb2.TradingAccount(
            id=ACCOUNT,
            user_id=USER,
            group_id=GROUP,
            currency="USD",
            position_mode=types_pb2.POSITION_MODE_HEDGING,
            status=account_pb2.TRADING_ACCOUNT_STATUS_ACTIVE,
        ),
    )
    statement, params = upsert_of(event)
    assert "INSERT INTO oms.accounts" in statement
    assert "oms.accounts.version < EXCLUDED.version" in statement
    assert params == {
        "account_id": ACCOUNT,
        "user_id": USER,
        "group_id": GROUP,
        "currency": "USD",
        "status": "ACTIVE",
        "position_mode": "HEDGING",
        "version": 1_700_000_000_000_000,
    }


def test_a_status_change_carries_the_new_status() -> None:
    event = account_events_pb2.TradingAccountStatusChanged(
        metadata=meta(micros=1_700_000_000_000_001),
        account=account_pb2.TradingAccount(
            id=ACCOUNT,
            user_id=USER,
            group_id=GROUP,
            currency="USD",
            position_mode=types_pb2.POSITION_MODE_NETTING,
            status=account_pb2.TRADING_ACCOUNT_STATUS_CLOSE_ONLY,
        ),
    )
    _, params = upsert_of(event)
    assert params["status"] == "CLOSE_ONLY"
    assert params["version"] == 1_700_000_000_000_001


def test_a_group_keeps_its_execution_and_commission_terms() -> None:
    event = account_events_pb2.ClientGroupChanged(
        metadata=meta(),
        client_group=account_pb2.ClientGroup(
            id=GROUP,
            name="instant-usd",
            currency="USD",
            leverage=100,
            margin_call_level="100",
            stop_out_level="50",
            execution_mode=types_pb2.EXECUTION_MODE_INSTANT,
            position_mode=types_pb2.POSITION_MODE_NETTING,
            commission_per_lot="3.50",
            max_deviation_points=20,
        ),
    )
    statement, params = upsert_of(event)
    assert "INSERT INTO oms.groups" in statement
    assert params["execution_mode"] == "INSTANT"
    assert params["commission_per_lot"] == Decimal("3.50")
    assert params["max_deviation_points"] == 20
    assert params["leverage"] == 100


def test_instrument_settings_fall_back_to_the_group_where_unset() -> None:
    event = account_events_pb2.GroupInstrumentSettingsChanged(
        metadata=meta(),
        settings=account_pb2.GroupInstrumentSettings(
            group_id=GROUP, symbol="EURUSD", enabled=True, commission_per_lot="1.25"
        ),
    )
    _, params = upsert_of(event)
    assert params["enabled"] is True
    assert params["commission_per_lot"] == Decimal("1.25")
    assert params["execution_mode"] is None  # the group's applies
    assert params["max_deviation_points"] is None
    assert params["margin_rate"] is None


def test_an_instrument_is_copied_with_its_row_version_and_sessions() -> None:
    instrument = fx_instrument(
        trading_status=pricing_pb2.TRADING_STATUS_HALTED,
        sessions=[
            pricing_pb2.TradingSession(
                day=pricing_pb2.DAY_OF_WEEK_MONDAY, start_minute=60, end_minute=1320
            )
        ],
    )
    event = pricing_events_pb2.InstrumentUpdated(metadata=meta(version=7), instrument=instrument)
    statement, params = upsert_of(event)
    assert "INSERT INTO oms.instruments" in statement
    assert params["version"] == 7
    assert params["trading_status"] == "HALTED"
    assert params["contract_size"] == Decimal("100000")
    assert json.loads(params["sessions"]) == [
        {"day": "MONDAY", "start_minute": 60, "end_minute": 1320}
    ]


def test_an_instrument_without_a_base_currency_is_copied() -> None:
    index = index_instrument("US500")
    _, params = upsert_of(pricing_events_pb2.InstrumentCreated(metadata=meta(), instrument=index))
    assert (params["base_currency"], params["quote_currency"]) == ("", "USD")


def test_events_lacking_what_a_copy_needs_break_their_contract() -> None:
    with pytest.raises(ValueError, match="account"):
        upsert_of(account_events_pb2.TradingAccountCreated(metadata=meta()))
    with pytest.raises(ValueError, match="group"):
        upsert_of(account_events_pb2.ClientGroupChanged(metadata=meta()))
    with pytest.raises(ValueError, match="instrument"):
        upsert_of(pricing_events_pb2.InstrumentCreated(metadata=meta()))


def test_decode_skips_other_subjects_and_refuses_garbage() -> None:
    assert decode("account.user.created", b"") is None
    with pytest.raises(ValueError, match="not a"):
        decode("account.client_group.changed", b"\xff\xff\xff")
    with pytest.raises(ValueError, match="without an id"):
        decode(
            "account.client_group.changed",
            account_events_pb2.ClientGroupChanged().SerializeToString(),
        )


def test_every_subject_has_an_upsert() -> None:
    assert set(SUBJECTS) == {
        "account.trading_account.created",
        "account.trading_account.status_changed",
        "account.client_group.changed",
        "account.client_group.instrument_settings_changed",
        "pricing.instrument.created",
        "pricing.instrument.updated",
        "pricing.instrument.trading_status_changed",
    }

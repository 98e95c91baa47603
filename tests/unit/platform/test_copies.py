"""The reference data the services copy from events, read one way (services/platform/copies.py)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from decimal import Decimal

import pytest
from google.protobuf.message import Message

from services.platform.copies import ACCOUNT_SUBJECTS
from services.platform.copies import INSTRUMENT_SUBJECTS
from services.platform.copies import AccountCopy
from services.platform.copies import GroupCopy
from services.platform.copies import GroupInstrumentCopy
from services.platform.copies import InstrumentCopy
from services.platform.copies import columns
from services.platform.copies import copy_of
from services.platform.copies import version_of
from services.platform.schedule import Session
from tradingmesh.account.v1 import account_events_pb2
from tradingmesh.account.v1 import account_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.pricing.v1 import pricing_events_pb2
from tradingmesh.pricing.v1 import pricing_pb2

ACCOUNT = account_pb2.TradingAccount(
    id="a1",
    user_id="u1",
    group_id="g1",
    currency="USD",
    status=account_pb2.TRADING_ACCOUNT_STATUS_ACTIVE,
    position_mode=types_pb2.POSITION_MODE_NETTING,
)
GROUP = account_pb2.ClientGroup(
    id="g1",
    name="Standard",
    currency="USD",
    leverage=100,
    margin_call_level="100",
    stop_out_level="50.0",
    execution_mode=types_pb2.EXECUTION_MODE_STP,
    position_mode=types_pb2.POSITION_MODE_HEDGING,
)


def test_an_account_is_copied_with_its_enums_by_name() -> None:
    assert AccountCopy.of(ACCOUNT) == AccountCopy("a1", "u1", "g1", "USD", "ACTIVE", "NETTING")


@pytest.mark.parametrize("field", ["id", "user_id", "group_id", "status", "position_mode"])
def test_an_account_without_what_every_copy_needs_breaks_its_contract(field: str) -> None:
    broken = account_pb2.TradingAccount()
    broken.CopyFrom(ACCOUNT)
    broken.ClearField(field)  # type: ignore[arg-type]  # one of the literal field names
    with pytest.raises(ValueError, match="lacks its account's ids, status or mode"):
        AccountCopy.of(broken)


def test_a_group_is_copied_with_exact_levels_and_a_zero_commission_when_none() -> None:
    copy = GroupCopy.of(GROUP)

    assert (copy.margin_call_level, copy.stop_out_level) == (Decimal("100"), Decimal("50.0"))
    assert (copy.execution_mode, copy.position_mode) == ("STP", "HEDGING")
    assert (copy.commission_per_lot, copy.max_deviation_points) == (Decimal(0), 0)


def test_a_group_with_a_malformed_level_or_no_mode_breaks_its_contract() -> None:
    malformed = account_pb2.ClientGroup()
    malformed.CopyFrom(GROUP)
    malformed.margin_call_level = "1e2"
    with pytest.raises(ValueError, match="margin_call_level"):
        GroupCopy.of(malformed)
    modeless = account_pb2.ClientGroup()
    modeless.CopyFrom(GROUP)
    modeless.ClearField("execution_mode")
    with pytest.raises(ValueError, match="trading conditions"):
        GroupCopy.of(modeless)


def test_instrument_settings_leave_what_they_do_not_set_as_none() -> None:
    settings = account_pb2.GroupInstrumentSettings(
        group_id="g1", symbol="EURUSD", enabled=True, max_order_size="5"
    )
    assert GroupInstrumentCopy.of(settings) == GroupInstrumentCopy(
        True, None, None, None, Decimal("5"), None, None, group_id="g1", symbol="EURUSD"
    )
    with pytest.raises(ValueError, match="without their group or symbol"):
        GroupInstrumentCopy.of(account_pb2.GroupInstrumentSettings(group_id="g1"))


def test_an_instrument_is_copied_with_its_schedule_and_status() -> None:
    instrument = pricing_pb2.Instrument(
        symbol="US500",
        quote_currency="USD",
        digits=2,
        tick_size="0.01",
        contract_size="1",
        min_lot="0.1",
        max_lot="100",
        lot_step="0.1",
        trading_status=pricing_pb2.TRADING_STATUS_HALTED,
        sessions=[pricing_pb2.TradingSession(day=pricing_pb2.DAY_OF_WEEK_MONDAY, end_minute=60)],
    )
    copy = InstrumentCopy.of(instrument)

    assert (copy.base_currency, copy.margin_rate, copy.halted) == ("", Decimal(0), True)
    assert copy.sessions == (Session(1, 0, 60),)
    assert columns(copy)["sessions"] == '[{"day":"MONDAY","start_minute":0,"end_minute":60}]'
    assert columns(AccountCopy.of(ACCOUNT))["account_id"] == "a1"  # the statements' names
    with pytest.raises(ValueError, match="the symbol or the quote currency"):
        InstrumentCopy.of(pricing_pb2.Instrument(symbol="US500"))


def test_an_event_is_ordered_by_when_it_occurred() -> None:
    event = account_events_pb2.TradingAccountCreated(account=ACCOUNT)
    with pytest.raises(ValueError, match="without occurred_at"):
        version_of(event)
    moment = datetime(2026, 12, 7, 7, 0, 0, 1, tzinfo=UTC)
    event.metadata.occurred_at.FromDatetime(moment)
    assert version_of(event) == int(moment.timestamp()) * 1_000_000 + 1


def test_each_listed_event_carries_its_copy_with_the_version_that_orders_it() -> None:
    moment = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)
    group_changed = account_events_pb2.ClientGroupChanged(client_group=GROUP)
    group_changed.metadata.occurred_at.FromDatetime(moment)
    instrument = pricing_pb2.Instrument(
        symbol="US500", quote_currency="USD", tick_size="0.01", contract_size="1"
    )
    instrument.min_lot = instrument.max_lot = instrument.lot_step = "0.1"
    instrument_updated = pricing_events_pb2.InstrumentUpdated(instrument=instrument)
    instrument_updated.metadata.aggregate_version = 7

    assert copy_of(group_changed) == (GroupCopy.of(GROUP), int(moment.timestamp()) * 1_000_000)
    # Pricing's row version orders an instrument, not the clock.
    assert copy_of(instrument_updated) == (InstrumentCopy.of(instrument), 7)
    assert copy_of(account_events_pb2.LedgerEntryPosted()) is None  # carries no copy
    with pytest.raises(ValueError, match="without occurred_at"):  # cannot be ordered
        copy_of(account_events_pb2.TradingAccountStatusChanged(account=ACCOUNT))


@pytest.mark.parametrize("message", [*ACCOUNT_SUBJECTS.values(), *INSTRUMENT_SUBJECTS.values()])
def test_every_listed_event_is_read_for_its_copy(message: type[Message]) -> None:
    # Read (not None), and empty: it breaks its contract.
    with pytest.raises(ValueError, match=r"without|lacks|symbol"):
        copy_of(message())

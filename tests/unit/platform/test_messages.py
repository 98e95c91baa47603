"""services/platform/messages.py: a contract message from a row by the message's own fields."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from services.platform.messages import from_row
from services.platform.messages import timestamp
from tradingmesh.account.v1 import account_pb2
from tradingmesh.common.v1 import ledger_pb2
from tradingmesh.common.v1 import pricing_pb2 as markups_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.oms.v1 import order_admin_service_pb2
from tradingmesh.pricing.v1 import pricing_pb2

_AT = datetime(2026, 3, 2, 9, 30, 15, 250_000, tzinfo=UTC)
_ID = uuid.UUID("6f1c1d8e-2a0b-4c55-9d7e-0b4a3c2d1e0f")


def _group_row(**changed: Any) -> dict[str, Any]:
    return {
        "group_id": _ID,
        "symbol": "EURUSD",
        "enabled": True,
        "spread_markup_type": None,
        "spread_markup": None,
        "commission_per_lot": None,
        "execution_mode": None,
        "max_deviation_points": None,
        "max_order_size": None,
        "max_position": None,
        "margin_rate": None,
        "updated_at": _AT,
        **changed,
    }


def test_columns_named_as_fields_fill_them_in_their_wire_form() -> None:
    row = _group_row(
        spread_markup_type="PERCENT",
        spread_markup=Decimal("1.500000000000"),
        execution_mode="STP",
        max_deviation_points=20,
    )

    settings = from_row(account_pb2.GroupInstrumentSettings, row)

    assert settings.group_id == str(_ID)
    assert settings.symbol == "EURUSD"
    assert settings.enabled is True
    assert settings.spread_markup_type == markups_pb2.MARKUP_TYPE_PERCENT
    assert settings.spread_markup == "1.5"
    assert settings.execution_mode == types_pb2.EXECUTION_MODE_STP
    assert settings.max_deviation_points == 20


def test_null_columns_leave_their_fields_unset() -> None:
    settings = from_row(account_pb2.GroupInstrumentSettings, _group_row())

    for name in ("spread_markup", "commission_per_lot", "max_deviation_points", "margin_rate"):
        assert not settings.HasField(name), name
    assert settings.spread_markup_type == 0
    assert not settings.HasField("update_time")  # no column of that name; not given


def test_null_uuid_column_is_the_empty_string() -> None:
    entry = from_row(account_pb2.LedgerEntry, {"id": _ID, "order_id": None, "reason": "DEPOSIT"})

    assert entry.id == str(_ID)
    assert entry.order_id == ""
    assert entry.reason == ledger_pb2.LEDGER_ENTRY_REASON_DEPOSIT


def test_given_fields_name_columns_named_otherwise_and_are_converted_alike() -> None:
    row = _group_row()

    settings = from_row(
        account_pb2.GroupInstrumentSettings, row, update_time=row["updated_at"], symbol="GBPUSD"
    )

    assert settings.update_time.ToDatetime(tzinfo=UTC) == _AT
    assert settings.symbol == "GBPUSD"


def test_a_given_none_leaves_the_field_unset_even_with_a_column_of_its_name() -> None:
    settings = from_row(
        account_pb2.GroupInstrumentSettings,
        _group_row(margin_rate=Decimal("0.05")),
        margin_rate=None,
    )

    assert not settings.HasField("margin_rate")


def test_decimal_text_is_plain_without_trailing_zeros_exponent_or_negative_zero() -> None:
    for stored, text in (
        (Decimal("100000.000000000000"), "100000"),
        (Decimal("1E+2"), "100"),
        (Decimal("0.010"), "0.01"),
        (Decimal("-0.00"), "0"),
        (Decimal("-2.50"), "-2.5"),
    ):
        group = from_row(account_pb2.ClientGroup, {"spread_markup": stored})
        assert group.spread_markup == text, stored


def test_repeated_fields_convert_each_item_and_given_messages_are_taken() -> None:
    who = types_pb2.Actor(kind=types_pb2.ACTOR_KIND_OPERATOR, id="ops-1")

    user = from_row(
        account_pb2.User,
        {"id": _ID, "status": "ACTIVE", "kyc_status": "APPROVED", "password_hash": "x"},
        roles=["TRADER", account_pb2.ROLE_ADMIN],
    )
    entry = from_row(account_pb2.LedgerEntry, {"id": _ID}, actor=who)

    assert list(user.roles) == [account_pb2.ROLE_TRADER, account_pb2.ROLE_ADMIN]
    assert user.status == account_pb2.USER_STATUS_ACTIVE
    assert entry.actor == who


@dataclass(frozen=True)
class _Numbers:
    lp: str
    sender_comp_id: str
    logged_on: bool
    next_sender_msg_seq_num: int


def test_rows_may_be_dataclasses_or_sqlalchemy_rows() -> None:
    numbers = _Numbers("lp-a", "TRADINGMESH", True, 42)
    row = SimpleNamespace(_mapping={"symbol": "XAUUSD", "digits": 2, "asset_class": "METAL"})

    session = from_row(
        order_admin_service_pb2.LpOrderSession, numbers, liquidity_provider_id=numbers.lp
    )
    instrument = from_row(pricing_pb2.Instrument, row)

    assert session == order_admin_service_pb2.LpOrderSession(
        liquidity_provider_id="lp-a",
        sender_comp_id="TRADINGMESH",
        logged_on=True,
        next_sender_msg_seq_num=42,
    )
    assert (instrument.symbol, instrument.digits) == ("XAUUSD", 2)
    assert instrument.asset_class == pricing_pb2.ASSET_CLASS_METAL


def test_the_wire_bytes_equal_those_of_the_message_built_by_hand() -> None:
    row = {
        "id": _ID,
        "account_number": "1000001",
        "user_id": _ID,
        "group_id": _ID,
        "currency": "USD",
        "position_mode": "HEDGING",
        "status": "ACTIVE",
        "created_at": _AT,
        "updated_at": _AT,
    }
    by_hand = account_pb2.TradingAccount(
        id=str(_ID),
        account_number="1000001",
        user_id=str(_ID),
        group_id=str(_ID),
        currency="USD",
        position_mode=types_pb2.POSITION_MODE_HEDGING,
        status=account_pb2.TRADING_ACCOUNT_STATUS_ACTIVE,
    )
    by_hand.create_time.FromDatetime(_AT)
    by_hand.update_time.FromDatetime(_AT)

    mapped = from_row(
        account_pb2.TradingAccount,
        row,
        create_time=row["created_at"],
        update_time=row["updated_at"],
    )

    assert mapped.SerializeToString(deterministic=True) == by_hand.SerializeToString(
        deterministic=True
    )


def test_unknown_fields_and_names_are_refused() -> None:
    with pytest.raises(ValueError, match="has no field"):
        from_row(account_pb2.User, {}, create_tme=_AT)
    with pytest.raises(ValueError, match="NO_SUCH_STATUS"):
        from_row(account_pb2.User, {"status": "NO_SUCH_STATUS"})
    with pytest.raises(TypeError, match="not a row"):
        from_row(account_pb2.User, ("id", _ID))


def test_a_timestamp_is_the_moment_to_the_microsecond_and_none_stays_none() -> None:
    moment = datetime(2026, 12, 7, 6, 30, 15, 123456, tzinfo=UTC)
    stamp = timestamp(moment)

    assert (stamp.seconds, stamp.nanos) == (int(moment.timestamp()), 123_456_000)
    assert stamp.ToDatetime(tzinfo=UTC) == moment
    assert timestamp(None) is None

"""The reference data the services copy from other services' events, read one way: trading
accounts, client groups and their instrument settings (account events), instruments (pricing
events). The OMS and risk keep copies in their own schemas, each of the columns it needs.

Each `*Copy.of(message)` checks what every copy needs and raises ValueError when the message
lacks it: such an event breaks its contract and no redelivery can make it apply (consumers
raise `inbox.UndeliverableError`), so no service holds a copy another would refuse. Enums are
kept by name without their prefix (`enums.enum_name`; None where unset and optional), decimals
exact (`tradingmesh.exact`). `version_of(event)` orders an entity's events: its occurred_at in
microseconds (an older event never overwrites a newer copy).

Which events carry a copy is said here once too: `ACCOUNT_SUBJECTS` and `INSTRUMENT_SUBJECTS`
(the consumers' subjects and messages), and `copy_of(event)`, the copy an event carries with the
version that orders it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields
from decimal import Decimal
from typing import Any
from typing import Final

from google.protobuf.message import Message

from services.platform import schedule
from services.platform.enums import enum_name
from services.platform.schedule import Session
from tradingmesh.account.v1 import account_events_pb2
from tradingmesh.account.v1 import account_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.exact import decimal_field
from tradingmesh.exact import optional_decimal
from tradingmesh.pricing.v1 import pricing_events_pb2
from tradingmesh.pricing.v1 import pricing_pb2

__all__ = [
    "ACCOUNT_SUBJECTS",
    "INSTRUMENT_SUBJECTS",
    "AccountCopy",
    "Copy",
    "GroupCopy",
    "GroupInstrumentCopy",
    "GroupInstrumentTerms",
    "InstrumentCopy",
    "InstrumentTerms",
    "columns",
    "copy_of",
    "version_of",
]

_ZERO: Final = Decimal(0)


def version_of(event: Message) -> int:
    """The event's occurred_at in microseconds; ValueError without one (it cannot be ordered)."""
    version: int = event.metadata.occurred_at.ToMicroseconds()  # type: ignore[attr-defined]
    if version <= 0:
        raise ValueError(f"a {event.DESCRIPTOR.name} without occurred_at cannot be ordered")
    return version


def _name(enum_type: Any, value: int) -> str | None:
    """The value's name as stored; None for UNSPECIFIED (a field left unset)."""
    name = enum_name(enum_type, value)
    return None if name == "UNSPECIFIED" else name


@dataclass(frozen=True, slots=True)
class AccountCopy:
    """A trading account (account/v1 TradingAccount), without its balance."""

    account_id: str
    user_id: str
    group_id: str
    currency: str
    status: str
    position_mode: str

    @classmethod
    def of(cls, account: account_pb2.TradingAccount) -> AccountCopy:
        status = _name(account_pb2.TradingAccountStatus, account.status)
        mode = _name(types_pb2.PositionMode, account.position_mode)
        if not (account.id and account.user_id and account.group_id and status and mode):
            raise ValueError("a trading account event lacks its account's ids, status or mode")
        return cls(account.id, account.user_id, account.group_id, account.currency, status, mode)


@dataclass(frozen=True, slots=True)
class GroupCopy:
    """A client group's trading conditions (account/v1 ClientGroup)."""

    group_id: str
    name: str
    currency: str
    leverage: int
    margin_call_level: Decimal
    stop_out_level: Decimal
    execution_mode: str
    position_mode: str
    commission_per_lot: Decimal
    max_deviation_points: int

    @classmethod
    def of(cls, group: account_pb2.ClientGroup) -> GroupCopy:
        execution = _name(types_pb2.ExecutionMode, group.execution_mode)
        mode = _name(types_pb2.PositionMode, group.position_mode)
        if not (group.id and group.currency and execution and mode and group.leverage):
            raise ValueError("a client group event lacks the group's id or trading conditions")
        return cls(
            group.id,
            group.name,
            group.currency,
            group.leverage,
            decimal_field(group, "margin_call_level"),
            decimal_field(group, "stop_out_level"),
            execution,
            mode,
            decimal_field(group, "commission_per_lot", _ZERO),
            group.max_deviation_points,
        )


@dataclass(frozen=True, slots=True)
class GroupInstrumentTerms:
    """A group's terms for one instrument (account/v1 GroupInstrumentSettings) that every
    service reads; None: the group's or the instrument's own applies. What the account service
    stores of them extends it (`account.store.groups.InstrumentTerms`)."""

    enabled: bool
    commission_per_lot: Decimal | None
    execution_mode: str | None
    max_deviation_points: int | None
    max_order_size: Decimal | None
    max_position: Decimal | None
    margin_rate: Decimal | None

    @staticmethod
    def values_of(settings: account_pb2.GroupInstrumentSettings) -> dict[str, Any]:
        """The terms' fields read from the message, by name (ValueError for a malformed
        decimal)."""
        deviation = settings.max_deviation_points
        return {
            "enabled": settings.enabled,
            "commission_per_lot": optional_decimal(settings, "commission_per_lot"),
            "execution_mode": _name(types_pb2.ExecutionMode, settings.execution_mode),
            "max_deviation_points": (
                deviation if settings.HasField("max_deviation_points") else None
            ),
            "max_order_size": optional_decimal(settings, "max_order_size"),
            "max_position": optional_decimal(settings, "max_position"),
            "margin_rate": optional_decimal(settings, "margin_rate"),
        }


@dataclass(frozen=True, slots=True)
class GroupInstrumentCopy(GroupInstrumentTerms):
    """A group's settings of one instrument, with the group and the symbol they belong to."""

    group_id: str
    symbol: str

    @classmethod
    def of(cls, settings: account_pb2.GroupInstrumentSettings) -> GroupInstrumentCopy:
        if not (settings.group_id and settings.symbol):
            raise ValueError("instrument settings without their group or symbol")
        return cls(**cls.values_of(settings), group_id=settings.group_id, symbol=settings.symbol)


@dataclass(frozen=True, slots=True)
class InstrumentTerms:
    """An instrument's trading terms (pricing/v1 Instrument): what every copy of it holds, and
    what the OMS reads back from its copy (`oms.model.Instrument`)."""

    symbol: str
    base_currency: str
    quote_currency: str
    digits: int
    tick_size: Decimal
    contract_size: Decimal
    min_lot: Decimal
    max_lot: Decimal
    lot_step: Decimal
    margin_rate: Decimal


@dataclass(frozen=True, slots=True)
class InstrumentCopy(InstrumentTerms):
    """An instrument's terms, trading status and schedule (pricing/v1 Instrument)."""

    trading_status: str
    sessions: tuple[Session, ...]

    @property
    def halted(self) -> bool:
        return self.trading_status == "HALTED"

    @classmethod
    def of(cls, instrument: pricing_pb2.Instrument) -> InstrumentCopy:
        # An index or a commodity has no base currency; every instrument has a quote currency.
        if not (instrument.symbol and instrument.quote_currency):
            raise ValueError("an instrument event without the symbol or the quote currency")
        return cls(
            instrument.symbol,
            instrument.base_currency,
            instrument.quote_currency,
            instrument.digits,
            decimal_field(instrument, "tick_size"),
            decimal_field(instrument, "contract_size"),
            decimal_field(instrument, "min_lot"),
            decimal_field(instrument, "max_lot"),
            decimal_field(instrument, "lot_step"),
            decimal_field(instrument, "margin_rate", _ZERO),
            _name(pricing_pb2.TradingStatus, instrument.trading_status) or "TRADING",
            tuple(Session(s.day, s.start_minute, s.end_minute) for s in instrument.sessions),
        )


Copy = AccountCopy | GroupCopy | GroupInstrumentCopy | InstrumentCopy


def columns(copy: Copy) -> dict[str, Any]:
    """The copy's fields by name, as a statement's parameters (an instrument's sessions as their
    stored JSON, `schedule.to_json`)."""
    values = {field.name: getattr(copy, field.name) for field in fields(copy)}
    if isinstance(copy, InstrumentCopy):
        values["sessions"] = schedule.to_json(copy.sessions)
    return values


ACCOUNT_SUBJECTS: Final[Mapping[str, type[Message]]] = {
    "account.trading_account.created": account_events_pb2.TradingAccountCreated,
    "account.trading_account.status_changed": account_events_pb2.TradingAccountStatusChanged,
    "account.client_group.changed": account_events_pb2.ClientGroupChanged,
    "account.client_group.instrument_settings_changed": (
        account_events_pb2.GroupInstrumentSettingsChanged
    ),
}
"""The account domain's events that carry a copy (an account, a group, a group's settings)."""

INSTRUMENT_SUBJECTS: Final[Mapping[str, type[Message]]] = {
    "pricing.instrument.created": pricing_events_pb2.InstrumentCreated,
    "pricing.instrument.updated": pricing_events_pb2.InstrumentUpdated,
    "pricing.instrument.trading_status_changed": (
        pricing_events_pb2.InstrumentTradingStatusChanged
    ),
}
"""Pricing's events that carry an instrument."""


def copy_of(event: Message) -> tuple[Copy, int] | None:
    """The copy `event` carries and the version that orders it against the stored one: the
    account domain's occurred_at (`version_of`), pricing's row version (aggregate_version).
    None for an event of neither list above; ValueError for one that breaks its contract."""
    if isinstance(
        event,
        account_events_pb2.TradingAccountCreated | account_events_pb2.TradingAccountStatusChanged,
    ):
        return AccountCopy.of(event.account), version_of(event)
    if isinstance(event, account_events_pb2.ClientGroupChanged):
        return GroupCopy.of(event.client_group), version_of(event)
    if isinstance(event, account_events_pb2.GroupInstrumentSettingsChanged):
        return GroupInstrumentCopy.of(event.settings), version_of(event)
    if isinstance(
        event,
        pricing_events_pb2.InstrumentCreated
        | pricing_events_pb2.InstrumentUpdated
        | pricing_events_pb2.InstrumentTradingStatusChanged,
    ):
        return InstrumentCopy.of(event.instrument), event.metadata.aggregate_version
    return None

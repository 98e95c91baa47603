"""Stored rows <-> contract messages. Enum values are stored as their names without the prefix
("ACTIVE", "NETTING", "trader" for roles, as the token's `roles` claim spells them)."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import Any, TypedDict, TypeVar

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.account.audit import actor_kind_name, parse_actor_kind
from services.account.domain import format_money
from services.platform.enums import enum_name, enum_value
from tradingmesh.account.v1 import account_pb2 as pb
from tradingmesh.common.v1 import ledger_pb2, pricing_pb2, types_pb2
from tradingmesh.exact import plain_decimal

Row = Mapping[Any, Any]
_M = TypeVar("_M", bound=Message)


def role_claim(role: int) -> str:
    return enum_name(pb.Role, role).lower()


def role_of_claim(claim: str) -> Any:
    return enum_value(pb.Role, claim.upper())


def timestamp(value: datetime.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _set_time(message: Message, field: str, value: datetime.datetime | None) -> None:
    if value is not None:
        getattr(message, field).FromDatetime(value)


def _timed(message: _M, row: Row) -> _M:
    """`message` with its create and update times (the row's created_at, updated_at)."""
    _set_time(message, "create_time", row["created_at"])
    _set_time(message, "update_time", row["updated_at"])
    return message


def actor(kind: str | None, actor_id: str | None) -> types_pb2.Actor | None:
    if not kind or not actor_id:
        return None
    return types_pb2.Actor(kind=parse_actor_kind(kind), id=actor_id)


def snapshot(message: Message) -> dict[str, Any]:
    """A message's protobuf JSON form, for audit before/after."""
    return MessageToDict(message, preserving_proto_field_name=True)


def user(row: Row) -> pb.User:
    return _timed(
        pb.User(
            id=str(row["id"]),
            username=row["username"],
            email=row["email"],
            display_name=row["display_name"],
            roles=[role_of_claim(r) for r in row["roles"]],
            kyc_status=enum_value(pb.KycStatus, row["kyc_status"]),
            status=enum_value(pb.UserStatus, row["status"]),
        ),
        row,
    )


def client_group(row: Row) -> pb.ClientGroup:
    return _timed(
        pb.ClientGroup(
            id=str(row["id"]),
            name=row["name"],
            description=row["description"],
            currency=row["currency"].strip(),
            leverage=row["leverage"],
            margin_call_level=plain_decimal(row["margin_call_level"]),
            stop_out_level=plain_decimal(row["stop_out_level"]),
            execution_mode=enum_value(types_pb2.ExecutionMode, row["execution_mode"]),
            position_mode=enum_value(types_pb2.PositionMode, row["position_mode"]),
            spread_markup_type=enum_value(pricing_pb2.MarkupType, row["spread_markup_type"]),
            spread_markup=plain_decimal(row["spread_markup"]),
            commission_per_lot=plain_decimal(row["commission_per_lot"]),
            max_deviation_points=row["max_deviation_points"],
        ),
        row,
    )


def instrument_settings(row: Row) -> pb.GroupInstrumentSettings:
    message = pb.GroupInstrumentSettings(
        group_id=str(row["group_id"]), symbol=row["symbol"], enabled=row["enabled"]
    )
    if row["spread_markup_type"]:
        message.spread_markup_type = enum_value(pricing_pb2.MarkupType, row["spread_markup_type"])
    if row["execution_mode"]:
        message.execution_mode = enum_value(types_pb2.ExecutionMode, row["execution_mode"])
    for field in (
        "spread_markup",
        "commission_per_lot",
        "max_order_size",
        "max_position",
        "margin_rate",
    ):
        if row[field] is not None:
            setattr(message, field, plain_decimal(row[field]))
    if row["max_deviation_points"] is not None:
        message.max_deviation_points = row["max_deviation_points"]
    _set_time(message, "update_time", row["updated_at"])
    return message


def trading_account(row: Row) -> pb.TradingAccount:
    return _timed(
        pb.TradingAccount(
            id=str(row["id"]),
            account_number=row["account_number"],
            user_id=str(row["user_id"]),
            group_id=str(row["group_id"]),
            currency=row["currency"].strip(),
            position_mode=enum_value(types_pb2.PositionMode, row["position_mode"]),
            status=enum_value(pb.TradingAccountStatus, row["status"]),
        ),
        row,
    )


def _str(value: uuid.UUID | str | None) -> str:
    return "" if value is None else str(value)


def ledger_entry(row: Row) -> pb.LedgerEntry:
    currency = row["currency"].strip()
    message = pb.LedgerEntry(
        id=str(row["id"]),
        account_id=str(row["account_id"]),
        sequence=row["sequence"],
        journal_id=str(row["journal_id"]),
        reason=enum_value(ledger_pb2.LedgerEntryReason, row["reason"]),
        amount=format_money(row["amount"], currency),
        balance_after=format_money(row["balance_after"], currency),
        currency=currency,
        order_id=_str(row["order_id"]),
        trade_id=_str(row["trade_id"]),
        position_id=_str(row["position_id"]),
        withdrawal_id=_str(row["withdrawal_id"]),
        balance_adjustment_id=_str(row["balance_adjustment_id"]),
        provider_event_id=_str(row["provider_event_id"]),
        description=row["description"],
    )
    if row["reference_type"] == "swap_charge":  # services/account/trading.py SWAP_REFERENCE
        message.swap_charge_id = str(row["reference_id"])
    _set_actor(message, "actor", row["actor_kind"], row["actor_id"])
    _set_time(message, "create_time", row["created_at"])
    return message


class _MoneyRequest(TypedDict):
    """The fields a withdrawal and a balance adjustment share: what moves, in which account."""

    id: str
    account_id: str
    amount: str
    currency: str


def _money_request(row: Row) -> _MoneyRequest:
    currency = row["currency"].strip()
    return _MoneyRequest(
        id=str(row["id"]),
        account_id=str(row["account_id"]),
        amount=format_money(row["amount"], currency),
        currency=currency,
    )


def _set_actor(message: Message, field: str, kind: str | None, actor_id: str | None) -> None:
    who = actor(kind, actor_id)
    if who is not None:
        getattr(message, field).CopyFrom(who)


def withdrawal(row: Row) -> pb.Withdrawal:
    currency = row["currency"].strip()
    message = pb.Withdrawal(
        **_money_request(row),
        status=enum_value(pb.WithdrawalStatus, row["status"]),
        idempotency_key=row["idempotency_key"],
        ledger_entry_id=str(row["ledger_entry_id"]),
        balance_after=format_money(row["balance_after"], currency),
        reversal_ledger_entry_id=_str(row["reversal_ledger_entry_id"]),
        rejection_reason=row["rejection_reason"],
    )
    _set_actor(message, "requested_by", row["requested_by_kind"], row["requested_by_id"])
    _set_actor(message, "rejected_by", row["rejected_by_kind"], row["rejected_by_id"])
    _set_time(message, "create_time", row["created_at"])
    _set_time(message, "complete_time", row["completed_at"])
    return message


def balance_adjustment(row: Row) -> pb.BalanceAdjustment:
    message = pb.BalanceAdjustment(
        **_money_request(row),
        reason=row["reason"],
        status=enum_value(pb.BalanceAdjustmentStatus, row["status"]),
        checker_comment=row["checker_comment"],
        ledger_entry_id=_str(row["ledger_entry_id"]),
    )
    _set_actor(message, "maker", row["maker_kind"], row["maker_id"])
    _set_actor(message, "checker", row["checker_kind"], row["checker_id"])
    _set_time(message, "create_time", row["created_at"])
    _set_time(message, "review_time", row["reviewed_at"])
    return message


def actor_columns(who: types_pb2.Actor) -> tuple[str, str]:
    return actor_kind_name(who.kind), who.id

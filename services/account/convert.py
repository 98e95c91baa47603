"""Stored rows <-> contract messages. Enum values are stored as their names without the prefix
("ACTIVE", "NETTING", "trader" for roles, as the token's `roles` claim spells them).

Each message is filled from the columns named as its fields (`services.platform.messages.
from_row`) and by the account tables' own conventions (`_message`: the times' columns, actors
in a kind and an id column, money with the currency's decimals); a converter names only what
is made otherwise."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any
from typing import Final
from typing import TypeVar

from google.protobuf.descriptor import Descriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from services.account.domain import format_money
from services.platform.enums import enum_name
from services.platform.enums import enum_value
from services.platform.messages import from_row
from tradingmesh.account.v1 import account_pb2 as pb
from tradingmesh.common.v1 import types_pb2

Row = Mapping[Any, Any]
_M = TypeVar("_M", bound=Message)


def role_claim(role: int) -> str:
    return enum_name(pb.Role, role).lower()


def role_of_claim(claim: str) -> Any:
    return enum_value(pb.Role, claim.upper())


def actor(kind: str | None, actor_id: str | None) -> types_pb2.Actor | None:
    if not kind or not actor_id:
        return None
    return types_pb2.Actor(kind=enum_value(types_pb2.ActorKind, kind), id=actor_id)


def snapshot(message: Message) -> dict[str, Any]:
    """A message's protobuf JSON form, for audit before/after."""
    return MessageToDict(message, preserving_proto_field_name=True)


def user(row: Row) -> pb.User:
    return _message(pb.User, row, roles=[role_of_claim(r) for r in row["roles"]])


def client_group(row: Row) -> pb.ClientGroup:
    return _message(pb.ClientGroup, row)


def instrument_settings(row: Row) -> pb.GroupInstrumentSettings:
    """The group's own settings of one instrument; a column left NULL stays unset (the group's
    value applies)."""
    return _message(pb.GroupInstrumentSettings, row)


def trading_account(row: Row) -> pb.TradingAccount:
    return _message(pb.TradingAccount, row)


def ledger_entry(row: Row) -> pb.LedgerEntry:
    swap = row["reference_type"] == "swap_charge"  # services/account/trading.py SWAP_REFERENCE
    return _message(
        pb.LedgerEntry,
        row,
        amounts=("amount", "balance_after"),
        swap_charge_id=row["reference_id"] if swap else None,
    )


def withdrawal(row: Row) -> pb.Withdrawal:
    return _message(pb.Withdrawal, row, amounts=("amount", "balance_after"))


def balance_adjustment(row: Row) -> pb.BalanceAdjustment:
    return _message(pb.BalanceAdjustment, row, amounts=("amount",))


# The columns of the contract's times, as every account table names them.
_TIME_COLUMNS: Final = {
    "create_time": "created_at",
    "update_time": "updated_at",
    "complete_time": "completed_at",
    "review_time": "reviewed_at",
}
_ACTOR: Final = types_pb2.Actor.DESCRIPTOR.full_name


@functools.cache
def _conventional(descriptor: Descriptor) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """A message's time fields (with their columns) and Actor fields, found once per type."""
    fields = descriptor.fields
    times = tuple((f.name, _TIME_COLUMNS[f.name]) for f in fields if f.name in _TIME_COLUMNS)
    actors = tuple(
        f.name for f in fields if f.message_type is not None and f.message_type.full_name == _ACTOR
    )
    return times, actors


def _message(message_type: type[_M], row: Row, *, amounts: Iterable[str] = (), **fields: Any) -> _M:
    """`message_type` from a row of the account's tables: the platform's `from_row` with the
    account's own conventions. A time is its `_TIME_COLUMNS` column, an Actor field
    its `<field>_kind` and `<field>_id` columns, the currency a CHAR(3) and `amounts` are money
    with the currency's decimals (`format_money`); `fields` are the fields made otherwise."""
    times, actors = _conventional(message_type.DESCRIPTOR)
    stored: dict[str, Any] = {name: row[column] for name, column in times}
    stored.update({name: actor(row[f"{name}_kind"], row[f"{name}_id"]) for name in actors})
    if "currency" in row:
        currency = stored["currency"] = row["currency"].strip()
        stored.update({name: format_money(row[name], currency) for name in amounts})
    return from_row(message_type, row, **{**stored, **fields})

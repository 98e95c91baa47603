"""Webhook bodies (pure): a payment or KYC provider's JSON parsed into an event, or a
VALIDATION_FAILED naming the field that is wrong."""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from typing import Final

from services.platform.errors import DomainError
from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = ["MAX_BODY_BYTES", "KycEvent", "PaymentEvent", "bad_field", "parse_kyc", "parse_payment"]

_R = ErrorReason
MAX_BODY_BYTES: Final = 64 * 1024
_EVENT_ID: Final = re.compile(r"^.{1,128}$", re.DOTALL)
_AMOUNT: Final = re.compile(r"^[0-9]{1,18}(\.[0-9]{1,12})?$")
_CURRENCY: Final = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class PaymentEvent:
    event_id: str
    type: str  # "deposit" | "withdrawal"
    account_number: str
    amount: str
    currency: str
    status: str  # "pending" | "completed" | "failed"
    reference: str
    reason: str
    occurred_at: datetime.datetime


@dataclass(frozen=True)
class KycEvent:
    event_id: str
    user_id: str
    status: str  # "pending" | "approved" | "rejected"
    reason: str
    occurred_at: datetime.datetime


def bad_field(message: str, field: str) -> DomainError:
    return DomainError(
        _R.ERROR_REASON_VALIDATION_FAILED, message, field_violations=[(field, message)]
    )


def _object(body: bytes) -> Mapping[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise bad_field(f"the body is larger than {MAX_BODY_BYTES} bytes", "body")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad_field("the body is not valid JSON", "body") from None
    except RecursionError:
        # Thousands of nested arrays or objects: Python's parser gives up on its stack.
        raise bad_field("the body nests too deeply", "body") from None
    if not isinstance(data, dict):
        raise bad_field("the body is not a JSON object", "body")
    return data


def _text(data: Mapping[str, Any], field: str, *, required: bool = True) -> str:
    value = data.get(field, "")
    if not isinstance(value, str) or (required and not value):
        raise bad_field(f"{field} must be a non-empty string", field)
    # JSON may escape what PostgreSQL text cannot hold: NUL ("\u0000") and lone surrogates.
    if "\x00" in value or not _encodable(value):
        raise bad_field(f"{field} must be text without NUL or unpaired surrogates", field)
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _choice(data: Mapping[str, Any], field: str, allowed: tuple[str, ...]) -> str:
    value = _text(data, field)
    if value not in allowed:
        raise bad_field(f"{field} must be one of {', '.join(allowed)}", field)
    return value


def _event_id(data: Mapping[str, Any]) -> str:
    value = _text(data, "event_id")
    if not _EVENT_ID.fullmatch(value):
        raise bad_field("event_id must be 1 to 128 characters", "event_id")
    return value


def _time(data: Mapping[str, Any], field: str) -> datetime.datetime:
    value = _text(data, field)
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_field(f"{field} must be an RFC 3339 time", field) from None
    if parsed.tzinfo is None:
        raise bad_field(f"{field} must carry a time zone", field)
    return parsed


def parse_payment(body: bytes) -> PaymentEvent:
    """A payment event body, or VALIDATION_FAILED naming the field at fault."""
    data = _object(body)
    amount = _text(data, "amount")
    if not _AMOUNT.fullmatch(amount) or Decimal(amount) == 0:
        raise bad_field("amount must be a positive decimal string without exponent", "amount")
    currency = _text(data, "currency")
    if not _CURRENCY.fullmatch(currency):
        raise bad_field("currency must be an ISO 4217 code", "currency")
    kind = _choice(data, "type", ("deposit", "withdrawal"))
    reference = _text(data, "reference", required=kind == "withdrawal")
    return PaymentEvent(
        event_id=_event_id(data),
        type=kind,
        account_number=_text(data, "account_number"),
        amount=amount,
        currency=currency,
        status=_choice(data, "status", ("pending", "completed", "failed")),
        reference=reference,
        reason=_text(data, "reason", required=False)[:512],
        occurred_at=_time(data, "occurred_at"),
    )


def parse_kyc(body: bytes) -> KycEvent:
    """A KYC event body, or VALIDATION_FAILED naming the field at fault."""
    data = _object(body)
    return KycEvent(
        event_id=_event_id(data),
        user_id=_text(data, "user_id"),
        status=_choice(data, "status", ("pending", "approved", "rejected")),
        reason=_text(data, "reason", required=False)[:512],
        occurred_at=_time(data, "occurred_at"),
    )

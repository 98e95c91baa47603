"""Request validation: the contract's protovalidate rules, and which reason a violation gets.

Every request is checked against the rules declared in its proto before any handler sees it, so
a bad request changes nothing (ADR 0002). A bad request fails with INVALID_ARGUMENT, a BadRequest
listing every violation with its rule id, and the ErrorInfo reason that `RULE_REASONS` gives.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any
from typing import Final

import protovalidate
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from services.platform.errors import DomainError
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import FieldViolation

__all__ = [
    "MAX_VIOLATIONS",
    "RULE_REASONS",
    "check_request",
    "reason_for_rule",
    "reason_for_violations",
]

RULE_REASONS: Final[Sequence[tuple[str, ErrorReason.ValueType]]] = (
    # (rule id pattern, reason): the first match wins; a rule that matches none, i.e. a field's
    # own rule (`string.*`, ranges, required) or another message's rule, is VALIDATION_FAILED.
    ("place_order.*_time_in_force", ErrorReason.ERROR_REASON_UNSUPPORTED_TIME_IN_FORCE),
    ("amend_order.*_time_in_force", ErrorReason.ERROR_REASON_UNSUPPORTED_TIME_IN_FORCE),
    ("place_order.*", ErrorReason.ERROR_REASON_INVALID_ORDER_FIELDS),
    ("amend_order.*", ErrorReason.ERROR_REASON_INVALID_ORDER_FIELDS),
)

# When a request breaks rules of several reasons, the first of these present is the one reported
# (every violation is still listed). A field that breaks its own rule comes first: rules across
# fields mean little while a field is malformed. A time in force is the more precise complaint.
_PRECEDENCE: Final = (
    ErrorReason.ERROR_REASON_VALIDATION_FAILED,
    ErrorReason.ERROR_REASON_UNSUPPORTED_TIME_IN_FORCE,
    ErrorReason.ERROR_REASON_INVALID_ORDER_FIELDS,
)

MAX_VIOLATIONS: Final = 20
"""The most field violations one error lists (the reason still weighs every one)."""

_validator = protovalidate.Validator()


def reason_for_rule(rule_id: str) -> ErrorReason.ValueType:
    """The ErrorInfo reason of one broken rule, by its protovalidate rule id."""
    return next(
        (reason for pattern, reason in RULE_REASONS if fnmatchcase(rule_id, pattern)),
        ErrorReason.ERROR_REASON_VALIDATION_FAILED,
    )


def reason_for_violations(rule_ids: Iterable[str]) -> ErrorReason.ValueType:
    """The ErrorInfo reason of a request that broke the given rules."""
    reasons = {reason_for_rule(rule_id) for rule_id in rule_ids}
    return next(
        (reason for reason in _PRECEDENCE if reason in reasons),
        ErrorReason.ERROR_REASON_VALIDATION_FAILED,
    )


def check_request(request: Message) -> None:
    """Raises a `DomainError` listing the rules the request breaks; returns if it breaks none.

    Besides the contract's rules, no string may hold NUL (PostgreSQL text cannot) and every
    Timestamp and Duration must be one (protovalidate does not check their ranges). At most
    `MAX_VIOLATIONS` are listed.

    The validator's own failures (a rule that does not compile or evaluate) are bugs in the
    contract, not in the request: they propagate and become INTERNAL.
    """
    violations = [_field_violation(v) for v in _validator.collect_violations(request)]
    violations += _platform_violations(request)
    if not violations:
        return
    # A list of thousands of bad items breaks thousands of rules; listing them all would make
    # the error's trailers larger than the edge passes on (it resets the stream: INTERNAL).
    shown = violations[:MAX_VIOLATIONS]
    described = "; ".join(
        f"{v.field}: {v.description}" if v.field else v.description for v in shown
    )
    name = request.DESCRIPTOR.name
    if len(violations) > len(shown):
        name += f" ({len(violations)} violations, the first {len(shown)} listed)"
    raise DomainError(
        reason_for_violations(v.reason for v in violations),
        f"invalid {name}: {described}",
        field_violations=shown,
    )


# What a Timestamp or Duration may hold (google/protobuf/timestamp.proto, duration.proto): years
# 0001 to 9999, and about 10,000 years. protovalidate does not check it, and a handler's
# `ToDatetime()` raises on anything else.
_MIN_SECONDS: Final = -62_135_596_800  # 0001-01-01T00:00:00Z
_MAX_SECONDS: Final = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_DURATION_SECONDS: Final = 315_576_000_000
_NANOS: Final = 1_000_000_000
_NOT_A_TIMESTAMP: Final = "must be a time between 0001-01-01 and 9999-12-31 (nanos 0 to 999999999)"
_NOT_A_DURATION: Final = "must be a duration of at most 10,000 years (nanos of the seconds' sign)"
# Protobuf strings may hold NUL; PostgreSQL text cannot, so a handler storing one would fail.
_NUL: Final = "\x00"
_HAS_NUL: Final = "must not contain NUL characters"


def _platform_violations(message: Message, prefix: str = "") -> list[FieldViolation]:
    """The rules every contract shares beyond its own, at any depth: no string holds NUL, and
    every Timestamp or Duration is one (in range, nanos in [0, 1e9) or of a duration's sign)."""
    found: list[FieldViolation] = []
    for described, value in message.ListFields():
        path = prefix + described.name
        entry = described.message_type
        if entry is not None and entry.GetOptions().map_entry:
            items = [(f'{path}["{key}"]', key, item) for key, item in value.items()]
            found += [
                FieldViolation(where, _HAS_NUL, "string.no_nul")
                for where, key, item in items
                if (isinstance(key, str) and _NUL in key)
                or (isinstance(item, str) and _NUL in item)
            ]
            found += [
                violation
                for where, _, item in items
                if isinstance(item, Message)
                for violation in _message_violations(where, item)
            ]
            continue
        if described.is_repeated:
            entries = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
        else:
            entries = [(path, value)]
        if described.type == FieldDescriptor.TYPE_STRING:
            found += [
                FieldViolation(where, _HAS_NUL, "string.no_nul")
                for where, item in entries
                if _NUL in item
            ]
        elif described.type == FieldDescriptor.TYPE_MESSAGE:
            for where, item in entries:
                found += _message_violations(where, item)
    return found


def _message_violations(where: str, item: Any) -> list[FieldViolation]:
    kind = item.DESCRIPTOR.full_name
    if kind == "google.protobuf.Timestamp":
        valid = _MIN_SECONDS <= item.seconds <= _MAX_SECONDS and 0 <= item.nanos < _NANOS
        return [] if valid else [FieldViolation(where, _NOT_A_TIMESTAMP, "timestamp.valid")]
    if kind == "google.protobuf.Duration":
        seconds, nanos = item.seconds, item.nanos
        valid = (
            abs(seconds) <= _MAX_DURATION_SECONDS
            and abs(nanos) < _NANOS
            and (seconds == 0 or nanos == 0 or (seconds < 0) == (nanos < 0))
        )
        return [] if valid else [FieldViolation(where, _NOT_A_DURATION, "duration.valid")]
    return _platform_violations(item, where + ".")


def _field_violation(violation: protovalidate.Violation) -> FieldViolation:
    proto = violation.proto
    return FieldViolation(
        # A message-level rule (e.g. place_order.market_fields) is about the whole request: "".
        field=_path(proto.field.elements) if proto.field is not None else "",
        description=proto.message or "",
        reason=proto.rule_id or "",
    )


def _path(elements: Iterable[protovalidate.FieldPathElementPb]) -> str:
    """`stop_loss.price`, `symbols[2]`, `limits["EURUSD"]`: the path as a client writes it."""
    parts: list[str] = []
    for element in elements:
        part = element.field_name
        subscript = element.subscript
        if subscript is not None:
            key = subscript.value
            part += f'["{key}"]' if isinstance(key, str) else f"[{str(key).lower()}]"
        parts.append(part)
    return ".".join(parts)

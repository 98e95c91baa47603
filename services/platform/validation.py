"""Request validation: the contract's protovalidate rules, and which reason a violation gets.

Every request is checked against the rules declared in its proto before any handler sees it, so
a bad request changes nothing (ADR 0002). A bad request fails with INVALID_ARGUMENT, a BadRequest
listing every violation with its rule id, and the ErrorInfo reason that `RULE_REASONS` gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import Final

import protovalidate
from google.protobuf.message import Message

from services.platform.errors import DomainError
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import FieldViolation

__all__ = ["RULE_REASONS", "check_request", "reason_for_rule", "reason_for_violations"]

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
    """Raises a `DomainError` listing every rule the request breaks; returns if it breaks none.

    The validator's own failures (a rule that does not compile or evaluate) are bugs in the
    contract, not in the request: they propagate and become INTERNAL.
    """
    violations = [_field_violation(v) for v in _validator.collect_violations(request)]
    if not violations:
        return
    described = "; ".join(
        f"{v.field}: {v.description}" if v.field else v.description for v in violations
    )
    raise DomainError(
        reason_for_violations(v.reason for v in violations),
        f"invalid {request.DESCRIPTOR.name}: {described}",
        field_violations=violations,
    )


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

"""Pure rules of the account domain: money, ledger postings, withdrawals, adjustments, KYC,
the statuses of users and trading accounts and the changes allowed between them.

No gRPC, SQL or NATS here; `store/ledger.py` and the servicers (`api/`) apply these rules to
stored state.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final
from typing import TypeVar

from services.platform.errors import DomainError
from services.platform.errors import field_error
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.exact import InvalidDecimalError
from tradingmesh.exact import format_decimal
from tradingmesh.exact import parse_decimal
from tradingmesh.trading.money import minor_unit

__all__ = [
    "HOUSE_ACCOUNT_BY_REASON",
    "NEGATIVE_ALLOWED",
    "Reason",
    "format_money",
    "minor_unit",
    "next_balance",
    "parse_amount",
]

_R = ErrorReason


class Reason(enum.StrEnum):
    """Why a ledger entry is posted; the stored text is the LedgerEntryReason name without its
    prefix."""

    DEPOSIT = "DEPOSIT"
    WITHDRAWAL = "WITHDRAWAL"
    WITHDRAWAL_REVERSAL = "WITHDRAWAL_REVERSAL"
    REALIZED_PNL = "REALIZED_PNL"
    COMMISSION = "COMMISSION"
    SWAP = "SWAP"
    STOP_OUT_LOSS = "STOP_OUT_LOSS"
    ADJUSTMENT = "ADJUSTMENT"
    NEGATIVE_BALANCE_CORRECTION = "NEGATIVE_BALANCE_CORRECTION"


# The broker's side of each posting (ADR 0005): the house account that takes the opposite leg.
HOUSE_ACCOUNT_BY_REASON: Final[dict[Reason, str]] = {
    Reason.DEPOSIT: "house:cash",
    Reason.WITHDRAWAL: "house:cash",
    Reason.WITHDRAWAL_REVERSAL: "house:cash",
    Reason.REALIZED_PNL: "house:trading",
    Reason.STOP_OUT_LOSS: "house:trading",
    Reason.NEGATIVE_BALANCE_CORRECTION: "house:trading",
    Reason.COMMISSION: "house:fees",
    Reason.SWAP: "house:fees",
    Reason.ADJUSTMENT: "house:adjustments",
}

# Debits with these reasons may take a balance below zero: a trade's realized loss and commission
# and a stop-out loss are facts of the market, booked after the fill committed in the OMS, not
# requests that can be refused (ADR 0007). Every other debit stops at zero.
NEGATIVE_ALLOWED: Final = frozenset(
    {Reason.REALIZED_PNL, Reason.COMMISSION, Reason.SWAP, Reason.STOP_OUT_LOSS}
)


def parse_amount(text: str, currency: str, field: str, *, positive: bool = False) -> Decimal:
    """A wire amount in `currency`: exact, not zero, within the currency's minor unit.

    TOO_MANY_DECIMALS when it has more decimals than the minor unit; VALIDATION_FAILED when it
    is not a decimal string, is zero, or (with `positive`) is not above zero.
    """
    try:
        value = parse_decimal(text)
    except InvalidDecimalError as error:
        problem = str(error)
        raise field_error(_R.ERROR_REASON_VALIDATION_FAILED, field, problem, problem) from None
    if value == 0 or (positive and value < 0):
        problem = "must be greater than zero" if positive else "must not be zero"
        raise field_error(_R.ERROR_REASON_VALIDATION_FAILED, field, problem)
    digits = minor_unit(currency)
    if value != value.quantize(Decimal(1).scaleb(-digits)):
        problem = f"{currency} amounts have at most {digits} decimals"
        raise field_error(
            _R.ERROR_REASON_TOO_MANY_DECIMALS,
            field,
            problem,
            f"{field}: {problem}",
            {"max_decimals": str(digits)},
        )
    return value


def format_money(value: Decimal, currency: str) -> str:
    """A stored amount (NUMERIC with 12 decimals) as a wire string with the currency's decimals,
    or more if the value has more: Decimal("10000.000000000000") -> "10000.00"."""
    digits = minor_unit(currency)
    normalized = value.normalize()
    exponent = normalized.as_tuple().exponent
    assert isinstance(exponent, int)
    places = max(digits, -exponent)
    return format_decimal(value.quantize(Decimal(1).scaleb(-places)))


def check_same_amount(stored: Decimal, requested: Decimal, idempotency_key: str) -> None:
    """ALREADY_EXISTS when a retried request (a withdrawal, a balance adjustment) names the
    idempotency key of an earlier one with another amount; the same amount is the same request."""
    if stored != requested:
        raise DomainError(
            _R.ERROR_REASON_ALREADY_EXISTS,
            "this idempotency key was used for a different amount",
            metadata={"idempotency_key": idempotency_key},
        )


@dataclass(frozen=True)
class Posting:
    """The new state of an account's ledger after one entry."""

    sequence: int
    balance_after: Decimal


def next_balance(
    balance: Decimal, last_sequence: int, amount: Decimal, reason: Reason, currency: str
) -> Posting:
    """The balance and sequence after posting `amount`, or INSUFFICIENT_FUNDS.

    A credit is always allowed (it may leave a negative balance less negative). A debit that
    would end below zero is refused unless its reason is allowed to (NEGATIVE_ALLOWED).
    """
    if amount == 0:
        raise ValueError("a ledger entry never has a zero amount")
    after = balance + amount
    if amount < 0 and after < 0 and reason not in NEGATIVE_ALLOWED:
        raise DomainError(
            _R.ERROR_REASON_INSUFFICIENT_FUNDS,
            f"the balance is {format_money(balance, currency)} {currency}; "
            f"{format_money(-amount, currency)} cannot be debited",
            metadata={
                "balance": format_money(balance, currency),
                "requested": format_money(-amount, currency),
                "currency": currency,
            },
        )
    return Posting(sequence=last_sequence + 1, balance_after=after)


class WithdrawalStatus(enum.StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"


class AdjustmentStatus(enum.StrEnum):
    PENDING_APPROVAL = "PENDING_APPROVAL"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class KycStatus(enum.StrEnum):
    NOT_STARTED = "NOT_STARTED"
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class UserStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"
    CLOSED = "CLOSED"  # for good: a closed user is never changed again


class TradingAccountStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    CLOSE_ONLY = "CLOSE_ONLY"  # may only reduce risk (the OMS's rule)
    DISABLED = "DISABLED"  # no order entry, no withdrawals
    CLOSED = "CLOSED"  # for good: a closed account is never changed again


# A withdrawal needs an active user whose account is in none of these.
NO_WITHDRAWAL_STATUSES: Final = frozenset(
    {TradingAccountStatus.DISABLED, TradingAccountStatus.CLOSED}
)

# A withdrawal still on its way: an account with one cannot be closed.
UNFINISHED_WITHDRAWAL_STATUSES: Final = frozenset(
    {WithdrawalStatus.PENDING, WithdrawalStatus.PROCESSING}
)


S = TypeVar("S", bound=enum.StrEnum)


class StatusStep(enum.Enum):
    """What an operator's request to set a user's or trading account's status does."""

    UNCHANGED = "unchanged"  # it has that status already: answered as it is, nothing written
    CHANGE = "change"
    CLOSE = "close"  # a change to CLOSED, made only if the closing precondition holds


def _status_steps(statuses: type[S], closed: S) -> dict[tuple[S, S], StatusStep]:
    """(current, requested) -> step for statuses whose only terminal one is `closed`: every
    change is allowed except out of `closed`, and a change into it is a CLOSE."""
    steps: dict[tuple[S, S], StatusStep] = {}
    for current in statuses:
        for requested in statuses:
            if current == requested:
                steps[current, requested] = StatusStep.UNCHANGED
            elif current == closed:
                continue  # closed for good: not in the table, refused
            elif requested == closed:
                steps[current, requested] = StatusStep.CLOSE
            else:
                steps[current, requested] = StatusStep.CHANGE
    return steps


USER_STATUS_STEPS: Final = _status_steps(UserStatus, UserStatus.CLOSED)
TRADING_ACCOUNT_STATUS_STEPS: Final = _status_steps(
    TradingAccountStatus, TradingAccountStatus.CLOSED
)


def status_step(
    steps: Mapping[tuple[S, S], StatusStep], current: S, requested: S, noun: str
) -> StatusStep:
    """The step from `current` to `requested`, or INVALID_STATE when the table has none (the
    `noun`, "user" or "account", is closed for good)."""
    step = steps.get((current, requested))
    if step is None:
        raise DomainError(_R.ERROR_REASON_INVALID_STATE, f"the {noun} is closed for good")
    return step


class WithdrawalAction(enum.Enum):
    """What a payment provider's status means for a withdrawal in a given status."""

    IGNORE = "ignore"  # the withdrawal already has that status (or a later one)
    TO_PROCESSING = "to_processing"
    COMPLETE = "complete"
    FAIL = "fail"  # REJECTED, with the amount credited back


# (current status, provider status) -> action. Unlisted pairs are conflicts: the provider
# reports something the platform cannot reconcile on its own (FAILED_PRECONDITION).
WITHDRAWAL_TRANSITIONS: Final[dict[tuple[WithdrawalStatus, str], WithdrawalAction]] = {
    (WithdrawalStatus.PENDING, "pending"): WithdrawalAction.TO_PROCESSING,
    (WithdrawalStatus.PENDING, "completed"): WithdrawalAction.COMPLETE,
    (WithdrawalStatus.PENDING, "failed"): WithdrawalAction.FAIL,
    (WithdrawalStatus.PROCESSING, "pending"): WithdrawalAction.IGNORE,
    (WithdrawalStatus.PROCESSING, "completed"): WithdrawalAction.COMPLETE,
    (WithdrawalStatus.PROCESSING, "failed"): WithdrawalAction.FAIL,
    # A late "pending" after the end changes nothing.
    (WithdrawalStatus.COMPLETED, "pending"): WithdrawalAction.IGNORE,
    (WithdrawalStatus.COMPLETED, "completed"): WithdrawalAction.IGNORE,
    (WithdrawalStatus.REJECTED, "pending"): WithdrawalAction.IGNORE,
    (WithdrawalStatus.REJECTED, "failed"): WithdrawalAction.IGNORE,
    # (COMPLETED, "failed") and (REJECTED, "completed") are conflicts.
}


def withdrawal_action(current: WithdrawalStatus, provider_status: str) -> WithdrawalAction:
    """The action for a provider's report, or FAILED_PRECONDITION for a conflict."""
    action = WITHDRAWAL_TRANSITIONS.get((current, provider_status))
    if action is None:
        raise DomainError(
            _R.ERROR_REASON_INVALID_STATE,
            f"the withdrawal is {current.value}; the provider reports it {provider_status}",
            metadata={"status": current.value, "provider_status": provider_status},
        )
    return action


def check_may_withdraw(kyc_status: str, user_status: str, account_status: str) -> None:
    """A withdrawal is requested by a user whose identity is verified (KYC APPROVED), who is
    ACTIVE, from an account whose status lets money out (not in `NO_WITHDRAWAL_STATUSES`)."""
    if kyc_status != KycStatus.APPROVED:
        raise DomainError(
            _R.ERROR_REASON_PERMISSION_DENIED,
            "withdrawals need an approved identity verification (KYC)",
            metadata={"kyc_status": kyc_status},
        )
    if user_status != UserStatus.ACTIVE or TradingAccountStatus(account_status) in (
        NO_WITHDRAWAL_STATUSES
    ):
        raise DomainError(
            _R.ERROR_REASON_ACCOUNT_DISABLED,
            "the account or its user is disabled",
            metadata={"account_status": account_status},
        )


def check_decidable(
    maker_id: str, checker_id: str, status: str, decision: AdjustmentStatus
) -> None:
    """A balance adjustment is decided by another than its maker (four eyes), while it waits
    for approval; deciding it again alike is a retry and passes."""
    if checker_id == maker_id:
        raise DomainError(
            _R.ERROR_REASON_MAKER_CHECKER_VIOLATION,
            "the maker of an adjustment cannot approve or reject it",
        )
    if status not in (decision, AdjustmentStatus.PENDING_APPROVAL):
        raise DomainError(_R.ERROR_REASON_INVALID_STATE, f"the adjustment was {status.lower()}")


def check_user_may_close(accounts_not_closed: int) -> None:
    """INVALID_STATE unless every trading account of the user is closed."""
    if accounts_not_closed:
        raise DomainError(
            _R.ERROR_REASON_INVALID_STATE,
            "the user still has trading accounts that are not closed",
        )


def check_account_may_close(balance: Decimal, currency: str, unfinished_withdrawals: int) -> None:
    """INVALID_STATE unless the account's balance is zero and none of its withdrawals is
    unfinished. Open positions and working orders are the OMS's; it refuses to trade a CLOSED
    account, and checking them here needs its API (a later issue)."""
    if balance != 0 or unfinished_withdrawals:
        raise DomainError(
            _R.ERROR_REASON_INVALID_STATE,
            "only an account with a zero balance and no unfinished withdrawals can be closed",
            metadata={"balance": format_money(balance, currency)},
        )


# -- client groups ---------------------------------------------------------------------------------


def check_group_levels(margin_call_level: Decimal, stop_out_level: Decimal) -> None:
    """A group's margin call comes before its stop-out: its level is the higher one."""
    if margin_call_level <= stop_out_level:
        raise DomainError(
            _R.ERROR_REASON_VALIDATION_FAILED,
            "margin_call_level must be greater than stop_out_level",
            field_violations=[
                ("client_group.margin_call_level", "must be greater than stop_out_level")
            ],
        )


def check_instrument_limits(
    lot_step: Decimal,
    *,
    points_markup: Decimal | None,
    max_order_size: Decimal | None,
    max_position: Decimal | None,
) -> None:
    """A group's settings for one instrument: a spread markup in points is a whole number, the
    size limits are multiples of the instrument's lot step (None: not set). Every problem is
    listed."""
    problems: list[tuple[str, str]] = []
    if points_markup is not None and points_markup % 1 != 0:
        problems.append(("settings.spread_markup", "a POINTS markup must be a whole number"))
    for field, limit in (("max_order_size", max_order_size), ("max_position", max_position)):
        if limit is not None and limit % lot_step != 0:
            problems.append((f"settings.{field}", f"must be a multiple of the lot step {lot_step}"))
    if problems:
        raise DomainError(
            _R.ERROR_REASON_TOO_MANY_DECIMALS, problems[0][1], field_violations=problems
        )

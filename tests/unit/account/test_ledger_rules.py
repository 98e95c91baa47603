"""The ledger's arithmetic and money formats, without a database."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.account.domain import HOUSE_ACCOUNT_BY_REASON
from services.account.domain import NEGATIVE_ALLOWED
from services.account.domain import Reason
from services.account.domain import WithdrawalAction
from services.account.domain import WithdrawalStatus
from services.account.domain import format_money
from services.account.domain import next_balance
from services.account.domain import parse_amount
from services.account.domain import withdrawal_action
from services.platform.errors import DomainError
from tradingmesh.common.v1.errors_pb2 import ErrorReason


def test_a_credit_moves_the_balance_and_the_sequence_by_exactly_one() -> None:
    posting = next_balance(Decimal("100.00"), 7, Decimal("0.01"), Reason.DEPOSIT, "USD")

    assert posting.balance_after == Decimal("100.01")
    assert posting.sequence == 8


def test_a_debit_to_exactly_zero_is_allowed() -> None:
    posting = next_balance(Decimal("50"), 1, Decimal("-50"), Reason.WITHDRAWAL, "USD")

    assert posting.balance_after == 0


@pytest.mark.parametrize("reason", sorted(set(Reason) - NEGATIVE_ALLOWED))
def test_a_debit_beyond_the_balance_is_insufficient_funds(reason: Reason) -> None:
    with pytest.raises(DomainError) as refused:
        next_balance(Decimal("10.00"), 3, Decimal("-10.01"), reason, "USD")

    assert refused.value.reason == ErrorReason.ERROR_REASON_INSUFFICIENT_FUNDS
    assert refused.value.metadata["balance"] == "10.00"
    assert refused.value.metadata["requested"] == "10.01"


@pytest.mark.parametrize(
    "reason", [Reason.REALIZED_PNL, Reason.COMMISSION, Reason.SWAP, Reason.STOP_OUT_LOSS]
)
def test_booked_trading_results_may_take_the_balance_below_zero(reason: Reason) -> None:
    posting = next_balance(Decimal("10"), 3, Decimal("-25"), reason, "USD")

    assert posting.balance_after == Decimal("-15")
    assert posting.sequence == 4


def test_only_trading_results_may_take_the_balance_below_zero() -> None:
    # A rollover's swap is a fact like a fill's commission (ADR 0010): booked, never refused.
    assert frozenset(
        {Reason.REALIZED_PNL, Reason.COMMISSION, Reason.SWAP, Reason.STOP_OUT_LOSS}
    ) == (NEGATIVE_ALLOWED)


def test_a_credit_to_a_negative_balance_is_allowed_even_if_it_stays_negative() -> None:
    posting = next_balance(Decimal("-15"), 4, Decimal("5"), Reason.DEPOSIT, "USD")

    assert posting.balance_after == Decimal("-10")


def test_a_zero_amount_is_never_posted() -> None:
    with pytest.raises(ValueError, match="zero"):
        next_balance(Decimal("1"), 0, Decimal("0"), Reason.ADJUSTMENT, "USD")


def test_every_reason_has_a_house_account() -> None:
    assert set(HOUSE_ACCOUNT_BY_REASON) == set(Reason)
    assert HOUSE_ACCOUNT_BY_REASON[Reason.DEPOSIT] == "house:cash"
    assert HOUSE_ACCOUNT_BY_REASON[Reason.COMMISSION] == "house:fees"


@pytest.mark.parametrize(
    ("text", "currency", "expected"),
    [
        ("250.00", "USD", Decimal("250.00")),
        ("1", "USD", Decimal(1)),
        ("1000", "JPY", Decimal(1000)),
    ],
)
def test_amounts_within_the_minor_unit_are_exact(
    text: str, currency: str, expected: Decimal
) -> None:
    assert parse_amount(text, currency, "amount", positive=True) == expected


@pytest.mark.parametrize(("text", "currency"), [("0.001", "USD"), ("1.5", "JPY")])
def test_amounts_beyond_the_minor_unit_are_too_many_decimals(text: str, currency: str) -> None:
    with pytest.raises(DomainError) as refused:
        parse_amount(text, currency, "amount")

    assert refused.value.reason == ErrorReason.ERROR_REASON_TOO_MANY_DECIMALS


@pytest.mark.parametrize("text", ["0", "0.00", "-1", "1e3", "abc", ""])
def test_bad_positive_amounts_are_validation_failed(text: str) -> None:
    with pytest.raises(DomainError) as refused:
        parse_amount(text, "USD", "amount", positive=True)

    assert refused.value.reason == ErrorReason.ERROR_REASON_VALIDATION_FAILED


@pytest.mark.parametrize(
    ("stored", "currency", "wire"),
    [
        (Decimal("10000.000000000000"), "USD", "10000.00"),
        (Decimal("-3.500000000000"), "USD", "-3.50"),
        (Decimal("0.125000000000"), "USD", "0.125"),
        (Decimal("12.000000000000"), "JPY", "12"),
    ],
)
def test_money_is_formatted_with_the_currencys_decimals(
    stored: Decimal, currency: str, wire: str
) -> None:
    assert format_money(stored, currency) == wire


def test_withdrawal_transitions_from_provider_reports() -> None:
    pending, processing = WithdrawalStatus.PENDING, WithdrawalStatus.PROCESSING
    assert withdrawal_action(pending, "pending") is WithdrawalAction.TO_PROCESSING
    assert withdrawal_action(processing, "completed") is WithdrawalAction.COMPLETE
    assert withdrawal_action(processing, "failed") is WithdrawalAction.FAIL
    assert withdrawal_action(WithdrawalStatus.COMPLETED, "completed") is WithdrawalAction.IGNORE


@pytest.mark.parametrize(
    ("status", "report"),
    [(WithdrawalStatus.REJECTED, "completed"), (WithdrawalStatus.COMPLETED, "failed")],
)
def test_conflicting_provider_reports_are_failed_precondition(
    status: WithdrawalStatus, report: str
) -> None:
    with pytest.raises(DomainError) as refused:
        withdrawal_action(status, report)

    assert refused.value.reason == ErrorReason.ERROR_REASON_INVALID_STATE


def test_exactly_two_status_and_report_pairs_are_conflicts() -> None:
    conflicts = set()
    for status in WithdrawalStatus:
        for report in ("pending", "completed", "failed"):
            try:
                withdrawal_action(status, report)
            except DomainError:
                conflicts.add((status, report))

    assert conflicts == {
        (WithdrawalStatus.REJECTED, "completed"),
        (WithdrawalStatus.COMPLETED, "failed"),
    }

"""The statuses of users and trading accounts: the contract's values, every (current,
requested) pair of the change tables, the closing preconditions, who may withdraw and who may
decide a balance adjustment, without a database."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from typing import TypeVar

import pytest

from services.account.domain import TRADING_ACCOUNT_STATUS_STEPS
from services.account.domain import USER_STATUS_STEPS
from services.account.domain import AdjustmentStatus
from services.account.domain import StatusStep
from services.account.domain import TradingAccountStatus
from services.account.domain import UserStatus
from services.account.domain import check_account_may_close
from services.account.domain import check_decidable
from services.account.domain import check_may_withdraw
from services.account.domain import check_user_may_close
from services.account.domain import status_step
from services.platform.enums import enum_name
from services.platform.errors import DomainError
from tradingmesh.account.v1 import account_pb2 as pb
from tradingmesh.common.v1.errors_pb2 import ErrorReason

S = TypeVar("S", bound=enum.StrEnum)
U, A = UserStatus, TradingAccountStatus
UNCHANGED, CHANGE, CLOSE = StatusStep.UNCHANGED, StatusStep.CHANGE, StatusStep.CLOSE
REFUSED = None

# Spelled out pair by pair: every row but CLOSED's may change, into CLOSED only by CLOSE.
USER_EXPECTED: dict[tuple[UserStatus, UserStatus], StatusStep | None] = {
    (U.ACTIVE, U.ACTIVE): UNCHANGED,
    (U.ACTIVE, U.DISABLED): CHANGE,
    (U.ACTIVE, U.CLOSED): CLOSE,
    (U.DISABLED, U.ACTIVE): CHANGE,
    (U.DISABLED, U.DISABLED): UNCHANGED,
    (U.DISABLED, U.CLOSED): CLOSE,
    (U.CLOSED, U.ACTIVE): REFUSED,
    (U.CLOSED, U.DISABLED): REFUSED,
    (U.CLOSED, U.CLOSED): UNCHANGED,
}
ACCOUNT_EXPECTED: dict[tuple[TradingAccountStatus, TradingAccountStatus], StatusStep | None] = {
    (A.ACTIVE, A.ACTIVE): UNCHANGED,
    (A.ACTIVE, A.CLOSE_ONLY): CHANGE,
    (A.ACTIVE, A.DISABLED): CHANGE,
    (A.ACTIVE, A.CLOSED): CLOSE,
    (A.CLOSE_ONLY, A.ACTIVE): CHANGE,
    (A.CLOSE_ONLY, A.CLOSE_ONLY): UNCHANGED,
    (A.CLOSE_ONLY, A.DISABLED): CHANGE,
    (A.CLOSE_ONLY, A.CLOSED): CLOSE,
    (A.DISABLED, A.ACTIVE): CHANGE,
    (A.DISABLED, A.CLOSE_ONLY): CHANGE,
    (A.DISABLED, A.DISABLED): UNCHANGED,
    (A.DISABLED, A.CLOSED): CLOSE,
    (A.CLOSED, A.ACTIVE): REFUSED,
    (A.CLOSED, A.CLOSE_ONLY): REFUSED,
    (A.CLOSED, A.DISABLED): REFUSED,
    (A.CLOSED, A.CLOSED): UNCHANGED,
}


@pytest.mark.parametrize(
    ("statuses", "wrapper"),
    [(UserStatus, pb.UserStatus), (TradingAccountStatus, pb.TradingAccountStatus)],
)
def test_the_domain_statuses_are_the_contracts_stored_names(
    statuses: type[enum.StrEnum], wrapper: Any
) -> None:
    contract = {enum_name(wrapper, v) for v in wrapper.values()}

    assert {s.value for s in statuses} == contract - {"UNSPECIFIED"}


def test_the_expected_tables_name_every_pair() -> None:
    assert set(USER_EXPECTED) == {(a, b) for a in UserStatus for b in UserStatus}
    assert set(ACCOUNT_EXPECTED) == {(a, b) for a in A for b in A}


@pytest.mark.parametrize(("pair", "expected"), sorted(USER_EXPECTED.items()))
def test_a_users_status_change(
    pair: tuple[UserStatus, UserStatus], expected: StatusStep | None
) -> None:
    _check_step(USER_STATUS_STEPS, pair, expected, "user")


@pytest.mark.parametrize(("pair", "expected"), sorted(ACCOUNT_EXPECTED.items()))
def test_a_trading_accounts_status_change(
    pair: tuple[TradingAccountStatus, TradingAccountStatus], expected: StatusStep | None
) -> None:
    _check_step(TRADING_ACCOUNT_STATUS_STEPS, pair, expected, "account")


def _check_step(
    steps: Mapping[tuple[S, S], StatusStep],
    pair: tuple[S, S],
    expected: StatusStep | None,
    noun: str,
) -> None:
    current, requested = pair
    if expected is REFUSED:
        with pytest.raises(DomainError) as refused:
            status_step(steps, current, requested, noun)
        assert refused.value.reason == ErrorReason.ERROR_REASON_INVALID_STATE
        assert refused.value.message == f"the {noun} is closed for good"
    else:
        assert status_step(steps, current, requested, noun) is expected


def test_a_user_with_an_account_not_closed_cannot_be_closed() -> None:
    check_user_may_close(0)
    with pytest.raises(DomainError) as refused:
        check_user_may_close(1)
    assert refused.value.reason == ErrorReason.ERROR_REASON_INVALID_STATE


@pytest.mark.parametrize(
    ("balance", "unfinished"), [(Decimal("0.01"), 0), (Decimal("-0.01"), 0), (Decimal(0), 1)]
)
def test_an_account_with_money_or_an_unfinished_withdrawal_cannot_be_closed(
    balance: Decimal, unfinished: int
) -> None:
    with pytest.raises(DomainError) as refused:
        check_account_may_close(balance, "USD", unfinished)
    assert refused.value.reason == ErrorReason.ERROR_REASON_INVALID_STATE
    assert refused.value.metadata["balance"] == f"{balance:.2f}"


def test_an_account_with_a_zero_balance_and_no_unfinished_withdrawal_may_close() -> None:
    check_account_may_close(Decimal("0E-12"), "USD", 0)


# ---- withdrawals and balance adjustments --------------------------------------------------------


def test_a_verified_active_user_may_withdraw_from_an_active_account() -> None:
    check_may_withdraw("APPROVED", "ACTIVE", "ACTIVE")


@pytest.mark.parametrize(
    ("kyc", "user", "account", "reason"),
    [
        ("PENDING", "ACTIVE", "ACTIVE", ErrorReason.ERROR_REASON_PERMISSION_DENIED),
        ("APPROVED", "DISABLED", "ACTIVE", ErrorReason.ERROR_REASON_ACCOUNT_DISABLED),
        ("APPROVED", "ACTIVE", "DISABLED", ErrorReason.ERROR_REASON_ACCOUNT_DISABLED),
        ("APPROVED", "ACTIVE", "CLOSED", ErrorReason.ERROR_REASON_ACCOUNT_DISABLED),
    ],
)
def test_a_withdrawal_needs_kyc_an_active_user_and_an_account_money_may_leave(
    kyc: str, user: str, account: str, reason: int
) -> None:
    with pytest.raises(DomainError) as refused:
        check_may_withdraw(kyc, user, account)

    assert refused.value.reason == reason


def test_an_adjustment_is_decided_by_another_than_its_maker_while_it_waits() -> None:
    check_decidable("maker", "checker", "PENDING_APPROVAL", AdjustmentStatus.APPROVED)
    check_decidable("maker", "checker", "APPROVED", AdjustmentStatus.APPROVED)  # a retry

    with pytest.raises(DomainError) as own:
        check_decidable("maker", "maker", "PENDING_APPROVAL", AdjustmentStatus.APPROVED)
    with pytest.raises(DomainError) as decided:
        check_decidable("maker", "checker", "REJECTED", AdjustmentStatus.APPROVED)

    assert own.value.reason == ErrorReason.ERROR_REASON_MAKER_CHECKER_VIOLATION
    assert decided.value.reason == ErrorReason.ERROR_REASON_INVALID_STATE
    assert decided.value.message == "the adjustment was rejected"

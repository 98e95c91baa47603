"""Staff lists filter by what the request names (users, trading accounts, withdrawals,
balance adjustments, audit records), newest first, paged; a rejected adjustment stays rejected."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.callers import AccountStack
from tests.integration.callers import account_stack
from tests.integration.callers import staff
from tests.integration.conftest import RunningStack
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb
from tradingmesh.account.v1 import account_pb2 as pb


@pytest.fixture(scope="module")
def stack(running_stack: RunningStack) -> Iterator[AccountStack]:
    yield from account_stack(running_stack)


def test_users_and_trading_accounts_are_listed_by_their_filters(stack: AccountStack) -> None:
    backoffice = staff()
    who = stack.as_(backoffice)
    user = stack.new_user(backoffice)
    first = stack.new_account(backoffice, user.id)
    second = stack.new_account(backoffice, user.id)
    stack.admin.UpdateTradingAccountStatus(
        admin_pb.UpdateTradingAccountStatusRequest(
            account_id=first.id, status=pb.TRADING_ACCOUNT_STATUS_CLOSE_ONLY, reason="test"
        ),
        metadata=who,
    )

    def users(request: admin_pb.ListUsersRequest) -> list[str]:
        return [u.id for u in stack.admin.ListUsers(request, metadata=who).users]

    named = admin_pb.ListUsersRequest(
        query=user.username.upper(),
        statuses=[pb.USER_STATUS_ACTIVE],
        kyc_statuses=[pb.KYC_STATUS_APPROVED],
        roles=[pb.ROLE_TRADER],
    )
    assert users(named) == [user.id]
    disabled = admin_pb.ListUsersRequest(query=user.username, statuses=[pb.USER_STATUS_DISABLED])
    assert users(disabled) == []
    assert users(admin_pb.ListUsersRequest(query="%")) == []  # a LIKE wildcard is a character

    def accounts(request: admin_pb.ListTradingAccountsRequest) -> list[str]:
        return [a.id for a in stack.admin.ListTradingAccounts(request, metadata=who).accounts]

    of_user = admin_pb.ListTradingAccountsRequest(user_id=user.id)
    assert accounts(of_user) == [second.id, first.id]
    close_only = admin_pb.ListTradingAccountsRequest(
        user_id=user.id, statuses=[pb.TRADING_ACCOUNT_STATUS_CLOSE_ONLY]
    )
    assert accounts(close_only) == [first.id]
    by_number = admin_pb.ListTradingAccountsRequest(account_number=second.account_number)
    assert accounts(by_number) == [second.id]
    page = stack.admin.ListTradingAccounts(
        admin_pb.ListTradingAccountsRequest(user_id=user.id, page_size=1), metadata=who
    )
    assert [a.id for a in page.accounts] == [second.id]
    following = admin_pb.ListTradingAccountsRequest(
        user_id=user.id, page_size=1, page_token=page.next_page_token
    )
    assert accounts(following) == [first.id]
    assert (
        stack.admin.SearchWithdrawals(
            admin_pb.SearchWithdrawalsRequest(account_id=first.id), metadata=who
        ).withdrawals
        == []
    )


def test_a_rejected_adjustment_is_listed_and_audited(stack: AccountStack) -> None:
    maker, checker, admin = staff(), staff(), staff("admin")
    user = stack.new_user(maker)
    account = stack.new_account(maker, user.id)
    adjustment = stack.admin.RequestBalanceAdjustment(
        admin_pb.RequestBalanceAdjustmentRequest(
            account_id=account.id, amount="5.00", reason="goodwill", idempotency_key="adj-1"
        ),
        metadata=stack.as_(maker),
    ).balance_adjustment

    def reject() -> pb.BalanceAdjustment:
        return stack.admin.RejectBalanceAdjustment(
            admin_pb.RejectBalanceAdjustmentRequest(
                balance_adjustment_id=adjustment.id, comment="no"
            ),
            metadata=stack.as_(checker),
        ).balance_adjustment

    assert reject().status == pb.BALANCE_ADJUSTMENT_STATUS_REJECTED
    assert reject().status == pb.BALANCE_ADJUSTMENT_STATUS_REJECTED

    def listed(status: pb.BalanceAdjustmentStatus.ValueType) -> list[str]:
        return [
            a.id
            for a in stack.admin.ListBalanceAdjustments(
                admin_pb.ListBalanceAdjustmentsRequest(account_id=account.id, statuses=[status]),
                metadata=stack.as_(checker),
            ).balance_adjustments
        ]

    assert listed(pb.BALANCE_ADJUSTMENT_STATUS_REJECTED) == [adjustment.id]
    assert listed(pb.BALANCE_ADJUSTMENT_STATUS_APPROVED) == []
    records = stack.admin.ListAuditRecords(
        admin_pb.ListAuditRecordsRequest(resource_id=adjustment.id), metadata=stack.as_(admin)
    ).audit_records
    assert [r.action for r in records] == [
        "balance_adjustment.reject",
        "balance_adjustment.request",
    ]
    only_reject = stack.admin.ListAuditRecords(
        admin_pb.ListAuditRecordsRequest(
            resource_id=adjustment.id, action="balance_adjustment.reject"
        ),
        metadata=stack.as_(admin),
    ).audit_records
    assert [r.resource_id for r in only_reject] == [adjustment.id]

"""Staff set the status of users and trading accounts (UpdateUserStatus,
UpdateTradingAccountStatus): the same status changes nothing, CLOSED is for good, closing needs
a zero balance and no unfinished withdrawal (an account) or every account closed (a user), and
each change writes one audit record with the operator's reason."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from tests.integration.callers import AccountStack
from tests.integration.callers import account_stack
from tests.integration.callers import staff
from tests.integration.conftest import RunningStack
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb
from tradingmesh.account.v1 import account_pb2 as pb
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import ErrorDetails
from tradingmesh.errors import details_of


@pytest.fixture(scope="module")
def stack(running_stack: RunningStack) -> Iterator[AccountStack]:
    yield from account_stack(running_stack)


def _refused(call: Callable[[], Any]) -> ErrorDetails:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return details_of(refused.value)


def _audited(stack: AccountStack, action: str, resource_id: str) -> list[str]:
    """The `after` of each audit record of `action` on the resource, oldest first."""
    with stack.db() as conn:
        rows = conn.execute(
            "SELECT after FROM account.audit_records WHERE action = %s AND resource_id = %s"
            " ORDER BY sequence",
            (action, resource_id),
        ).fetchall()
    return [r[0] for r in rows]


def test_a_trading_accounts_status_changes_and_closing(stack: AccountStack) -> None:
    backoffice = staff()
    who = stack.as_(backoffice)
    user = stack.new_user(backoffice)
    funded = stack.new_account(backoffice, user.id)
    empty = stack.new_account(backoffice, user.id)
    stack.deposit_direct(funded.account_number, "10.00")

    def set_status(
        account: pb.TradingAccount, status: pb.TradingAccountStatus.ValueType
    ) -> pb.TradingAccount:
        return stack.admin.UpdateTradingAccountStatus(
            admin_pb.UpdateTradingAccountStatusRequest(
                account_id=account.id, status=status, reason="test"
            ),
            metadata=who,
        ).account

    same = set_status(funded, pb.TRADING_ACCOUNT_STATUS_ACTIVE)
    assert same.status == pb.TRADING_ACCOUNT_STATUS_ACTIVE
    assert _audited(stack, "trading_account.update_status", funded.id) == []

    assert set_status(funded, pb.TRADING_ACCOUNT_STATUS_DISABLED).status == (
        pb.TRADING_ACCOUNT_STATUS_DISABLED
    )
    records = _audited(stack, "trading_account.update_status", funded.id)
    assert len(records) == 1
    assert '"reason":"test"' in records[0].replace(" ", "")

    with_money = _refused(lambda: set_status(funded, pb.TRADING_ACCOUNT_STATUS_CLOSED))
    assert with_money.code == grpc.StatusCode.FAILED_PRECONDITION
    assert with_money.reason == ErrorReason.ERROR_REASON_INVALID_STATE
    assert with_money.metadata["balance"] == "10.00"

    assert set_status(empty, pb.TRADING_ACCOUNT_STATUS_CLOSE_ONLY).status == (
        pb.TRADING_ACCOUNT_STATUS_CLOSE_ONLY
    )
    assert set_status(empty, pb.TRADING_ACCOUNT_STATUS_CLOSED).status == (
        pb.TRADING_ACCOUNT_STATUS_CLOSED
    )
    assert set_status(empty, pb.TRADING_ACCOUNT_STATUS_CLOSED).status == (
        pb.TRADING_ACCOUNT_STATUS_CLOSED
    )
    for_good = _refused(lambda: set_status(empty, pb.TRADING_ACCOUNT_STATUS_ACTIVE))
    assert for_good.reason == ErrorReason.ERROR_REASON_INVALID_STATE
    assert for_good.message == "the account is closed for good"
    assert len(_audited(stack, "trading_account.update_status", empty.id)) == 2
    assert len(_audited(stack, "trading_account.update_status", funded.id)) == 1


def test_a_user_is_closed_only_after_every_account(stack: AccountStack) -> None:
    backoffice = staff()
    who = stack.as_(backoffice)
    user = stack.new_user(backoffice)
    account = stack.new_account(backoffice, user.id)

    def set_status(status: pb.UserStatus.ValueType) -> pb.User:
        return stack.admin.UpdateUserStatus(
            admin_pb.UpdateUserStatusRequest(user_id=user.id, status=status, reason="test"),
            metadata=who,
        ).user

    assert set_status(pb.USER_STATUS_DISABLED).status == pb.USER_STATUS_DISABLED
    assert set_status(pb.USER_STATUS_ACTIVE).status == pb.USER_STATUS_ACTIVE
    open_account = _refused(lambda: set_status(pb.USER_STATUS_CLOSED))
    assert open_account.reason == ErrorReason.ERROR_REASON_INVALID_STATE
    assert open_account.message == "the user still has trading accounts that are not closed"

    stack.admin.UpdateTradingAccountStatus(
        admin_pb.UpdateTradingAccountStatusRequest(
            account_id=account.id, status=pb.TRADING_ACCOUNT_STATUS_CLOSED, reason="test"
        ),
        metadata=who,
    )
    assert set_status(pb.USER_STATUS_CLOSED).status == pb.USER_STATUS_CLOSED
    assert set_status(pb.USER_STATUS_CLOSED).status == pb.USER_STATUS_CLOSED
    for_good = _refused(lambda: set_status(pb.USER_STATUS_DISABLED))
    assert for_good.reason == ErrorReason.ERROR_REASON_INVALID_STATE
    assert for_good.message == "the user is closed for good"
    assert len(_audited(stack, "user.update_status", user.id)) == 3

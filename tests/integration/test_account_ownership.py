"""A user can never read or act on another user's accounts (NOT_FOUND, nothing changed)."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from tests.integration.callers import AccountStack
from tests.integration.callers import Who
from tests.integration.callers import account_stack
from tests.integration.callers import staff
from tests.integration.conftest import RunningStack
from tradingmesh.account.v1 import account_service_pb2 as api_pb
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import details_of


@pytest.fixture(scope="module")
def stack(running_stack: RunningStack) -> Iterator[AccountStack]:
    yield from account_stack(running_stack)


def _refusal(call: Callable[[], Any]) -> tuple[grpc.StatusCode, int]:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    details = details_of(refused.value)
    return details.code, details.reason


def test_user_a_cannot_read_or_act_on_user_bs_account(stack: AccountStack) -> None:
    backoffice = staff()
    alice, bob = stack.new_user(backoffice), stack.new_user(backoffice)
    bobs = stack.new_account(backoffice, bob.id)
    stack.deposit_direct(bobs.account_number, "500.00")
    as_alice = stack.as_(Who(alice.id, "trader"))
    before = stack.balance(bobs.id)
    not_found = (grpc.StatusCode.NOT_FOUND, ErrorReason.ERROR_REASON_NOT_FOUND)

    calls: list[Callable[[], Any]] = [
        lambda: stack.api.GetAccount(
            api_pb.GetAccountRequest(account_id=bobs.id), metadata=as_alice
        ),
        lambda: stack.api.ListLedgerEntries(
            api_pb.ListLedgerEntriesRequest(account_id=bobs.id), metadata=as_alice
        ),
        lambda: stack.api.ListWithdrawals(
            api_pb.ListWithdrawalsRequest(account_id=bobs.id), metadata=as_alice
        ),
        lambda: stack.api.RequestWithdrawal(
            api_pb.RequestWithdrawalRequest(
                account_id=bobs.id, amount="100.00", idempotency_key="steal-1"
            ),
            metadata=as_alice,
        ),
    ]

    for call in calls:
        assert _refusal(call) == not_found
    mine = stack.api.ListAccounts(api_pb.ListAccountsRequest(), metadata=as_alice).accounts
    assert bobs.id not in {a.id for a in mine}
    assert stack.balance(bobs.id) == before
    with stack.db() as conn:
        withdrawals = conn.execute(
            "SELECT count(*) FROM account.withdrawals WHERE account_id = %s", (bobs.id,)
        ).fetchone()
    assert withdrawals == (0,)


def test_a_missing_account_is_answered_exactly_like_anothers(stack: AccountStack) -> None:
    backoffice = staff()
    alice = stack.new_user(backoffice)
    as_alice = stack.as_(Who(alice.id, "trader"))

    code, reason = _refusal(
        lambda: stack.api.GetAccount(
            api_pb.GetAccountRequest(account_id="00000000-0000-4000-8000-000000000000"),
            metadata=as_alice,
        )
    )

    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, ErrorReason.ERROR_REASON_NOT_FOUND)


def test_the_owner_reads_their_own_account_and_ledger(stack: AccountStack) -> None:
    backoffice = staff()
    bob = stack.new_user(backoffice)
    account = stack.new_account(backoffice, bob.id)
    stack.deposit_direct(account.account_number, "42.50")
    as_bob = stack.as_(Who(bob.id, "trader"))

    got = stack.api.GetAccount(api_pb.GetAccountRequest(account_id=account.id), metadata=as_bob)
    entries = stack.api.ListLedgerEntries(
        api_pb.ListLedgerEntriesRequest(account_id=account.id), metadata=as_bob
    ).entries

    assert got.summary.balance == "42.50"
    assert [(e.sequence, e.amount, e.balance_after) for e in entries] == [(1, "42.50", "42.50")]

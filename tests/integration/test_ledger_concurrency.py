"""50 parallel deposits and withdrawals on one account, against the real stack."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import grpc
import pytest

from tests.integration.callers import AccountStack
from tests.integration.callers import Who
from tests.integration.callers import account_stack
from tests.integration.callers import staff
from tests.integration.conftest import RunningStack
from tradingmesh.account.v1 import account_service_pb2 as api_pb
from tradingmesh.account.v1 import webhook_service_pb2 as wh_pb
from tradingmesh.errors import details_of
from tradingmesh.errors import reason_string


@pytest.fixture(scope="module")
def stack(running_stack: RunningStack) -> Iterator[AccountStack]:
    yield from account_stack(running_stack)


def test_parallel_deposits_and_withdrawals_end_with_the_exact_balance(stack: AccountStack) -> None:
    backoffice = staff()
    user = stack.new_user(backoffice)
    account = stack.new_account(backoffice, user.id)
    owner = Who(user.id, "trader")
    assert stack.deposit_direct(account.account_number, "1000.00") == (
        wh_pb.WEBHOOK_EVENT_OUTCOME_APPLIED
    )

    def deposit(i: int) -> str:
        return str(
            stack.deposit_direct(account.account_number, "10.00", event_id=f"par-{account.id}-{i}")
        )

    def withdraw(i: int) -> str:
        try:
            stack.api.RequestWithdrawal(
                api_pb.RequestWithdrawalRequest(
                    account_id=account.id, amount="60.00", idempotency_key=f"wd-{i}"
                ),
                metadata=stack.as_(owner),
            )
        except grpc.RpcError as error:
            return reason_string(details_of(error).reason)
        return "ok"

    with ThreadPoolExecutor(max_workers=16) as pool:
        deposits = [pool.submit(deposit, i) for i in range(25)]
        withdrawals = [pool.submit(withdraw, i) for i in range(25)]
        deposit_results = [f.result() for f in deposits]
        withdrawal_results = [f.result() for f in withdrawals]

    succeeded = withdrawal_results.count("ok")
    refused = withdrawal_results.count("INSUFFICIENT_FUNDS")
    assert deposit_results == [str(wh_pb.WEBHOOK_EVENT_OUTCOME_APPLIED)] * 25
    assert succeeded + refused == 25, withdrawal_results
    # 1250.00 available in total: at most 20 withdrawals of 60.00 fit.
    assert succeeded <= 20
    assert refused >= 5
    expected = Decimal("1000.00") + 25 * Decimal("10.00") - succeeded * Decimal("60.00")
    cached, summed, entries = stack.balance(account.id)
    assert cached == summed == expected
    assert expected >= 0
    assert entries == 1 + 25 + succeeded
    with stack.db() as conn:
        sequences = [
            row[0]
            for row in conn.execute(
                "SELECT sequence FROM account.ledger_entries WHERE account_id = %s"
                " ORDER BY sequence",
                (account.id,),
            )
        ]
        never_negative = conn.execute(
            "SELECT min(balance_after) FROM account.ledger_entries WHERE account_id = %s",
            (account.id,),
        ).fetchone()
        unbalanced = conn.execute(
            "SELECT count(*) FROM (SELECT journal_id, sum(amount) AS s FROM ("
            " SELECT journal_id, amount FROM account.ledger_entries WHERE account_id = %s"
            " UNION ALL SELECT h.journal_id, h.amount FROM account.house_ledger_entries h"
            " JOIN account.ledger_entries e ON e.journal_id = h.journal_id"
            " WHERE e.account_id = %s) legs GROUP BY journal_id) j WHERE s <> 0",
            (account.id, account.id),
        ).fetchone()
    assert sequences == list(range(1, entries + 1))
    assert never_negative is not None
    assert never_negative[0] >= 0
    assert unbalanced == (0,)
    summary = stack.api.GetAccount(
        api_pb.GetAccountRequest(account_id=account.id), metadata=stack.as_(owner)
    ).summary
    assert Decimal(summary.balance) == expected

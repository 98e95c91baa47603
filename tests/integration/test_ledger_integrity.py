"""The ledger and the audit log can only grow, the balance cache matches the entries, a
tampered audit row is detected, and the maker of an adjustment cannot approve it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal

import grpc
import psycopg
import pytest

from stack.paths import REPO
from tests.integration.callers import AccountStack
from tests.integration.callers import Who
from tests.integration.callers import account_stack
from tests.integration.callers import staff
from tests.integration.conftest import RunningStack
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb
from tradingmesh.account.v1 import account_pb2 as pb
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import details_of


@pytest.fixture(scope="module")
def stack(running_stack: RunningStack) -> Iterator[AccountStack]:
    yield from account_stack(running_stack)


def test_every_cached_balance_equals_the_sum_of_its_entries(stack: AccountStack) -> None:
    backoffice = staff()
    account = stack.new_account(backoffice, stack.new_user(backoffice).id)
    stack.deposit_direct(account.account_number, "10.01")
    stack.deposit_direct(account.account_number, "0.99")

    with stack.db() as conn:
        mismatched = conn.execute(
            "SELECT b.account_id FROM account.balances b LEFT JOIN ("
            " SELECT account_id, sum(amount) AS total, max(sequence) AS last"
            " FROM account.ledger_entries GROUP BY account_id) e ON e.account_id = b.account_id"
            " WHERE b.balance <> COALESCE(e.total, 0) OR b.last_sequence <> COALESCE(e.last, 0)"
        ).fetchall()
        books = conn.execute(
            "SELECT (SELECT COALESCE(sum(amount), 0) FROM account.ledger_entries)"
            " + (SELECT COALESCE(sum(amount), 0) FROM account.house_ledger_entries)"
        ).fetchone()

    assert mismatched == []
    assert books == (Decimal(0),)
    assert stack.balance(account.id)[0] == Decimal("11.00")


@pytest.mark.parametrize(
    "table", ["account.ledger_entries", "account.house_ledger_entries", "account.audit_records"]
)
@pytest.mark.parametrize("statement", ["UPDATE {} SET created_at = now()", "DELETE FROM {}"])
def test_append_only_tables_refuse_update_and_delete(
    stack: AccountStack, table: str, statement: str
) -> None:
    backoffice = staff()
    stack.new_account(backoffice, stack.new_user(backoffice).id)  # at least one audit record
    with stack.db() as conn:
        before = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        with pytest.raises(psycopg.Error, match="append-only"):
            conn.execute(statement.format(table))
        after = conn.execute(f"SELECT count(*) FROM {table}").fetchone()

    assert before == after


def test_an_unbalanced_journal_cannot_commit(stack: AccountStack) -> None:
    with stack.db() as conn, pytest.raises(psycopg.Error, match="does not balance"):
        conn.execute(
            "INSERT INTO account.house_ledger_entries (id, journal_id, house_account, reason,"
            " amount, currency) VALUES (gen_random_uuid(), gen_random_uuid(), 'house:cash',"
            " 'DEPOSIT', 5, 'USD')"
        )


def _verify(stack: AccountStack) -> admin_pb.VerifyAuditChainResponse:
    response: admin_pb.VerifyAuditChainResponse = stack.admin.VerifyAuditChain(
        admin_pb.VerifyAuditChainRequest(), metadata=stack.as_(staff("admin"))
    )
    return response


def _verify_command(stack: AccountStack) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TM_AUDIT_DATABASE_URL": stack.database_url}
    return subprocess.run(
        [sys.executable, "-m", "services.account.audit", "verify"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_tampered_audit_record_breaks_the_chain(stack: AccountStack) -> None:
    backoffice = staff()
    user = stack.new_user(backoffice)
    stack.new_account(backoffice, user.id)
    assert _verify(stack).intact
    assert _verify_command(stack).returncode == 0
    with stack.db() as conn:
        row = conn.execute(
            "SELECT sequence, after FROM account.audit_records WHERE resource_id = %s"
            " ORDER BY sequence LIMIT 1",
            (user.id,),
        ).fetchone()
        assert row is not None
        sequence, original = row

        def rewrite(value: str) -> None:
            # What only a database superuser could do: switch the guard off and edit history.
            with conn.transaction():
                conn.execute("ALTER TABLE account.audit_records DISABLE TRIGGER USER")
                conn.execute(
                    "UPDATE account.audit_records SET after = %s WHERE sequence = %s",
                    (value, sequence),
                )
                conn.execute("ALTER TABLE account.audit_records ENABLE TRIGGER USER")

        rewrite(original.replace("Test User", "Someone Else"))
        try:
            verdict = _verify(stack)
            command = _verify_command(stack)
        finally:
            rewrite(original)  # the rest of the session shares this chain

    assert not verdict.intact
    assert verdict.first_broken_sequence == sequence
    assert verdict.problem == "hash mismatch"
    assert command.returncode == 1
    assert '"intact": false' in command.stdout
    assert _verify(stack).intact


def test_the_maker_cannot_approve_their_own_adjustment(stack: AccountStack) -> None:
    maker, checker = staff(), staff()
    account = stack.new_account(maker, stack.new_user(maker).id)
    stack.deposit_direct(account.account_number, "100.00")
    adjustment = stack.admin.RequestBalanceAdjustment(
        admin_pb.RequestBalanceAdjustmentRequest(
            account_id=account.id, amount="-30.00", reason="Duplicate deposit", idempotency_key="a1"
        ),
        metadata=stack.as_(maker),
    ).balance_adjustment

    with pytest.raises(grpc.RpcError) as refused:
        stack.admin.ApproveBalanceAdjustment(
            admin_pb.ApproveBalanceAdjustmentRequest(balance_adjustment_id=adjustment.id),
            metadata=stack.as_(maker),
        )
    details = details_of(refused.value)
    assert details.code == grpc.StatusCode.PERMISSION_DENIED
    assert details.reason == ErrorReason.ERROR_REASON_MAKER_CHECKER_VIOLATION
    assert stack.balance(account.id)[0] == Decimal("100.00")

    approved = stack.admin.ApproveBalanceAdjustment(
        admin_pb.ApproveBalanceAdjustmentRequest(balance_adjustment_id=adjustment.id),
        metadata=stack.as_(checker),
    )
    retried = stack.admin.ApproveBalanceAdjustment(
        admin_pb.ApproveBalanceAdjustmentRequest(balance_adjustment_id=adjustment.id),
        metadata=stack.as_(checker),
    )

    assert approved.balance_adjustment.status == pb.BALANCE_ADJUSTMENT_STATUS_APPROVED
    assert approved.ledger_entry.amount == "-30.00"
    assert approved.ledger_entry.balance_after == "70.00"
    assert retried.ledger_entry.id == approved.ledger_entry.id
    cached, summed, entries = stack.balance(account.id)
    assert cached == summed == Decimal("70.00")
    assert entries == 2


def test_an_adjustment_that_would_overdraw_stays_pending(stack: AccountStack) -> None:
    maker, checker = staff(), staff("admin")
    account = stack.new_account(maker, stack.new_user(maker).id)
    adjustment = stack.admin.RequestBalanceAdjustment(
        admin_pb.RequestBalanceAdjustmentRequest(
            account_id=account.id, amount="-1.00", reason="Fee", idempotency_key="a2"
        ),
        metadata=stack.as_(maker),
    ).balance_adjustment

    with pytest.raises(grpc.RpcError) as refused:
        stack.admin.ApproveBalanceAdjustment(
            admin_pb.ApproveBalanceAdjustmentRequest(balance_adjustment_id=adjustment.id),
            metadata=stack.as_(Who(checker.subject, "backoffice")),
        )

    assert details_of(refused.value).reason == ErrorReason.ERROR_REASON_INSUFFICIENT_FUNDS
    listed = stack.admin.ListBalanceAdjustments(
        admin_pb.ListBalanceAdjustmentsRequest(account_id=account.id),
        metadata=stack.as_(maker),
    ).balance_adjustments
    assert [a.status for a in listed] == [pb.BALANCE_ADJUSTMENT_STATUS_PENDING_APPROVAL]

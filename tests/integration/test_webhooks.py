"""Payment webhooks through Envoy's public REST route: only a good, fresh, new event from an
allowed address changes the ledger, and exactly once."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.api import httpbody_pb2

from services.account.webhook_auth import WEBHOOKS_PATH
from services.account.webhooks import WebhookReceiver
from stack.vault import VaultAdmin
from tests.integration.callers import AccountStack
from tests.integration.callers import Who
from tests.integration.callers import account_stack
from tests.integration.callers import deposit_body
from tests.integration.callers import staff
from tests.integration.conftest import RunningStack
from tests.integration.support.waiting import eventually
from tradingmesh.account.v1 import account_pb2 as pb
from tradingmesh.account.v1 import account_service_pb2 as api_pb
from tradingmesh.account.v1 import webhook_service_pb2 as wh_pb
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import details_of

PAYMENTS = "/v1/webhooks/payments/demopay"


@pytest.fixture(scope="module")
def stack(running_stack: RunningStack) -> Iterator[AccountStack]:
    yield from account_stack(running_stack)


@pytest.fixture
def account(stack: AccountStack) -> pb.TradingAccount:
    backoffice = staff()
    return stack.new_account(backoffice, stack.new_user(backoffice).id)


def test_a_good_deposit_credits_exactly_once(
    stack: AccountStack, account: pb.TradingAccount
) -> None:
    raw, signature = stack.signed("demopay", deposit_body(account.account_number, "250.00"))

    first = stack.post_webhook(PAYMENTS, raw, signature)
    replayed = stack.post_webhook(PAYMENTS, raw, signature)

    assert first[0] == 200
    assert first[1]["outcome"] == "WEBHOOK_EVENT_OUTCOME_APPLIED"
    assert replayed[0] == 200
    assert replayed[1]["outcome"] == "WEBHOOK_EVENT_OUTCOME_DUPLICATE"
    assert stack.balance(account.id) == (Decimal("250.00"), Decimal("250.00"), 1)


def test_a_replayed_event_id_with_a_new_signature_and_amount_changes_nothing(
    stack: AccountStack, account: pb.TradingAccount
) -> None:
    body = deposit_body(account.account_number, "10.00")
    raw, signature = stack.signed("demopay", body)
    assert stack.post_webhook(PAYMENTS, raw, signature)[0] == 200

    raw, signature = stack.signed("demopay", {**body, "amount": "9999.00"})
    status, answer = stack.post_webhook(PAYMENTS, raw, signature)

    assert (status, answer["outcome"]) == (200, "WEBHOOK_EVENT_OUTCOME_DUPLICATE")
    assert stack.balance(account.id) == (Decimal("10.00"), Decimal("10.00"), 1)


@pytest.mark.parametrize(
    ("forge", "http_status"),
    [
        ("wrong key", 401),
        ("no header", 401),
        ("body changed after signing", 401),
        ("stale", 400),
    ],
)
def test_a_bad_signature_or_a_stale_one_is_refused_and_changes_nothing(
    stack: AccountStack, account: pb.TradingAccount, forge: str, http_status: int
) -> None:
    body = deposit_body(account.account_number, "77.00")
    raw, signature = stack.signed("demopay", body)
    header: str | None = signature
    if forge == "wrong key":
        header = signature.split(",v1=")[0] + ",v1=" + "0" * 64
    elif forge == "no header":
        header = None
    elif forge == "body changed after signing":
        raw = raw.replace(b"77.00", b"7700.00")
    else:
        raw, header = stack.signed("demopay", body, at=int(time.time()) - 301)

    status, _ = stack.post_webhook(PAYMENTS, raw, header)

    assert status == http_status
    assert stack.balance(account.id) == (Decimal(0), Decimal(0), 0)
    with stack.db() as conn:
        recorded = conn.execute(
            "SELECT count(*) FROM account.webhook_events WHERE event_id = %s", (body["event_id"],)
        ).fetchone()
    assert recorded == (0,)


def test_an_address_off_the_allow_list_is_refused(
    stack: AccountStack, account: pb.TradingAccount
) -> None:
    # Envoy sets x-tm-client-ip from the peer address; the stack's allow-list is 127.0.0.1/32,
    # so a call as Envoy forwards one from another address is what must be refused.
    raw, signature = stack.signed("demopay", deposit_body(account.account_number, "5.00"))

    with pytest.raises(grpc.RpcError) as refused:
        stack.webhooks.ReceivePaymentEvent(
            wh_pb.ReceivePaymentEventRequest(
                provider="demopay",
                body=httpbody_pb2.HttpBody(content_type="application/json", data=raw),
            ),
            metadata=(
                *stack.as_(Who("", "", client_ip="203.0.113.7")),
                ("x-tradingmesh-signature", signature),
            ),
        )

    details = details_of(refused.value)
    assert details.code == grpc.StatusCode.PERMISSION_DENIED
    assert details.reason == ErrorReason.ERROR_REASON_WEBHOOK_SOURCE_NOT_ALLOWED
    assert stack.balance(account.id) == (Decimal(0), Decimal(0), 0)


def test_an_unknown_account_or_currency_is_refused(
    stack: AccountStack, account: pb.TradingAccount
) -> None:
    unknown = stack.signed("demopay", deposit_body("999999999", "5.00"))
    euros = stack.signed(
        "demopay", {**deposit_body(account.account_number, "5.00"), "currency": "EUR"}
    )

    assert stack.post_webhook(PAYMENTS, *unknown)[0] == 404
    assert stack.post_webhook(PAYMENTS, *euros)[0] == 400
    assert stack.balance(account.id) == (Decimal(0), Decimal(0), 0)


def test_a_failed_payout_credits_the_withdrawal_back_and_a_late_completion_conflicts(
    stack: AccountStack,
) -> None:
    backoffice = staff()
    user = stack.new_user(backoffice)
    account = stack.new_account(backoffice, user.id)
    stack.deposit_direct(account.account_number, "100.00")
    withdrawal = stack.api.RequestWithdrawal(
        api_pb.RequestWithdrawalRequest(
            account_id=account.id, amount="40.00", idempotency_key="wd-fail"
        ),
        metadata=stack.as_(Who(user.id, "trader")),
    ).withdrawal
    assert withdrawal.balance_after == "60.00"

    def report(status: str) -> tuple[int, dict[str, object]]:
        body = {
            **deposit_body(account.account_number, "40.00"),
            "type": "withdrawal",
            "status": status,
            "reference": withdrawal.id,
            "reason": "Card expired",
        }
        return stack.post_webhook(PAYMENTS, *stack.signed("demopay", body))

    failed = report("failed")
    completed_late = report("completed")

    assert failed[0] == 200
    assert failed[1]["outcome"] == "WEBHOOK_EVENT_OUTCOME_APPLIED"
    # FAILED_PRECONDITION, which the transcoder answers as HTTP 400; recorded for staff.
    assert completed_late[0] == 400
    with stack.db() as conn:
        conflicts = conn.execute(
            "SELECT count(*) FROM account.webhook_events WHERE outcome = 'CONFLICT'"
            " AND body LIKE %s",
            (f"%{withdrawal.id}%",),
        ).fetchone()
    assert conflicts == (1,)
    assert stack.balance(account.id) == (Decimal("100.00"), Decimal("100.00"), 3)
    listed = stack.api.ListWithdrawals(
        api_pb.ListWithdrawalsRequest(account_id=account.id),
        metadata=stack.as_(Who(user.id, "trader")),
    ).withdrawals
    assert [(w.status, w.rejection_reason) for w in listed] == [
        (pb.WITHDRAWAL_STATUS_REJECTED, "Card expired")
    ]
    assert listed[0].reversal_ledger_entry_id


def test_a_rotated_key_takes_effect_without_a_restart(
    stack: AccountStack, account: pb.TradingAccount
) -> None:
    state = stack.state
    vault = VaultAdmin(state.vault.address, Path(state.vault.root_token_file).read_text().strip())
    original = vault.read(WEBHOOKS_PATH)
    assert original is not None
    config = json.loads(original["demopay"])
    new_key = secrets.token_hex(32)
    vault.write(
        WEBHOOKS_PATH, {**original, "demopay": json.dumps({**config, "secrets": [new_key]})}
    )
    stack.webhook_secrets["demopay"] = new_key
    try:
        body = deposit_body(account.account_number, "42.00")

        # The service re-reads the providers when a signature matches none of its keys, at most
        # once per RELOAD_SECONDS (another test's bad signature may have just used it up).
        def not_refused() -> tuple[int, dict[str, Any]] | None:
            raw, signature = stack.signed("demopay", body)
            status, answer = stack.post_webhook(PAYMENTS, raw, signature)
            return None if status == 401 else (status, answer)

        status, answer = eventually(
            not_refused, WebhookReceiver.RELOAD_SECONDS + 5, "the new key accepted", every=1
        )
        assert (status, answer.get("outcome")) == (200, "WEBHOOK_EVENT_OUTCOME_APPLIED")
        assert stack.balance(account.id) == (Decimal("42.00"), Decimal("42.00"), 1)

        # The old key no longer counts.
        stack.webhook_secrets["demopay"] = config["secrets"][0]
        raw, signature = stack.signed("demopay", deposit_body(account.account_number, "1.00"))
        assert stack.post_webhook(PAYMENTS, raw, signature)[0] == 401
    finally:
        vault.write(WEBHOOKS_PATH, original)
        stack.webhook_secrets["demopay"] = config["secrets"][0]

"""Money that backs open positions stays put (issue #12): withdrawals are checked against the
free margin from live positions, atomically with the debit, and GetAccount shows the same
figures as GetAccountRisk. Against the real stack, in a client group of its own with prices
pinned on both LP simulators (`support/risk.py`'s `Broker`), so every figure is exact.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import grpc
import pytest

from tests.integration import test_risk
from tests.integration.callers import Who
from tests.integration.support.edge import refused
from tests.integration.support.risk import Broker
from tests.integration.support.risk import funded_in_risk as _funded_in_risk
from tests.integration.support.risk import place_market as _place_market
from tests.integration.support.waiting import eventually
from tradingmesh.account.v1 import account_pb2
from tradingmesh.account.v1 import account_service_pb2 as api_pb
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import details_of
from tradingmesh.risk.v1 import risk_pb2
from tradingmesh.risk.v1 import risk_service_pb2 as risk_api_pb2

R = ErrorReason
D = Decimal
# The broker of test_risk (a client group of its own, prices pinned), set up for this module.
stack = test_risk.stack
broker = test_risk.broker
# What GetAccount's summary and GetAccountRisk both carry.
_SHARED_FIGURES = (
    "account_id",
    "currency",
    "balance",
    "unrealized_pnl",
    "equity",
    "used_margin",
    "free_margin",
    "margin_level",
    "withdrawable",
    "leverage",
    "margin_call_level",
    "stop_out_level",
)


@pytest.fixture
def eurusd(broker: Broker) -> None:
    broker.pin("EURUSD", "1.10000", "1.10020")


def _trader(broker: Broker, amount: str) -> tuple[account_pb2.User, account_pb2.TradingAccount]:
    user, account = broker.new_account(amount)
    eventually(lambda: _funded_in_risk(broker, account.id), 30, "risk's copy of the funded account")
    return user, account


def _summary(broker: Broker, user: account_pb2.User, account_id: str) -> account_pb2.AccountSummary:
    summary: account_pb2.AccountSummary = broker.stack.api.GetAccount(
        api_pb.GetAccountRequest(account_id=account_id),
        metadata=broker.stack.as_(Who(user.id, "trader")),
        timeout=10,
    ).summary
    return summary


def _summary_when(
    broker: Broker,
    user: account_pb2.User,
    account_id: str,
    test: Callable[[account_pb2.AccountSummary], bool],
    what: str,
) -> account_pb2.AccountSummary:
    def probe() -> account_pb2.AccountSummary | None:
        summary = _summary(broker, user, account_id)
        return summary if test(summary) else None

    return eventually(probe, 30, what)


def _risk(broker: Broker, user: account_pb2.User, account_id: str) -> risk_pb2.AccountRisk:
    figures: risk_pb2.AccountRisk = broker.risk.GetAccountRisk(
        risk_api_pb2.GetAccountRiskRequest(account_id=account_id),
        metadata=broker.stack.as_(Who(user.id, "trader")),
        timeout=10,
    ).account_risk
    return figures


def _withdraw(
    broker: Broker, user: account_pb2.User, account_id: str, amount: str
) -> Callable[[], Any]:
    key = f"wd-{uuid.uuid4().hex[:16]}"
    return lambda: broker.stack.api.RequestWithdrawal(
        api_pb.RequestWithdrawalRequest(account_id=account_id, amount=amount, idempotency_key=key),
        metadata=broker.stack.as_(Who(user.id, "trader")),
        timeout=10,
    )


def _open_position(broker: Broker, user: account_pb2.User, account_id: str, lots: str) -> None:
    order = _place_market(broker, user, account_id, "EURUSD", lots)
    assert order.status == trading_pb2.ORDER_STATUS_FILLED, order
    _summary_when(
        broker, user, account_id, lambda s: s.used_margin != "0.00", "the position in the figures"
    )


def _ledger_size(broker: Broker, account_id: str) -> int:
    with broker.stack.db() as db:
        row = db.execute(
            "SELECT count(*) FROM account.ledger_entries WHERE account_id = %s", (account_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_withdrawal_beyond_free_margin_is_refused_and_one_within_it_is_accepted(
    broker: Broker, eurusd: None
) -> None:
    user, account = _trader(broker, "10000.00")
    _open_position(broker, user, account.id, "5")
    # 5 lots bought at the ask 1.10020, valued at the bid 1.10000: unrealized -100.00, margin
    # 5 x 100000 x 1.10020 / 100 = 5501.00; free margin 9900.00 - 5501.00.
    before = _summary(broker, user, account.id)
    assert (before.used_margin, before.free_margin, before.withdrawable) == (
        "5501.00",
        "4399.00",
        "4399.00",
    )
    entries = _ledger_size(broker, account.id)

    code, reason, message = refused(_withdraw(broker, user, account.id, "9000.00"))

    assert (code, reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        R.ERROR_REASON_INSUFFICIENT_FUNDS,
    )
    assert "exceeds the withdrawable 4399.00 USD" in message
    assert _ledger_size(broker, account.id) == entries
    assert _summary(broker, user, account.id).balance == "10000.00"

    accepted = _withdraw(broker, user, account.id, "4399.00")().withdrawal
    assert accepted.status == account_pb2.WITHDRAWAL_STATUS_PENDING
    assert accepted.balance_after == "5601.00"
    after = _summary_when(
        broker, user, account.id, lambda s: s.balance == "5601.00", "the withdrawal in the figures"
    )
    assert (after.free_margin, after.withdrawable) == ("0.00", "0.00")


def test_get_account_and_get_account_risk_agree_on_every_figure_with_positions_open(
    broker: Broker, eurusd: None
) -> None:
    user, account = _trader(broker, "3000.00")
    _open_position(broker, user, account.id, "1")

    summary = _summary(broker, user, account.id)
    figures = _risk(broker, user, account.id)

    assert summary.used_margin == "1100.20"
    assert summary.unrealized_pnl == "-20.00"
    for name in _SHARED_FIGURES:
        assert getattr(summary, name) == getattr(figures, name), name


def test_parallel_withdrawals_racing_a_market_order_never_leave_free_margin_negative(
    broker: Broker, eurusd: None
) -> None:
    user, account = _trader(broker, "10000.00")
    withdrawals = [_withdraw(broker, user, account.id, "300.00") for _ in range(20)]

    def attempt(call: Callable[[], Any]) -> str:
        try:
            call()
        except grpc.RpcError as error:
            return ErrorReason.Name(details_of(error).reason)
        return "ok"

    with ThreadPoolExecutor(max_workers=21) as pool:
        order = pool.submit(_place_market, broker, user, account.id, "EURUSD", "5")
        outcomes = list(pool.map(attempt, withdrawals))
        placed = order.result()

    accepted = outcomes.count("ok")
    assert set(outcomes) <= {"ok", "ERROR_REASON_INSUFFICIENT_FUNDS"}, outcomes
    balance = D("10000.00") - accepted * D("300.00")
    settled = _summary_when(
        broker,
        user,
        account.id,
        lambda s: D(s.balance) == balance,
        "the withdrawals in the figures",
    )
    filled = placed.status == trading_pb2.ORDER_STATUS_FILLED
    if filled:  # the order had its margin: the withdrawals could take only what was left
        settled = _summary_when(
            broker,
            user,
            account.id,
            lambda s: s.used_margin != "0.00",
            "the position in the figures",
        )
        assert accepted <= 14, outcomes  # 4399.00 free after the order: 14 x 300.00
    assert D(settled.free_margin) >= 0, (settled, outcomes, filled)
    assert D(_risk(broker, user, account.id).free_margin) >= 0

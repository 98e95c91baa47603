"""Order entry for one account stays serialized in risk with two instances of every service
(issue #18, ADR 0017 "Account affinity"), on a `--replicas 2` stack of this module's own.

Risk reserves an approved order's margin (and an approved withdrawal's amount) in the memory of
the instance that approved it. The OMS and the account service send every risk call about an
account to one risk instance chosen by the account, so orders placed at the same moment through
both OMS instances, and withdrawals through both account instances, are decided one after the
other against the same reservations: exactly what fits the free margin is accepted. Round robin
over the risk instances let each instance approve up to the whole free margin. While the
account's instance is dead the other takes the account (still one order at a time), and gives
it back once the instance serves again.

In test_risk's client group (no markup, no commission, netting, leverage 100) with EURUSD pinned
at 1.10000 / 1.10020 on both LP simulators: one lot needs 1100.20 of margin.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from decimal import Decimal
from typing import Any

import grpc
import pytest

from services.platform.affinity import rendezvous_order
from stack.operator_tls import service_channel
from stack.orchestrator import up
from stack.ports import Ports
from tests.integration import test_replicas
from tests.integration import test_risk
from tests.integration.callers import AccountStack
from tests.integration.callers import Who
from tests.integration.conftest import RunningStack
from tests.integration.support.components import kill
from tests.integration.support.metrics import metrics
from tests.integration.support.risk import Broker
from tests.integration.support.risk import funded_in_risk as _funded_in_risk
from tests.integration.support.waiting import eventually
from tradingmesh.account.v1 import account_pb2
from tradingmesh.account.v1 import account_service_pb2 as account_api_pb2
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import details_of
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.oms.v1 import order_service_pb2_grpc as order_grpc

R = ErrorReason
D = Decimal
# test_replicas's stack (two instances of every service, this module's own), and test_risk's
# broker (a client group of its own, prices pinned) on it.
running_stack = test_replicas.running_stack
stack = test_risk.stack
broker = test_risk.broker
LOT_MARGIN = D("1100.20")  # 1 lot x 100000 x the ask 1.10020 / leverage 100


def _channels(running_stack: RunningStack, service: str) -> list[grpc.Channel]:
    return [service_channel(running_stack.state, service, k) for k in (1, 2)]


@pytest.fixture(scope="module")
def both_oms(running_stack: RunningStack) -> Iterator[list[order_grpc.OrderServiceStub]]:
    """Each OMS instance directly (not through Envoy)."""
    channels = _channels(running_stack, "oms")
    try:
        yield [order_grpc.OrderServiceStub(channel) for channel in channels]
    finally:
        for channel in channels:
            channel.close()


@pytest.fixture(scope="module")
def both_accounts(running_stack: RunningStack, stack: AccountStack) -> Iterator[list[AccountStack]]:
    """The account service's callers, one per instance."""
    channels = _channels(running_stack, "account")
    try:
        yield [replace(stack, channel=channel) for channel in channels]
    finally:
        for channel in channels:
            channel.close()


@pytest.fixture(scope="module")
def both_risk(running_stack: RunningStack, broker: Broker) -> Iterator[list[Broker]]:
    """The broker with each risk instance directly, to see what that instance sees."""
    channels = _channels(running_stack, "risk")
    try:
        yield [replace(broker, risk_channel=channel) for channel in channels]
    finally:
        for channel in channels:
            channel.close()


@pytest.fixture
def eurusd(broker: Broker, both_risk: list[Broker]) -> None:
    broker.pin("EURUSD", "1.10000", "1.10020")  # risk-1 has the price; risk-2 too:
    for risk in both_risk:
        eventually(
            lambda: _valued_at(risk, "1.10020"),  # noqa: B023
            30,
            "every risk instance values EURUSD at the pinned ask",
        )


def _valued_at(risk: Broker, ask: str) -> bool | None:
    response = risk.check_order(risk.probe_account, "EURUSD", types_pb2.SIDE_BUY, "0.01")
    return True if response.valuation_price == ask else None


def _trader(
    broker: Broker,
    both_oms: list[order_grpc.OrderServiceStub],
    both_risk: list[Broker],
    amount: str,
) -> tuple[account_pb2.User, account_pb2.TradingAccount]:
    """A funded account that every risk and OMS instance knows."""
    user, account = broker.new_account(amount)
    for risk in both_risk:
        eventually(
            lambda: _funded_in_risk(risk, account.id),  # noqa: B023
            30,
            "every risk instance's copy of the funded account",
        )
    for oms in both_oms:
        eventually(lambda: _oms_knows(broker, oms, user, account.id), 30, "the OMS's copy")  # noqa: B023
    return user, account


def _oms_knows(
    broker: Broker,
    oms: order_grpc.OrderServiceStub,
    user: account_pb2.User,
    account_id: str,
) -> bool | None:
    try:
        oms.ListOrders(
            order_service_pb2.ListOrdersRequest(account_id=account_id),
            metadata=broker.stack.as_(Who(user.id, "trader")),
            timeout=5,
        )
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise
    return True


def _market_buy(
    broker: Broker, oms: order_grpc.OrderServiceStub, user: account_pb2.User, account_id: str
) -> Callable[[], oms_pb2.Order]:
    def place() -> oms_pb2.Order:
        order: oms_pb2.Order = oms.PlaceOrder(
            order_service_pb2.PlaceOrderRequest(
                account_id=account_id,
                client_order_id=f"it-{uuid.uuid4().hex[:16]}",
                symbol="EURUSD",
                side=types_pb2.SIDE_BUY,
                type=trading_pb2.ORDER_TYPE_MARKET,
                quantity="1",
            ),
            metadata=broker.stack.as_(Who(user.id, "trader")),
            timeout=10,
        ).order
        return order

    return place


def _withdrawal(
    account: AccountStack, user: account_pb2.User, account_id: str, amount: str
) -> Callable[[], str]:
    def withdraw() -> str:
        try:
            account.api.RequestWithdrawal(
                account_api_pb2.RequestWithdrawalRequest(
                    account_id=account_id,
                    amount=amount,
                    idempotency_key=f"wd-{uuid.uuid4().hex[:16]}",
                ),
                metadata=account.as_(Who(user.id, "trader")),
                timeout=10,
            )
        except grpc.RpcError as error:
            return ErrorReason.Name(details_of(error).reason)
        return "ok"

    return withdraw


def _at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Every call started at the same moment, each on a thread of its own."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def _positions_lots(broker: Broker, account_id: str) -> Decimal:
    with broker.stack.db() as db:
        row = db.execute(
            "SELECT coalesce(sum(quantity), 0) FROM oms.positions"
            " WHERE account_id = %s AND status = 'OPEN'",
            (account_id,),
        ).fetchone()
    assert row is not None
    return D(row[0])


def _checks(running_stack: RunningStack) -> list[int]:
    """How many CheckOrder calls each risk instance has answered (0 for one not serving)."""
    counts = []
    for k in (1, 2):
        try:
            text = metrics(running_stack.state, "risk", k)
        except OSError:
            counts.append(0)
            continue
        found = re.findall(
            r'^grpc_server_handled_total\{[^}]*grpc_method="CheckOrder"[^}]*\} (\S+)$', text, re.M
        )
        counts.append(int(sum(float(value) for value in found)))
    return counts


def _instance_of(running_stack: RunningStack, account_id: str) -> int:
    """The risk instance (1 or 2) first in the account's order, as the callers compute it."""
    ports = Ports(running_stack.state.base_port)
    addresses = [f"127.0.0.1:{ports.service_grpc('risk', k)}" for k in (1, 2)]
    return addresses.index(rendezvous_order(account_id, addresses)[0]) + 1


def _burst_takes_two_lots(
    broker: Broker,
    both_oms: list[order_grpc.OrderServiceStub],
    user: account_pb2.User,
    account_id: str,
) -> None:
    """Eight one-lot buys at once, four through each OMS instance, on an account with 2500.00
    free: exactly two fill, the others are refused for margin."""
    orders = _at_once([_market_buy(broker, oms, user, account_id) for oms in both_oms * 4])
    outcomes = [(trading_pb2.OrderStatus.Name(o.status), R.Name(o.status_reason)) for o in orders]
    filled = [o for o in orders if o.status == trading_pb2.ORDER_STATUS_FILLED]
    assert len(filled) == 2, outcomes
    refused = [o for o in orders if o.status != trading_pb2.ORDER_STATUS_FILLED]
    assert {(o.status, o.status_reason) for o in refused} == {
        (trading_pb2.ORDER_STATUS_REJECTED, R.ERROR_REASON_INSUFFICIENT_MARGIN)
    }, outcomes
    assert _positions_lots(broker, account_id) == D(2)


def test_orders_of_one_account_through_both_oms_instances_at_once_take_only_the_free_margin(
    running_stack: RunningStack,
    broker: Broker,
    both_oms: list[order_grpc.OrderServiceStub],
    both_risk: list[Broker],
    eurusd: None,
) -> None:
    # 2500.00 free: two lots fit (2200.40), a third does not (299.60 left).
    user, account = _trader(broker, both_oms, both_risk, "2500.00")
    chosen = _instance_of(running_stack, account.id)
    before = _checks(running_stack)

    _burst_takes_two_lots(broker, both_oms, user, account.id)

    after = _checks(running_stack)
    # Every check went to the account's instance, from both OMS instances.
    assert [a - b for a, b in zip(after, before, strict=True)] == [
        8 if k == chosen else 0 for k in (1, 2)
    ]


def test_withdrawals_through_both_account_instances_and_orders_through_both_oms_never_overspend(
    broker: Broker,
    both_oms: list[order_grpc.OrderServiceStub],
    both_accounts: list[AccountStack],
    both_risk: list[Broker],
    eurusd: None,
) -> None:
    # 2500.00 free: what is approved (1100.20 a lot, 600.00 a withdrawal) must fit in it.
    user, account = _trader(broker, both_oms, both_risk, "2500.00")
    orders = [_market_buy(broker, oms, user, account.id) for oms in both_oms for _ in range(2)]
    withdrawals = [
        _withdrawal(a, user, account.id, "600.00") for a in both_accounts for _ in range(3)
    ]

    outcomes = _at_once([*orders, *withdrawals])

    placed, withdrawn = outcomes[: len(orders)], outcomes[len(orders) :]
    filled = sum(o.status == trading_pb2.ORDER_STATUS_FILLED for o in placed)
    accepted = withdrawn.count("ok")
    assert set(withdrawn) <= {"ok", "ERROR_REASON_INSUFFICIENT_FUNDS"}, withdrawn
    assert filled + accepted > 0
    spent = filled * LOT_MARGIN + accepted * D("600.00")
    assert spent <= D("2500.00"), (filled, accepted)


def test_while_the_accounts_risk_instance_is_dead_its_orders_go_to_the_other_and_come_back(
    running_stack: RunningStack,
    broker: Broker,
    both_oms: list[order_grpc.OrderServiceStub],
    both_risk: list[Broker],
    eurusd: None,
) -> None:
    """Last in the module: it kills a risk instance (and starts it again)."""
    user, account = _trader(broker, both_oms, both_risk, "2500.00")
    chosen = _instance_of(running_stack, account.id)
    other = 3 - chosen
    kill(running_stack, "risk" if chosen == 1 else f"risk-{chosen}")
    time.sleep(1)  # the callers' channels to it see the connection gone
    before = _checks(running_stack)

    # The other instance takes the account, and still decides its orders one at a time.
    _burst_takes_two_lots(broker, both_oms, user, account.id)

    after = _checks(running_stack)
    assert after[other - 1] - before[other - 1] == 8
    # Back: the account's checks return to it (a third lot does not fit: each is refused).
    up(running_stack.config)
    back = _checks(running_stack)[chosen - 1]

    def checked_there() -> bool | None:
        order = _market_buy(broker, both_oms[0], user, account.id)()
        assert order.status != trading_pb2.ORDER_STATUS_FILLED, order
        return True if _checks(running_stack)[chosen - 1] > back else None

    eventually(checked_there, 10, f"the account's checks back on risk instance {chosen}")
    counts = _checks(running_stack)
    refusals = _at_once([_market_buy(broker, oms, user, account.id) for oms in both_oms * 2])
    assert {o.status_reason for o in refusals} == {R.ERROR_REASON_INSUFFICIENT_MARGIN}
    assert [a - b for a, b in zip(_checks(running_stack), counts, strict=True)] == [
        4 if k == chosen else 0 for k in (1, 2)
    ]

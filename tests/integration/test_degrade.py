"""Degrade, don't stop (issue #18): a component killed or frozen under the platform costs
latency or a clear retryable error, never trading itself.

- With Redis killed, market orders keep filling at live prices (pricing publishes to NATS
  whatever Redis does) and GetQuote says UNAVAILABLE / DEPENDENCY_UNAVAILABLE.
- After risk, or the OMS, is killed and restarted, the first order once it serves succeeds
  (internal channels reconnect within 200 ms).
- With PostgreSQL frozen for 10 s (the postmaster and every backend), orders placed meanwhile
  either succeed late or fail with a retryable status, and none is left half-done: every STP
  order ends FILLED or REJECTED, none stays WORKING without a hedge (issue #12's STP bug).

Each test kills the real process (`os.killpg`, as `tradingmesh down` would find it dead) and
brings it back with `up`, so the next test finds the stack whole.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import grpc
import pytest
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]
from grpc_health.v1 import health_pb2_grpc

from stack.operator_tls import service_channel
from tests.integration.callers import AccountStack
from tests.integration.conftest import RunningStack
from tests.integration.support.components import frozen
from tests.integration.support.components import kill
from tests.integration.support.components import restore
from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.edge_trading import Trader
from tests.integration.support.edge_trading import await_quote
from tests.integration.support.edge_trading import group_quote
from tests.integration.support.edge_trading import market
from tests.integration.support.edge_trading import new_trader
from tests.integration.support.edge_trading import place_grpc
from tests.integration.support.orders import Oms
from tests.integration.support.orders import place as place_stp
from tests.integration.support.stp import await_pinned_price
from tests.integration.support.stp import ended
from tests.integration.support.stp import hedges_of
from tests.integration.support.stp import stp_trader
from tests.integration.support.waiting import eventually
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc as pricing_grpc

S = trading_pb2
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def risk_serving(running_stack: RunningStack) -> bool:
    try:
        with service_channel(running_stack.state, "risk") as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=2
            )
    except grpc.RpcError:
        return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def test_with_redis_killed_market_orders_keep_filling_at_live_prices(
    running_stack: RunningStack,
    edge: Edge,
    accounts: AccountStack,
    pinned: Callable[[str, str], None],
) -> None:
    trader = new_trader(edge, accounts)
    pinned("1.30000", "1.30010")
    await_quote(edge, trader, "1.29995", "1.30015")

    channel = edge.channel()
    stream = pricing_grpc.PricingServiceStub(channel).StreamQuotes(
        pricing_service_pb2.StreamQuotesRequest(account_id=trader.account_id, symbols=["EURUSD"]),
        metadata=bearer(trader.token),
        timeout=30,
    )
    assert next(stream).quotes  # its snapshot: the stream follows the group's prices

    kill(running_stack, "redis")
    try:
        # An open quote stream ends at once, retryably, instead of going silent.
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as ended_stream:
            for _ in stream:
                pass
        assert ended_stream.value.code() == grpc.StatusCode.UNAVAILABLE, ended_stream.value
        assert time.monotonic() - started < 10
        channel.close()
        # Clients asking for a quote are told, retryably, that it is not there right now.
        with pytest.raises(grpc.RpcError) as refused:
            group_quote(edge, trader)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value.details()

        # Orders go on filling, at the prices the LPs quote now (well past the OMS's 2 s
        # quote age: the prices keep coming over NATS).
        for bid, ask, fill in (
            ("1.30100", "1.30110", "1.30115"),
            ("1.30200", "1.30210", "1.30195"),
        ):
            pinned(bid, ask)
            side = types_pb2.SIDE_BUY if fill == "1.30115" else types_pb2.SIDE_SELL
            started = time.monotonic()
            while True:
                order = place_grpc(edge, trader, market(trader, side, "0.01"))
                assert order.status == S.ORDER_STATUS_FILLED, (
                    order.status_reason,
                    order.status_message,
                )
                if Decimal(order.average_fill_price) == Decimal(fill):
                    break
                assert time.monotonic() - started < 5, "the new price never reached the OMS"
                time.sleep(0.2)
            time.sleep(2.5)  # past the OMS's quote age, still without Redis
        order = place_grpc(edge, trader, market(trader, types_pb2.SIDE_BUY, "0.01"))
        assert order.status == S.ORDER_STATUS_FILLED, (order.status_reason, order.status_message)
        assert Decimal(order.average_fill_price) == Decimal("1.30215")
    finally:
        restore(running_stack)

    # Redis back: GetQuote answers the newest price again (pricing writes it when it can).
    eventually(
        lambda: group_quote_or_none(edge, trader) == ("1.30195", "1.30215"),
        20,
        "GetQuote answering again after Redis came back",
    )


def group_quote_or_none(edge: Edge, trader: Trader) -> tuple[str, str] | None:
    try:
        return group_quote(edge, trader)
    except grpc.RpcError:
        return None


def test_the_first_order_after_risk_restarts_succeeds(
    running_stack: RunningStack,
    edge: Edge,
    accounts: AccountStack,
    pinned: Callable[[str, str], None],
) -> None:
    trader = new_trader(edge, accounts)
    pinned("1.40000", "1.40010")
    await_quote(edge, trader, "1.39995", "1.40015")

    # Orders keep coming while risk is away (10/s, as in the fault run), so the OMS's channel
    # keeps failing and backing off; each is REJECTED / DEPENDENCY_UNAVAILABLE, clearly.
    stop = threading.Event()
    while_down: list[oms_pb2.Order] = []

    def traffic() -> None:
        while not stop.is_set():
            while_down.append(place_grpc(edge, trader, market(trader, types_pb2.SIDE_BUY, "0.01")))
            time.sleep(0.1)

    kill(running_stack, "risk")
    sender = threading.Thread(target=traffic, name="orders-while-risk-is-down")
    sender.start()
    starter = threading.Thread(target=restore, args=(running_stack,), name="up")
    try:
        time.sleep(3)
        starter.start()  # `up` starts risk again
        eventually(lambda: risk_serving(running_stack), 60, "risk serving again")
        stop.set()
        sender.join()
        # Risk serves: the very next order passes its check (not after `up` has finished).
        first = place_grpc(edge, trader, market(trader, types_pb2.SIDE_BUY, "0.01"))
    finally:
        stop.set()
        sender.join()
        if starter.ident is not None:
            starter.join()
    assert first.status == S.ORDER_STATUS_FILLED, (first.status_reason, first.status_message)
    refused = [o for o in while_down if o.status == S.ORDER_STATUS_REJECTED]
    assert refused, "some orders met risk away"
    assert {o.status_reason for o in refused} == {ErrorReason.ERROR_REASON_DEPENDENCY_UNAVAILABLE}


def test_the_first_order_after_the_oms_restarts_succeeds(
    running_stack: RunningStack,
    edge: Edge,
    accounts: AccountStack,
    pinned: Callable[[str, str], None],
) -> None:
    trader = new_trader(edge, accounts)
    pinned("1.50000", "1.50010")
    await_quote(edge, trader, "1.49995", "1.50015")

    kill(running_stack, "oms")
    restore(running_stack)  # returns once the OMS reports SERVING

    first = place_grpc(edge, trader, market(trader, types_pb2.SIDE_BUY, "0.01"))
    assert first.status == S.ORDER_STATUS_FILLED, (first.status_reason, first.status_message)


def test_a_frozen_database_costs_only_latency_and_leaves_no_order_half_done(
    running_stack: RunningStack,
    oms: Oms,
    edge: Edge,
    accounts: AccountStack,
    pinned: Callable[[str, str], None],
) -> None:
    trader = new_trader(edge, accounts)
    pinned("1.10000", "1.10010")
    await_quote(edge, trader, "1.09995", "1.10015")
    stp = stp_trader(oms)
    await_pinned_price(oms, stp)

    requests = [market(trader, types_pb2.SIDE_BUY, "0.01") for _ in range(3)]
    stp_ids = [f"it-{uuid.uuid4().hex[:16]}" for _ in range(3)]

    def market_order(request: order_service_pb2.PlaceOrderRequest) -> object:
        try:
            return place_grpc(edge, trader, request)
        except grpc.RpcError as error:
            return error

    def stp_order(client_order_id: str) -> object:
        try:
            return place_stp(oms, stp, client_order_id=client_order_id, quantity="0.10")
        except grpc.RpcError as error:
            return error

    # The postmaster and its backends: they are in its process group.
    with frozen(running_stack, "postgres") as thaw, ThreadPoolExecutor(6) as pool:
        calls = [pool.submit(market_order, request) for request in requests]
        calls += [pool.submit(stp_order, client_order_id) for client_order_id in stp_ids]
        time.sleep(10)
        thaw()
        outcomes = [call.result() for call in calls]

    # Each call succeeded late or failed retryably; a retry with the same client_order_id
    # then gets the one order (never a second).
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, grpc.RpcError):
            assert outcome.code() in RETRYABLE, (outcome.code(), outcome.details())
            outcome = (
                place_grpc(edge, trader, requests[index])
                if index < 3
                else place_stp(oms, stp, client_order_id=stp_ids[index - 3], quantity="0.10")
            )
        assert isinstance(outcome, oms_pb2.Order)
        if index < 3:
            assert outcome.status == S.ORDER_STATUS_FILLED, (
                outcome.status_reason,
                outcome.status_message,
            )
    for account_id, count in ((trader.account_id, 3), (stp.account_id, 3)):
        (stored,) = oms.rows("SELECT count(*) FROM oms.orders WHERE account_id = %s", account_id)
        assert stored == (count,)

    # Nothing half-done: every order the platform stored, answered or not, ends; an STP one
    # FILLED through a filled hedge (or REJECTED), none WORKING without a hedge.
    for account_id, is_stp in ((trader.account_id, False), (stp.account_id, True)):
        rows = oms.rows("SELECT id::text, status FROM oms.orders WHERE account_id = %s", account_id)
        for order_id, _ in rows:
            if is_stp:
                final = ended(oms, stp, order_id)
                assert final.status in (S.ORDER_STATUS_FILLED, S.ORDER_STATUS_REJECTED), final
                if final.status == S.ORDER_STATUS_FILLED:
                    assert [h["status"] for h in hedges_of(oms, [order_id])] == ["FILLED"]
        if not is_stp:
            assert {status for _, status in rows} <= {"FILLED"}, rows

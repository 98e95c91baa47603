"""Optimistic order entry under contention (ADR 0009): new orders are written as one statement
that checks the account's audit head, while other changes of the same account (here: its
position's stop-loss, changed through the locking path) move that head on. Whatever interleaves,
every order fills once, the positions add up and the account's audit chain has no fork or gap.

It fails if the statement did not check the head (two changes would write the same audit
sequence, or one would overwrite the other's position), or if a conflict lost an order.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import grpc

from tests.integration.support.orders import Oms
from tests.integration.support.orders import live_quote
from tests.integration.support.orders import new_trader
from tests.integration.support.orders import place
from tests.integration.support.orders import place_filled
from tests.integration.support.orders import verified_chain
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.oms.v1 import position_service_pb2

ORDERS_PER_SYMBOL = {"EURUSD": 16, "USDJPY": 10}
STOP_CHANGES = 12


def test_parallel_orders_and_position_changes_of_one_account_keep_every_order_and_one_chain(
    oms: Oms,
) -> None:
    trader = new_trader(oms)
    first = place_filled(oms, trader, quantity="0.10")
    (position,) = oms.positions.ListPositions(
        position_service_pb2.ListPositionsRequest(account_id=trader.account_id),
        metadata=trader.md,
    ).positions
    bid = Decimal(live_quote(oms, trader).bid)

    def order(symbol: str) -> trading_pb2.OrderStatus.ValueType:
        placed = place(
            oms,
            trader,
            symbol=symbol,
            quantity="0.01",
            client_order_id=f"race-{uuid.uuid4().hex[:12]}",
        )
        return placed.status

    def stop(index: int) -> grpc.StatusCode:
        """A change of the position through the locking path: OK, or ABORTED when a concurrent
        change came first."""
        request = position_service_pb2.ModifyPositionRequest(
            account_id=trader.account_id,
            position_id=position.id,
            stop_loss=str(bid - Decimal("0.01000") - Decimal(index) / Decimal(100_000)),
        )
        try:
            oms.positions.ModifyPosition(request, metadata=trader.md, timeout=10)
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    symbols = [s for s, n in ORDERS_PER_SYMBOL.items() for _ in range(n)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        orders = [pool.submit(order, s) for s in symbols]
        stops = [pool.submit(stop, i) for i in range(STOP_CHANGES)]
        statuses = [f.result() for f in orders]
        outcomes = [f.result() for f in stops]

    assert statuses == [trading_pb2.ORDER_STATUS_FILLED] * len(symbols)
    assert set(outcomes) <= {grpc.StatusCode.OK, grpc.StatusCode.ABORTED}, outcomes
    made = outcomes.count(grpc.StatusCode.OK)
    assert made >= 1
    # Every order once, every fill once, and the netting positions add up.
    (count,) = oms.rows("SELECT count(*) FROM oms.orders WHERE account_id = %s", trader.account_id)
    (trades,) = oms.rows("SELECT count(*) FROM oms.trades WHERE account_id = %s", trader.account_id)
    assert count == trades == (1 + len(symbols),)
    held = dict(
        oms.rows(
            "SELECT symbol, quantity FROM oms.positions WHERE account_id = %s AND status = 'OPEN'",
            trader.account_id,
        )
    )
    assert held == {
        "EURUSD": Decimal(first.quantity) + Decimal("0.01") * ORDERS_PER_SYMBOL["EURUSD"],
        "USDJPY": Decimal("0.01") * ORDERS_PER_SYMBOL["USDJPY"],
    }
    # One chain: every change recorded once, in sequence, hashed, its head on the account.
    records = verified_chain(oms, trader.account_id)
    order_records = [r for r in records if r.entity_type == "order"]
    assert len(order_records) == 4 * (1 + len(symbols))  # created, submitted, accepted, filled
    modified = [r for r in records if r.entity_type == "position" and r.reason.startswith("mod")]
    assert len(modified) == made

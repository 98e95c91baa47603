"""The trading core end to end, through the edge (issue #6's acceptance):

- a market order placed over gRPC, gRPC-web and REST fills; the position, the trades, the
  ledger (booked from `oms.trade.executed` by the account service) and the NATS events agree;
- killing the OMS between its commit and the publication of the events loses none and
  duplicates none (the outbox, ADR 0005 and 0007).

Prices are pinned at both LP simulators, so every fill price and every amount is known exactly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]
from grpc_health.v1 import health_pb2_grpc

from tests.integration.callers import AccountStack
from tests.integration.conftest import RunningStack
from tests.integration.events import Message
from tests.integration.events import events_on
from tests.integration.events import published
from tests.integration.support.components import frozen
from tests.integration.support.components import kill
from tests.integration.support.components import restore
from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.edge_trading import DEPOSIT
from tests.integration.support.edge_trading import Trader
from tests.integration.support.edge_trading import await_quote
from tests.integration.support.edge_trading import market
from tests.integration.support.edge_trading import new_trader
from tests.integration.support.edge_trading import place_grpc
from tests.integration.support.edge_trading import unsent_outbox
from tests.integration.support.waiting import eventually
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.oms.v1 import oms_events_pb2
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.oms.v1 import order_service_pb2_grpc as order_grpc
from tradingmesh.oms.v1 import position_service_pb2
from tradingmesh.oms.v1 import position_service_pb2_grpc as position_grpc

PLACE_ORDER = "/tradingmesh.oms.v1.OrderService/PlaceOrder"
LOT = Decimal("100000")  # EURUSD's contract size (stack/seed.py)


def place_grpc_web(
    edge: Edge, trader: Trader, request: order_service_pb2.PlaceOrderRequest
) -> oms_pb2.Order:
    message = request.SerializeToString()
    connection = edge.https()
    connection.request(
        "POST",
        PLACE_ORDER,
        body=b"\x00" + len(message).to_bytes(4, "big") + message,
        headers={
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "authorization": f"Bearer {trader.token}",
        },
    )
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    assert response.status == 200
    assert payload[0] == 0, "the first frame is the message, not the trailers"
    length = int.from_bytes(payload[1:5], "big")
    trailers = payload[5 + length :]
    assert trailers[0] == 0x80
    assert b"grpc-status:0" in trailers.replace(b" ", b"")
    return order_service_pb2.PlaceOrderResponse.FromString(payload[5 : 5 + length]).order


def place_rest(
    edge: Edge, trader: Trader, request: order_service_pb2.PlaceOrderRequest
) -> dict[str, Any]:
    body = {
        "client_order_id": request.client_order_id,
        "symbol": request.symbol,
        "side": types_pb2.Side.Name(request.side),
        "type": trading_pb2.OrderType.Name(request.type),
        "quantity": request.quantity,
    }
    connection = edge.https()
    connection.request(
        "POST",
        f"/v1/accounts/{trader.account_id}/orders",
        body=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {trader.token}"},
    )
    response = connection.getresponse()
    payload = json.loads(response.read())
    connection.close()
    assert response.status == 200, payload
    order: dict[str, Any] = payload["order"]
    return order


def trades_of(edge: Edge, trader: Trader) -> list[oms_pb2.Trade]:
    with edge.channel() as channel:
        response = order_grpc.OrderServiceStub(channel).ListTrades(
            order_service_pb2.ListTradesRequest(account_id=trader.account_id),
            metadata=bearer(trader.token),
            timeout=10,
        )
    return list(response.trades)


def positions_of(edge: Edge, trader: Trader) -> list[oms_pb2.Position]:
    with edge.channel() as channel:
        response = position_grpc.PositionServiceStub(channel).ListPositions(
            position_service_pb2.ListPositionsRequest(account_id=trader.account_id),
            metadata=bearer(trader.token),
            timeout=10,
        )
    return list(response.positions)


def ledger_of(accounts: AccountStack, account_id: str) -> list[tuple[str, Decimal, str]]:
    """(reason, amount, trade id) of the account's trading entries, oldest first."""
    with accounts.db() as conn:
        rows = conn.execute(
            "SELECT reason, amount, trade_id::text FROM account.ledger_entries"
            " WHERE account_id = %s AND trade_id IS NOT NULL ORDER BY sequence",
            (account_id,),
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def _oms_messages(accounts: AccountStack) -> list[Message]:
    """Every message of the OMS stream so far, opened (envelopes, ADR 0009)."""
    return asyncio.run(published(accounts, "OMS", "oms.>"))


def order_events(accounts: AccountStack, order_ids: set[str]) -> dict[str, list[int]]:
    """Per order id, the aggregate versions of its published `oms.order.*` events, as
    published (with repeats, if any); every message holding one went out under its envelope's
    id."""
    versions: dict[str, list[int]] = {o: [] for o in order_ids}
    for message, event in events_on(_oms_messages(accounts), "oms.order.*"):
        kind = EVENT_KINDS.get(event.subject)
        if kind is None:
            continue
        decoded = kind.FromString(event.data)
        order = decoded.order
        if order.id in versions:
            assert message.msg_id == message.envelope_id
            versions[order.id].append(decoded.metadata.aggregate_version)
    return {o: sorted(v) for o, v in versions.items()}


EVENT_KINDS: dict[str, Any] = {
    "oms.order.created": oms_events_pb2.OrderCreated,
    "oms.order.submitted": oms_events_pb2.OrderSubmitted,
    "oms.order.accepted": oms_events_pb2.OrderAccepted,
    "oms.order.filled": oms_events_pb2.OrderFilled,
    "oms.order.rejected": oms_events_pb2.OrderRejected,
}


def test_a_market_order_over_grpc_grpc_web_and_rest_fills_and_position_ledger_and_events_agree(
    edge: Edge, accounts: AccountStack, pinned: Callable[[str, str], None]
) -> None:
    trader = new_trader(edge, accounts)
    # Raw 1.10000/1.10010 at both LPs; the standard group's 10 points widen it by 5 each side.
    pinned("1.10000", "1.10010")
    await_quote(edge, trader, "1.09995", "1.10015")

    over_grpc = place_grpc(edge, trader, market(trader, types_pb2.SIDE_BUY, "0.10"))
    over_web = place_grpc_web(edge, trader, market(trader, types_pb2.SIDE_BUY, "0.10"))
    over_rest = place_rest(edge, trader, market(trader, types_pb2.SIDE_BUY, "0.10"))

    for order in (over_grpc, over_web):
        assert order.status == trading_pb2.ORDER_STATUS_FILLED, order
        assert (order.filled_quantity, order.average_fill_price) == ("0.10", "1.10015")
    assert over_rest["status"] == "ORDER_STATUS_FILLED", over_rest
    assert over_rest["average_fill_price"] == "1.10015"

    (position,) = positions_of(edge, trader)
    assert position.side == types_pb2.SIDE_BUY
    assert (position.quantity, position.open_price) == ("0.30", "1.10015")

    # The price rises; selling everything at the new bid realizes (1.10195 - 1.10015) x 0.30 lots.
    pinned("1.10200", "1.10210")
    await_quote(edge, trader, "1.10195", "1.10215")
    close = place_rest(edge, trader, market(trader, types_pb2.SIDE_SELL, "0.30"))
    assert (close["status"], close["average_fill_price"]) == ("ORDER_STATUS_FILLED", "1.10195")
    expected_pnl = (Decimal("1.10195") - Decimal("1.10015")) * Decimal("0.30") * LOT
    assert expected_pnl == Decimal("54.00")

    trades = trades_of(edge, trader)
    assert len(trades) == 4
    closing = next(t for t in trades if t.side == types_pb2.SIDE_SELL)
    assert closing.position_effect == trading_pb2.POSITION_EFFECT_CLOSE
    assert Decimal(closing.realized_pnl) == expected_pnl
    assert all(Decimal(t.realized_pnl) == 0 for t in trades if t is not closing)
    assert {t.position_id for t in trades} == {position.id}
    assert positions_of(edge, trader) == []  # closed positions are not listed as open

    # The ledger books the trade's P&L once, referencing it; the balance moves by exactly that.
    booked = eventually(
        lambda: ledger_of(accounts, trader.account_id), 15, "the trade booked to the ledger"
    )
    assert booked == [("REALIZED_PNL", expected_pnl, closing.id)]
    cached, total, count = accounts.balance(trader.account_id)
    assert cached == total == DEPOSIT + expected_pnl
    assert count == 2  # the deposit and the P&L: no commission in the standard group

    # Every order's every change was published once, in its versions 1..n.
    order_ids = {over_grpc.id, over_web.id, over_rest["id"], close["id"]}
    eventually(lambda: unsent_outbox(accounts) == 0, 10, "the OMS outbox drained")
    published = order_events(accounts, order_ids)
    for order_id, versions in published.items():
        assert versions == list(range(1, len(versions) + 1)), (order_id, versions)
        assert len(versions) >= 4  # created, submitted, accepted, filled
    executed = [
        oms_events_pb2.TradeExecuted.FromString(event.data)
        for _, event in events_on(_oms_messages(accounts), "oms.trade.executed")
    ]
    mine = sorted(
        (e.trade.id, e.trade.realized_pnl)
        for e in executed
        if e.trade.account_id == trader.account_id
    )
    assert mine == sorted((t.id, t.realized_pnl) for t in trades)


def test_killing_the_oms_between_commit_and_publication_loses_and_duplicates_no_event(
    running_stack: RunningStack,
    edge: Edge,
    accounts: AccountStack,
    pinned: Callable[[str, str], None],
) -> None:
    trader = new_trader(edge, accounts)
    pinned("1.20000", "1.20010")
    await_quote(edge, trader, "1.19995", "1.20015")
    # NATS stops answering: the OMS commits and answers, but its relay cannot publish.
    with frozen(running_stack, "nats"):
        orders = [
            place_grpc(edge, trader, market(trader, types_pb2.SIDE_BUY, "0.01")) for _ in range(3)
        ]
        assert unsent_outbox(accounts) > 0
        kill(running_stack, "oms")  # and gone before `up` looks
    assert all(o.status == trading_pb2.ORDER_STATUS_FILLED for o in orders), orders

    restore(running_stack)  # restarts the OMS
    eventually(lambda: unsent_outbox(accounts) == 0, 30, "the restarted OMS's relay drained")

    published = order_events(accounts, {o.id for o in orders})
    for order in orders:
        assert published[order.id] == list(range(1, order.version + 1)), (order.id, published)
    with edge.channel() as channel:
        for order in orders:  # the answered orders survived the kill as answered
            stored = (
                order_grpc.OrderServiceStub(channel)
                .GetOrder(
                    order_service_pb2.GetOrderRequest(
                        account_id=trader.account_id, order_id=order.id
                    ),
                    metadata=bearer(trader.token),
                    timeout=10,
                )
                .order
            )
            assert (stored.status, stored.version) == (order.status, order.version)


def test_the_edge_refuses_an_order_for_another_users_account(
    edge: Edge, accounts: AccountStack
) -> None:
    owner, other = new_trader(edge, accounts), new_trader(edge, accounts)
    request = market(owner, types_pb2.SIDE_BUY, "0.01")

    with pytest.raises(grpc.RpcError) as refused:
        place_grpc(edge, other, request)

    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    with accounts.db() as conn:
        row = conn.execute(
            "SELECT count(*) FROM oms.orders WHERE client_order_id = %s",
            (request.client_order_id,),
        ).fetchone()
    assert row == (0,)


def test_a_health_check_through_the_edge_is_answered_by_the_oms(edge: Edge) -> None:
    """The order benchmark's bare echo: the same Envoy, the same upstream as PlaceOrder."""
    with edge.channel() as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="tradingmesh.oms.v1.OrderService"), timeout=10
        )

    assert response.status == health_pb2.HealthCheckResponse.SERVING

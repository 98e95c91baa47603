"""Traders who sign in and trade through the edge (Envoy, with a real token): a funded trader
once risk knows the deposit (`new_trader`), market orders over gRPC, the group's quote, and the
account service's unsent outbox."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

import grpc

from tests.integration.callers import AccountStack
from tests.integration.callers import staff
from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.waiting import eventually
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb
from tradingmesh.account.v1 import auth_service_pb2 as auth_pb2
from tradingmesh.account.v1 import auth_service_pb2_grpc as auth_grpc
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.oms.v1 import order_service_pb2_grpc as order_grpc
from tradingmesh.pricing.v1 import pricing_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc as pricing_grpc
from tradingmesh.risk.v1 import risk_service_pb2
from tradingmesh.risk.v1 import risk_service_pb2_grpc as risk_grpc

DEPOSIT = Decimal("10000.00")


@dataclass(frozen=True)
class Trader:
    user_id: str
    account_id: str
    token: str


def new_trader(edge: Edge, accounts: AccountStack) -> Trader:
    """A KYC-approved user with a funded account in the standard group (market execution,
    netting, a 10-point markup, no commission), created through the account service, so its
    events reach the OMS and the risk service; signed in through the edge."""
    backoffice = staff()
    user = accounts.new_user(backoffice)
    groups = accounts.admin.ListClientGroups(
        admin_pb.ListClientGroupsRequest(), metadata=accounts.as_(backoffice)
    ).client_groups
    standard = next(g for g in groups if g.name == "standard")
    account = accounts.admin.CreateTradingAccount(
        admin_pb.CreateTradingAccountRequest(user_id=user.id, group_id=standard.id),
        metadata=accounts.as_(backoffice),
    ).account
    accounts.deposit_direct(account.account_number, str(DEPOSIT))
    with edge.channel() as channel:
        login = auth_grpc.AuthServiceStub(channel).Login(
            auth_pb2.LoginRequest(username=user.username, password="correct horse battery"),
            timeout=20,
        )
    trader = Trader(user.id, account.id, login.access_token)
    # The OMS and the risk service learn the account and its deposit from the account events.
    eventually(lambda: funded_at_risk(edge, trader), 30, "the OMS and risk know the funded account")
    return trader


def funded_at_risk(edge: Edge, trader: Trader) -> bool:
    """Whether the OMS knows the account and risk has its deposit, in every instance: Envoy
    balances the calls round robin, so twice as many answers as instances all show it (each
    risk instance reads the events itself, ADR 0017)."""
    with edge.channel() as channel:
        try:
            order_grpc.OrderServiceStub(channel).ListOrders(
                order_service_pb2.ListOrdersRequest(account_id=trader.account_id),
                metadata=bearer(trader.token),
                timeout=10,
            )
            for _ in range(2 * edge.state.replicas):
                risk = risk_grpc.RiskServiceStub(channel).GetAccountRisk(
                    risk_service_pb2.GetAccountRiskRequest(account_id=trader.account_id),
                    metadata=bearer(trader.token),
                    timeout=10,
                )
                if Decimal(risk.account_risk.balance or "0") != DEPOSIT:
                    return False
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
    return True


def group_quote(edge: Edge, trader: Trader) -> tuple[str, str]:
    with edge.channel() as channel:
        quote = (
            pricing_grpc.PricingServiceStub(channel)
            .GetQuote(
                pricing_service_pb2.GetQuoteRequest(account_id=trader.account_id, symbol="EURUSD"),
                metadata=bearer(trader.token),
                timeout=10,
            )
            .quote
        )
    return quote.bid, quote.ask


def await_quote(edge: Edge, trader: Trader, bid: str, ask: str) -> None:
    eventually(lambda: group_quote(edge, trader) == (bid, ask), 10, f"the quote {bid}/{ask}")
    time.sleep(0.3)  # the OMS and the risk service read the same price from NATS


def market(trader: Trader, side: int, quantity: str) -> order_service_pb2.PlaceOrderRequest:
    return order_service_pb2.PlaceOrderRequest(
        account_id=trader.account_id,
        client_order_id=f"it-{uuid.uuid4().hex[:20]}",
        symbol="EURUSD",
        side=side,  # type: ignore[arg-type]
        type=trading_pb2.ORDER_TYPE_MARKET,
        quantity=quantity,
    )


def place_grpc(
    edge: Edge, trader: Trader, request: order_service_pb2.PlaceOrderRequest
) -> oms_pb2.Order:
    with edge.channel() as channel:
        response = order_grpc.OrderServiceStub(channel).PlaceOrder(
            request, metadata=bearer(trader.token), timeout=10
        )
    return response.order


def filled_market(
    edge: Edge, trader: Trader, side: int = types_pb2.SIDE_BUY, quantity: str = "0.01"
) -> oms_pb2.Order:
    """A market order that fills, placed again under a new id while a price is momentarily
    stale (5 tries, a second apart)."""
    for _ in range(5):
        order = place_grpc(edge, trader, market(trader, side, quantity))
        if order.status == trading_pb2.ORDER_STATUS_FILLED:
            return order
        time.sleep(1)
    raise AssertionError("no market order filled in 5 attempts")


def unsent_outbox(accounts: AccountStack) -> int:
    with accounts.db() as conn:
        row = conn.execute("SELECT count(*) FROM oms.outbox WHERE sent_at IS NULL").fetchone()
    assert row is not None
    return int(row[0])

"""The broker the risk tests set up (`Broker`): its own client group with instruments priced by
pinned LP simulators, funded accounts once the risk service knows them, and market orders."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import grpc

from simulators.lp.control import ControlClient
from tests.integration.callers import AccountStack
from tests.integration.callers import Who
from tests.integration.support.waiting import eventually
from tradingmesh.account.v1 import account_admin_service_pb2 as account_admin_pb2
from tradingmesh.account.v1 import account_pb2
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.oms.v1 import order_service_pb2_grpc as order_grpc
from tradingmesh.pricing.v1 import pricing_admin_service_pb2_grpc as pricing_admin_grpc
from tradingmesh.risk.v1 import risk_admin_service_pb2_grpc as admin_grpc
from tradingmesh.risk.v1 import risk_internal_service_pb2 as internal_pb2
from tradingmesh.risk.v1 import risk_internal_service_pb2_grpc as internal_grpc
from tradingmesh.risk.v1 import risk_service_pb2_grpc as api_grpc

D = Decimal


SERVICE = Who("", "")  # another service: the edge token, no user
ADMIN, DEALER, BACKOFFICE = (
    Who(str(uuid.uuid4()), role) for role in ("admin", "dealer", "backoffice")
)


@dataclass
class Broker:
    stack: AccountStack
    risk_channel: grpc.Channel
    pricing_channel: grpc.Channel
    oms_channel: grpc.Channel
    lps: dict[str, ControlClient]
    group_id: str
    unpriced: str  # an instrument offered to the group that no LP quotes
    symbols: list[str]
    probe_account: str = ""  # a well-funded account of the group, to see what risk sees

    @property
    def check(self) -> internal_grpc.RiskInternalServiceStub:
        return internal_grpc.RiskInternalServiceStub(self.risk_channel)

    @property
    def risk(self) -> api_grpc.RiskServiceStub:
        return api_grpc.RiskServiceStub(self.risk_channel)

    @property
    def risk_admin(self) -> admin_grpc.RiskAdminServiceStub:
        return admin_grpc.RiskAdminServiceStub(self.risk_channel)

    @property
    def pricing_admin(self) -> pricing_admin_grpc.PricingAdminServiceStub:
        return pricing_admin_grpc.PricingAdminServiceStub(self.pricing_channel)

    def offer(self, symbol: str, **fields: Any) -> None:
        self.stack.admin.SetGroupInstrumentSettings(
            account_admin_pb2.SetGroupInstrumentSettingsRequest(
                settings=account_pb2.GroupInstrumentSettings(
                    group_id=self.group_id, symbol=symbol, enabled=True, **fields
                )
            ),
            metadata=self.stack.as_(ADMIN),
            timeout=10,
        )

    def new_account(self, amount: str) -> tuple[account_pb2.User, account_pb2.TradingAccount]:
        """A trader with an account in the group, funded by an approved balance adjustment."""
        user = self.stack.new_user(ADMIN)
        account = self.stack.admin.CreateTradingAccount(
            account_admin_pb2.CreateTradingAccountRequest(user_id=user.id, group_id=self.group_id),
            metadata=self.stack.as_(ADMIN),
            timeout=10,
        ).account
        adjustment = self.stack.admin.RequestBalanceAdjustment(
            account_admin_pb2.RequestBalanceAdjustmentRequest(
                account_id=account.id,
                amount=amount,
                reason="risk integration test funding",
                idempotency_key=f"fund-{uuid.uuid4().hex[:16]}",
            ),
            metadata=self.stack.as_(ADMIN),
            timeout=10,
        ).balance_adjustment
        self.stack.admin.ApproveBalanceAdjustment(
            account_admin_pb2.ApproveBalanceAdjustmentRequest(balance_adjustment_id=adjustment.id),
            metadata=self.stack.as_(BACKOFFICE),
            timeout=10,
        )
        return user, account

    def pin(self, symbol: str, bid: str, ask: str, *, move_first: bool = True) -> None:
        """Both LPs quote exactly (bid, ask), and risk has the price. With `move_first`, the
        price is moved a point first so that it is published afresh (see the module's
        docstring); a pin to a price different from the last needs no such move."""
        point = D(1).scaleb(D(bid).as_tuple().exponent)  # type: ignore[arg-type]
        moved = (str(D(bid) + point), str(D(ask) + point))
        for target in (moved, (bid, ask)) if move_first else ((bid, ask),):
            for lp in self.lps.values():
                lp.pin(symbol, *target)
            wanted = target
            eventually(lambda: self._risk_sees(symbol, *wanted), 30, f"{symbol} at {target}")  # noqa: B023

    def _risk_sees(self, symbol: str, bid: str, ask: str) -> bool | None:
        """Risk values a buy at `ask` and a sell at `bid`: both LPs' pins have reached it (with
        only one there, the best of the two prices may still be the other's old one)."""
        for side, price in ((types_pb2.SIDE_BUY, ask), (types_pb2.SIDE_SELL, bid)):
            response = self.check_order(self.probe_account, symbol, side, "0.01")
            if response.valuation_price != price:
                return None
        return True

    def check_order(
        self,
        account_id: str,
        symbol: str,
        side: types_pb2.Side.ValueType,
        quantity: str,
        **fields: Any,
    ) -> internal_pb2.CheckOrderResponse:
        response: internal_pb2.CheckOrderResponse = self.check.CheckOrder(
            internal_pb2.CheckOrderRequest(
                account_id=account_id,
                order_id=fields.pop("order_id", str(uuid.uuid4())),
                purpose=fields.pop("purpose", internal_pb2.CHECK_PURPOSE_PLACE),
                symbol=symbol,
                side=side,
                quantity=quantity,
                remaining_quantity=quantity,
                **fields,
            ),
            metadata=self.stack.as_(SERVICE),
            timeout=5,
        )
        return response


def funded_in_risk(broker: Broker, account_id: str) -> bool | None:
    """Whether risk knows the account and its money: a small order is approved."""
    try:
        response = broker.check_order(account_id, "EURUSD", types_pb2.SIDE_BUY, "0.01")
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return None  # the account's creation event is on its way
        raise
    return True if response.approved else None


def place_market(
    broker: Broker, user: account_pb2.User, account_id: str, symbol: str, quantity: str
) -> oms_pb2.Order:
    order: oms_pb2.Order = (
        order_grpc.OrderServiceStub(broker.oms_channel)
        .PlaceOrder(
            order_service_pb2.PlaceOrderRequest(
                account_id=account_id,
                client_order_id=f"it-{uuid.uuid4().hex[:16]}",
                symbol=symbol,
                side=types_pb2.SIDE_BUY,
                type=trading_pb2.ORDER_TYPE_MARKET,
                quantity=quantity,
            ),
            metadata=broker.stack.as_(Who(user.id, "trader")),
            timeout=10,
        )
        .order
    )
    return order

"""Orders against the real stack, for the tests of the OMS and of what it drives: the OMS
connection (`Oms`), client groups and funded traders (`new_group`, `new_trader`), live prices,
placing orders and reading a refusal's details, and the verified audit chain of an account.

Traders are created through AccountAdminService (so the OMS and the risk service learn of their
accounts from the account events) and funded with a deposit; they call the OMS directly with the
headers Envoy would add (`callers.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import grpc
import pytest

from services.oms.audit import COLUMNS as AUDIT_COLUMNS
from services.oms.audit import AuditRecord
from services.oms.audit import verify_records
from stack.operator_tls import service_channel
from stack.ports import Ports
from tests.integration.callers import AccountStack
from tests.integration.callers import Who
from tests.integration.callers import account_stack
from tests.integration.callers import staff
from tests.integration.conftest import RunningStack
from tests.integration.support.waiting import eventually
from tests.messages import client_group
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb
from tradingmesh.account.v1 import account_pb2
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import details_of
from tradingmesh.oms.v1 import oms_internal_service_pb2_grpc
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.oms.v1 import order_service_pb2_grpc
from tradingmesh.oms.v1 import position_service_pb2_grpc
from tradingmesh.pricing.v1 import pricing_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc
from tradingmesh.risk.v1 import risk_service_pb2
from tradingmesh.risk.v1 import risk_service_pb2_grpc

R = ErrorReason
S = trading_pb2
D = Decimal
STANDARD_GROUP = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://tradingmesh.local/group/standard"))
SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD")
DEPOSIT = "10000.00"


# ---- the stack --------------------------------------------------------------------------------


@dataclass
class Oms:
    running: RunningStack
    stack: AccountStack
    channel: grpc.Channel

    @property
    def orders(self) -> order_service_pb2_grpc.OrderServiceStub:
        return order_service_pb2_grpc.OrderServiceStub(self.channel)

    @property
    def positions(self) -> position_service_pb2_grpc.PositionServiceStub:
        return position_service_pb2_grpc.PositionServiceStub(self.channel)

    @property
    def internal(self) -> oms_internal_service_pb2_grpc.OmsInternalServiceStub:
        return oms_internal_service_pb2_grpc.OmsInternalServiceStub(self.channel)

    @property
    def ports(self) -> Ports:
        return Ports(self.running.state.base_port)

    def service(self, name: str) -> grpc.Channel:
        return service_channel(self.running.state, name)

    def as_service(self) -> tuple[tuple[str, str], ...]:
        """What another tradingmesh service sends: the edge token, no user."""
        return (("x-tm-edge-token", self.stack.edge_token),)

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.stack.db() as conn:
            return conn.execute(sql, params).fetchall()


def connect(running_stack: RunningStack) -> Iterator[Oms]:
    """The OMS of the test stack, with the account service to arrange traders."""
    for stack in account_stack(running_stack):
        channel = service_channel(running_stack.state, "oms")
        try:
            yield Oms(running_stack, stack, channel)
        finally:
            channel.close()


def refusal(call: Callable[[], Any]) -> tuple[grpc.StatusCode, int, Any]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    details = details_of(raised.value)
    return details.code, details.reason, details


# ---- traders ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trader:
    user_id: str
    account_id: str
    account_number: str
    group_id: str
    md: tuple[tuple[str, str], ...]


def new_group(
    oms: Oms,
    execution: types_pb2.ExecutionMode.ValueType,
    *,
    positions: types_pb2.PositionMode.ValueType = types_pb2.POSITION_MODE_NETTING,
    commission: str = "0",
    max_deviation_points: int = 0,
    markup_points: int = 0,
) -> str:
    """A client group of its own, offered SYMBOLS; its price `markup_points` wider than the raw
    best (half of them, rounded down, off the bid, the rest onto the ask)."""
    admin = oms.stack.as_(Who(str(uuid.uuid4()), "admin"))
    group = oms.stack.admin.CreateClientGroup(
        admin_pb.CreateClientGroupRequest(
            client_group=client_group(
                execution_mode=execution,
                position_mode=positions,
                commission_per_lot=commission,
                max_deviation_points=max_deviation_points,
                spread_markup=str(markup_points),
            )
        ),
        metadata=admin,
    ).client_group
    for symbol in SYMBOLS:
        oms.stack.admin.SetGroupInstrumentSettings(
            admin_pb.SetGroupInstrumentSettingsRequest(
                settings=account_pb2.GroupInstrumentSettings(
                    group_id=group.id, symbol=symbol, enabled=True
                )
            ),
            metadata=admin,
        )
    return group.id


def new_trader(
    oms: Oms,
    group_id: str = STANDARD_GROUP,
    *,
    positions: types_pb2.PositionMode.ValueType = types_pb2.POSITION_MODE_UNSPECIFIED,
    deposit: str = DEPOSIT,
) -> Trader:
    """A user with a funded account in `group_id`, once the OMS, the risk service and pricing
    know it."""
    backoffice = staff()
    user = oms.stack.new_user(backoffice)
    account = oms.stack.admin.CreateTradingAccount(
        admin_pb.CreateTradingAccountRequest(
            user_id=user.id, group_id=group_id, position_mode=positions
        ),
        metadata=oms.stack.as_(backoffice),
    ).account
    oms.stack.deposit_direct(account.account_number, deposit)
    trader = Trader(
        user.id,
        account.id,
        account.account_number,
        group_id,
        oms.stack.as_(Who(user.id, "trader", accounts=account.id)),
    )
    eventually(lambda: oms_knows(oms, trader), 30, "the OMS knows the new account")
    eventually(lambda: risk_funded(oms, trader, D(deposit)), 30, "risk sees the deposit")
    for symbol in ("EURUSD", "USDJPY"):
        live_quote(oms, trader, symbol)
    return trader


def oms_knows(oms: Oms, trader: Trader) -> bool:
    try:
        oms.orders.ListOrders(
            order_service_pb2.ListOrdersRequest(account_id=trader.account_id), metadata=trader.md
        )
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return False
        raise
    return True


def risk_funded(oms: Oms, trader: Trader, deposit: Decimal) -> bool:
    """Whether every risk instance has the deposit: each reads the events itself (ADR 0017), and
    the account's checks go to one of them, whichever it is."""
    for instance in range(1, oms.running.state.replicas + 1):
        with service_channel(oms.running.state, "risk", instance) as channel:
            try:
                risk = risk_service_pb2_grpc.RiskServiceStub(channel).GetAccountRisk(
                    risk_service_pb2.GetAccountRiskRequest(account_id=trader.account_id),
                    metadata=trader.md,
                    timeout=5,
                )
            except grpc.RpcError as error:
                if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                    return False
                raise
        if D(risk.account_risk.balance or "0") < deposit:
            return False
    return True


def live_quote(oms: Oms, trader: Trader, symbol: str = "EURUSD") -> pricing_pb2.Quote:
    """The group's current price, once pricing quotes it."""

    def probe() -> pricing_pb2.Quote | None:
        with oms.service("pricing") as channel:
            try:
                quote = (
                    pricing_service_pb2_grpc.PricingServiceStub(channel)
                    .GetQuote(
                        pricing_service_pb2.GetQuoteRequest(
                            symbol=symbol, account_id=trader.account_id
                        ),
                        metadata=trader.md,
                        timeout=5,
                    )
                    .quote
                )
            except grpc.RpcError as error:
                if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND):
                    return None
                raise
        return None if quote.stale else quote

    return eventually(probe, 30, f"a live {symbol} price for the group")


def place(
    oms: Oms, trader: Trader, *, client_order_id: str | None = None, **fields: Any
) -> oms_pb2.Order:
    values: dict[str, Any] = {
        "account_id": trader.account_id,
        "client_order_id": client_order_id or f"it-{uuid.uuid4().hex[:16]}",
        "symbol": "EURUSD",
        "side": types_pb2.SIDE_BUY,
        "type": S.ORDER_TYPE_MARKET,
        "quantity": "0.10",
    }
    values.update(fields)
    return oms.orders.PlaceOrder(
        order_service_pb2.PlaceOrderRequest(**values), metadata=trader.md, timeout=10
    ).order


def place_filled(oms: Oms, trader: Trader, **fields: Any) -> oms_pb2.Order:
    """A market order that fills; retried (new ids) while a price is momentarily not live."""

    def attempt() -> oms_pb2.Order | None:
        order = place(oms, trader, **fields)
        if order.status_reason == R.ERROR_REASON_PRICE_UNAVAILABLE:
            return None
        return order

    order = eventually(attempt, 20, "a market order with a live price")
    assert order.status == S.ORDER_STATUS_FILLED, (order.status_reason, order.status_message)
    return order


def verified_chain(oms: Oms, account_id: str) -> list[AuditRecord]:
    """The account's audit records in sequence, after checking that the chain recomputes and
    that its end is the head on the account."""
    with oms.stack.db() as conn, conn.cursor(row_factory=_dict_rows) as cursor:
        rows = cursor.execute(
            f"SELECT {AUDIT_COLUMNS} FROM oms.audit_records WHERE account_id = %s"
            " ORDER BY sequence",
            (account_id,),
        ).fetchall()
        head = conn.execute(
            "SELECT audit_sequence, audit_hash FROM oms.accounts WHERE account_id = %s",
            (account_id,),
        ).fetchone()
    records = [AuditRecord.from_row(r) for r in rows]
    verdict = verify_records(records)
    assert verdict.intact, verdict.problem
    assert head == (len(records), verdict.end_hash)
    return records


def _dict_rows(cursor: Any) -> Callable[[Any], dict[str, Any]]:
    names = [column.name for column in cursor.description or ()]
    return lambda values: dict(zip(names, values, strict=True))


def trades_of(oms: Oms, trader: Trader, order_id: str) -> list[oms_pb2.Trade]:
    return list(
        oms.orders.ListTrades(
            order_service_pb2.ListTradesRequest(account_id=trader.account_id, order_id=order_id),
            metadata=trader.md,
        ).trades
    )

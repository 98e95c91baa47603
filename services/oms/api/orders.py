"""tradingmesh.oms.v1.OrderService: order entry, cancel and amend, order and trade reads.

Thin: requests become intents or calls of `entry` (`placement`, `cancellation`, `amendment`) and
the store, results become messages. Every RPC first checks that the caller owns the account
(`ownership`), so another user's account or order is NOT_FOUND.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from typing import Any

import grpc.aio

from services.oms.api.lists import order_page
from services.oms.api.lists import trade_page
from services.oms.api.ownership import authorize_owner
from services.oms.api.ownership import authorize_trader
from services.oms.api.ownership import owned_account
from services.oms.api.updates import OrderUpdateHub
from services.oms.domain.positions import Side
from services.oms.entry.amendment import Amendment
from services.oms.entry.cancellation import cancel_order
from services.oms.entry.fingerprint import fingerprint
from services.oms.entry.placement import OrderIntent
from services.oms.entry.placement import Placement
from services.oms.model import OrderType
from services.oms.model import TimeInForce
from services.oms.store import events
from services.oms.store.changes import AccountChange
from services.oms.store.changes import order_of
from services.oms.store.queries import list_orders
from services.platform.db import Database
from services.platform.errors import DomainError
from services.platform.identity import current_caller
from services.platform.resources import Resources
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.exact import optional_decimal
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.oms.v1 import order_service_pb2_grpc

__all__ = ["OrderService"]

Context = grpc.aio.ServicerContext[Any, Any]
_R = ErrorReason


def intent_of(request: order_service_pb2.PlaceOrderRequest) -> OrderIntent:
    order_type = OrderType.from_proto(request.type)
    time_in_force = (
        TimeInForce.default_for(order_type)
        if request.time_in_force == trading_pb2.TIME_IN_FORCE_UNSPECIFIED
        else TimeInForce.from_proto(request.time_in_force)
    )
    return OrderIntent(
        account_id=request.account_id,
        client_order_id=request.client_order_id,
        fingerprint=fingerprint(request),
        symbol=request.symbol,
        side=Side.from_proto(request.side),
        type=order_type,
        time_in_force=time_in_force,
        quantity=Decimal(request.quantity),
        price=optional_decimal(request, "price"),
        stop_price=optional_decimal(request, "stop_price"),
        requested_price=optional_decimal(request, "requested_price"),
        stop_loss=optional_decimal(request, "stop_loss"),
        take_profit=optional_decimal(request, "take_profit"),
        position_id=request.position_id if request.HasField("position_id") else None,
    )


class OrderService(order_service_pb2_grpc.OrderServiceServicer):
    def __init__(
        self,
        resources: Resources,
        placement: Placement,
        hub: OrderUpdateHub,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.resources = resources
        self.placement = placement
        self.hub = hub
        self.clock = clock
        self.amendment = Amendment(resources, placement.quotes, placement.risk, clock)

    @property
    def db(self) -> Database:
        return self.resources.db

    async def PlaceOrder(  # noqa: N802
        self, request: order_service_pb2.PlaceOrderRequest, context: Context
    ) -> order_service_pb2.PlaceOrderResponse:
        caller = current_caller()
        placed = await self.placement.place(
            intent_of(request),
            events.actor_of(caller),
            authorize_trader(request.account_id),
            caller.request_id,
        )
        return order_service_pb2.PlaceOrderResponse(order=placed.order.to_proto(placed.currency))

    async def CancelOrder(  # noqa: N802
        self, request: order_service_pb2.CancelOrderRequest, context: Context
    ) -> order_service_pb2.CancelOrderResponse:
        caller = current_caller()
        async with self.db.transaction() as session:
            account = await owned_account(session, request.account_id)
            async with AccountChange.for_caller(session, account, caller, self.clock()) as change:
                order = await cancel_order(change, request.order_id, "cancelled by the client")
        return order_service_pb2.CancelOrderResponse(order=order.to_proto(account.currency))

    async def AmendOrder(  # noqa: N802
        self, request: order_service_pb2.AmendOrderRequest, context: Context
    ) -> order_service_pb2.AmendOrderResponse:
        order, account = await self.amendment.amend(
            request, current_caller(), authorize_owner(request.account_id)
        )
        return order_service_pb2.AmendOrderResponse(order=order.to_proto(account.currency))

    async def GetOrder(  # noqa: N802
        self, request: order_service_pb2.GetOrderRequest, context: Context
    ) -> order_service_pb2.GetOrderResponse:
        async with self.db.read_session() as session:
            account = await owned_account(session, request.account_id)
            order = await order_of(session, account.account_id, request.order_id)
        return order_service_pb2.GetOrderResponse(order=order.to_proto(account.currency))

    async def ListOrders(  # noqa: N802
        self, request: order_service_pb2.ListOrdersRequest, context: Context
    ) -> order_service_pb2.ListOrdersResponse:
        async with self.db.read_session() as session:
            account = await owned_account(session, request.account_id)
            orders, token = await order_page(
                session, request, account.account_id, client_order_id=request.client_order_id
            )
        return order_service_pb2.ListOrdersResponse(orders=orders, next_page_token=token)

    async def ListTrades(  # noqa: N802
        self, request: order_service_pb2.ListTradesRequest, context: Context
    ) -> order_service_pb2.ListTradesResponse:
        async with self.db.read_session() as session:
            account = await owned_account(session, request.account_id)
            trades, token = await trade_page(
                session,
                request,
                account.account_id,
                order_id=request.order_id,
                position_id=request.position_id,
            )
        return order_service_pb2.ListTradesResponse(trades=trades, next_page_token=token)

    async def StreamOrderUpdates(  # noqa: N802
        self, request: order_service_pb2.StreamOrderUpdatesRequest, context: Context
    ) -> AsyncIterator[order_service_pb2.StreamOrderUpdatesResponse]:
        async with self.db.read_session() as session:
            account = await owned_account(session, request.account_id)
        # Subscribed before the snapshot is read, so no change falls between the two; a live
        # update the snapshot already shows (same or older version) is dropped.
        stream = self.hub.open(account.account_id)
        try:
            seen: dict[str, int] = {}
            if request.send_open_orders:
                async with self.db.read_session() as session:
                    page = await list_orders(
                        session,
                        account_id=account.account_id,
                        open_only=True,
                        symbol=request.symbol,
                        requested_size=500,
                    )
                for order, currency in reversed(page.items):
                    seen[order.id] = order.version
                    snapshot = order.to_proto(currency)
                    yield order_service_pb2.StreamOrderUpdatesResponse(
                        update=oms_pb2.OrderUpdate(
                            event_type=oms_pb2.ORDER_EVENT_TYPE_SNAPSHOT,
                            order=snapshot,
                            previous_status=snapshot.status,
                        )
                    )
            while True:
                update = await stream.next()
                if update is None:
                    raise DomainError(
                        _R.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
                        "the stream fell behind; reconnect with send_open_orders",
                    )
                changed = update.order
                if request.symbol and changed.symbol != request.symbol:
                    continue
                if seen.get(changed.id, 0) >= changed.version:
                    continue
                yield order_service_pb2.StreamOrderUpdatesResponse(update=update)
        finally:
            self.hub.close(stream)

"""tradingmesh.oms.v1.OrderAdminService: broker staff's view across accounts, and their actions.

Reads need admin, dealer or backoffice; the actions (cancel, close, settle a hedge order, reset
an LP order session, set swap terms) admin or dealer; starting a rollover admin only
(`rollover/admin.py`, ADR 0010). Actions go through the same code as the client's
(`entry.cancellation`, `placement`) with an OPERATOR actor, the operator's reason in the audit
log and as the order's status_message. A hedge order's settlement and an LP order session's
sequence numbers are the STP desk's (`stp.desk.StpDesk.settle_hedge`, `StpDesk.sessions`), with
an operator audit record (`operator_audit`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from typing import Any
from typing import Final

import grpc.aio
from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.api.lists import order_page
from services.oms.api.lists import paging
from services.oms.api.lists import position_page
from services.oms.api.lists import time_range_of
from services.oms.api.lists import trade_page
from services.oms.api.ownership import authorize_internal
from services.oms.api.ownership import known_account
from services.oms.api.valuation import Valuer
from services.oms.entry.cancellation import cancel_order
from services.oms.entry.closing import close_position
from services.oms.entry.placement import Placement
from services.oms.feeds.quotes import QuoteBook
from services.oms.model import OrderOrigin
from services.oms.rollover.admin import SwapAdmin
from services.oms.store import events
from services.oms.store.changes import AccountChange
from services.oms.store.hedges import get_hedge
from services.oms.store.queries import hedge_order_links
from services.oms.store.queries import list_hedge_orders
from services.oms.store.rows import found
from services.oms.stp.desk import StpDesk
from services.oms.stp.hedges import HedgeRow
from services.oms.stp.hedges import SettlementOutcome
from services.oms.stp.lp_orders import SessionNumbers
from services.platform.access import ADMIN
from services.platform.access import BACKOFFICE
from services.platform.access import DEALER
from services.platform.access import require_roles
from services.platform.db import Database
from services.platform.enums import enum_name
from services.platform.messages import from_row
from services.platform.resources import Resources
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_admin_service_pb2
from tradingmesh.oms.v1 import order_admin_service_pb2_grpc

__all__ = ["OrderAdminService"]

Context = grpc.aio.ServicerContext[Any, Any]
READERS: Final = (ADMIN, DEALER, BACKOFFICE)
ACTORS: Final = (ADMIN, DEALER)


class OrderAdminService(order_admin_service_pb2_grpc.OrderAdminServiceServicer):
    def __init__(
        self,
        resources: Resources,
        quotes: QuoteBook,
        placement: Placement | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        desk: StpDesk | None = None,
        swaps: SwapAdmin | None = None,
    ) -> None:
        self.resources = resources
        self.swaps = swaps
        self.valuer = Valuer(quotes, clock)
        self.placement = placement
        self.desk = desk
        self.clock = clock

    @property
    def db(self) -> Database:
        return self.resources.db

    async def ListAllOrders(  # noqa: N802
        self, request: order_admin_service_pb2.ListAllOrdersRequest, context: Context
    ) -> order_admin_service_pb2.ListAllOrdersResponse:
        require_roles(READERS)
        async with self.db.read_session() as session:
            orders, token = await order_page(
                session,
                request,
                request.account_id or None,
                origins=[OrderOrigin.from_proto(o).value for o in request.origins],
            )
        return order_admin_service_pb2.ListAllOrdersResponse(orders=orders, next_page_token=token)

    async def ListAllTrades(  # noqa: N802
        self, request: order_admin_service_pb2.ListAllTradesRequest, context: Context
    ) -> order_admin_service_pb2.ListAllTradesResponse:
        require_roles(READERS)
        async with self.db.read_session() as session:
            trades, token = await trade_page(
                session, request, request.account_id or None, hedge_order_id=request.hedge_order_id
            )
        return order_admin_service_pb2.ListAllTradesResponse(trades=trades, next_page_token=token)

    async def ListAllPositions(  # noqa: N802
        self, request: order_admin_service_pb2.ListAllPositionsRequest, context: Context
    ) -> order_admin_service_pb2.ListAllPositionsResponse:
        require_roles(READERS)
        async with self.db.read_session() as session:
            positions, token = await position_page(session, self.valuer, request, None)
        return order_admin_service_pb2.ListAllPositionsResponse(
            positions=positions, next_page_token=token
        )

    async def ListHedgeOrders(  # noqa: N802
        self, request: order_admin_service_pb2.ListHedgeOrdersRequest, context: Context
    ) -> order_admin_service_pb2.ListHedgeOrdersResponse:
        require_roles(READERS)
        async with self.db.read_session() as session:
            page = await list_hedge_orders(
                session,
                symbol=request.symbol,
                liquidity_provider_id=request.liquidity_provider_id,
                statuses=[enum_name(oms_pb2.HedgeOrderStatus, s) for s in request.statuses],
                order_id=request.order_id,
                time_range=time_range_of(request),
                **paging(request),
            )
            hedge_orders = await self._hedge_protos(session, [hedge for hedge, _ in page.items])
        return order_admin_service_pb2.ListHedgeOrdersResponse(
            hedge_orders=hedge_orders, next_page_token=page.next_page_token
        )

    async def GetHedgeOrder(  # noqa: N802
        self, request: order_admin_service_pb2.GetHedgeOrderRequest, context: Context
    ) -> order_admin_service_pb2.GetHedgeOrderResponse:
        require_roles(READERS)
        async with self.db.read_session() as session:
            hedge = found(
                await get_hedge(session, request.hedge_order_id),
                "hedge order",
                request.hedge_order_id,
            )
            (hedge_order,) = await self._hedge_protos(session, [hedge])
        return order_admin_service_pb2.GetHedgeOrderResponse(hedge_order=hedge_order)

    async def _hedge_protos(
        self, session: AsyncSession, hedges: list[HedgeRow]
    ) -> list[oms_pb2.HedgeOrder]:
        """The contract's hedge orders, each with its client orders."""
        links = await hedge_order_links(session, [hedge.id for hedge in hedges])
        return [hedge.to_proto(links.get(hedge.id, [])) for hedge in hedges]

    async def CancelOrderAsOperator(  # noqa: N802
        self, request: order_admin_service_pb2.CancelOrderAsOperatorRequest, context: Context
    ) -> order_admin_service_pb2.CancelOrderAsOperatorResponse:
        caller = require_roles(ACTORS)
        async with self.db.transaction() as session:
            account = await known_account(session, request.account_id)
            async with AccountChange.for_caller(session, account, caller, self.clock()) as change:
                order = await cancel_order(
                    change, request.order_id, request.reason, status_message=request.reason
                )
        return order_admin_service_pb2.CancelOrderAsOperatorResponse(
            order=order.to_proto(account.currency)
        )

    async def ClosePositionAsOperator(  # noqa: N802
        self, request: order_admin_service_pb2.ClosePositionAsOperatorRequest, context: Context
    ) -> order_admin_service_pb2.ClosePositionAsOperatorResponse:
        caller = require_roles(ACTORS)
        assert self.placement is not None, "the admin service places closing orders"
        _, placed = await close_position(
            self.db,
            self.placement,
            request,
            events.actor_of(caller),
            authorize_internal(request.account_id),
            caller.request_id,
            origin=OrderOrigin.OPERATOR,
            requotable=False,
            status_message=request.reason,
        )
        return order_admin_service_pb2.ClosePositionAsOperatorResponse(
            order=placed.order.to_proto(placed.currency)
        )

    async def SettleHedgeOrder(  # noqa: N802
        self, request: order_admin_service_pb2.SettleHedgeOrderRequest, context: Context
    ) -> order_admin_service_pb2.SettleHedgeOrderResponse:
        caller = require_roles(ACTORS)
        desk = self._desk()
        hedge = await desk.settle_hedge(
            request.hedge_order_id,
            _SETTLEMENTS[request.outcome],
            Decimal(request.filled_quantity) if request.HasField("filled_quantity") else None,
            Decimal(request.average_price) if request.HasField("average_price") else None,
            request.reason,
            events.actor_of(caller),
            caller.request_id,
        )
        async with self.db.read_session() as session:
            (hedge_order,) = await self._hedge_protos(session, [hedge])
        return order_admin_service_pb2.SettleHedgeOrderResponse(hedge_order=hedge_order)

    async def ListLpOrderSessions(  # noqa: N802
        self, request: order_admin_service_pb2.ListLpOrderSessionsRequest, context: Context
    ) -> order_admin_service_pb2.ListLpOrderSessionsResponse:
        require_roles(READERS)
        if self.desk is None or self.desk.router is None:
            return order_admin_service_pb2.ListLpOrderSessionsResponse()
        return order_admin_service_pb2.ListLpOrderSessionsResponse(
            sessions=[_session_proto(n) for n in await self.desk.sessions.numbers()]
        )

    async def ResetLpOrderSession(  # noqa: N802
        self, request: order_admin_service_pb2.ResetLpOrderSessionRequest, context: Context
    ) -> order_admin_service_pb2.ResetLpOrderSessionResponse:
        caller = require_roles(ACTORS)
        numbers = await self._desk().sessions.set_numbers(
            request.liquidity_provider_id,
            request.next_sender_msg_seq_num
            if request.HasField("next_sender_msg_seq_num")
            else None,
            request.next_target_msg_seq_num
            if request.HasField("next_target_msg_seq_num")
            else None,
            request.reason,
            events.actor_of(caller),
            caller.request_id,
        )
        return order_admin_service_pb2.ResetLpOrderSessionResponse(session=_session_proto(numbers))

    async def SetSwapRates(  # noqa: N802
        self, request: order_admin_service_pb2.SetSwapRatesRequest, context: Context
    ) -> order_admin_service_pb2.SetSwapRatesResponse:
        caller = require_roles(ACTORS)
        stored = await self._swaps().set_terms(request, events.actor_of(caller), caller.request_id)
        return order_admin_service_pb2.SetSwapRatesResponse(swap_rates=stored)

    async def ListSwapRates(  # noqa: N802
        self, request: order_admin_service_pb2.ListSwapRatesRequest, context: Context
    ) -> order_admin_service_pb2.ListSwapRatesResponse:
        require_roles(READERS)
        return await self._swaps().list_terms(request)

    async def RunRollover(  # noqa: N802
        self, request: order_admin_service_pb2.RunRolloverRequest, context: Context
    ) -> order_admin_service_pb2.RunRolloverResponse:
        require_roles((ADMIN,))
        return await self._swaps().run(request)

    def _swaps(self) -> SwapAdmin:
        assert self.swaps is not None, "the admin service reaches the swap terms and rollovers"
        return self.swaps

    def _desk(self) -> StpDesk:
        assert self.desk is not None, "the admin service reaches the STP desk"
        return self.desk


_SETTLEMENTS: Final = {
    order_admin_service_pb2.HEDGE_SETTLEMENT_OUTCOME_FILLED: SettlementOutcome.FILLED,
    order_admin_service_pb2.HEDGE_SETTLEMENT_OUTCOME_REJECTED: SettlementOutcome.REJECTED,
}


def _session_proto(numbers: SessionNumbers) -> order_admin_service_pb2.LpOrderSession:
    return from_row(
        order_admin_service_pb2.LpOrderSession, numbers, liquidity_provider_id=numbers.lp
    )

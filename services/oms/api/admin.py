"""tradingmesh.oms.v1.OrderAdminService: broker staff's view across accounts, and their actions.

Reads need admin, dealer or backoffice; the actions (cancel, close, settle a hedge order, reset
an LP order session, set swap terms) admin or dealer; starting a rollover admin only
(`rollover/admin.py`, ADR 0010). Actions go through the same code as the client's
(`orders.cancel_order`, `placement`) with an OPERATOR actor, the operator's reason in the audit
log and as the order's status_message. A hedge order's settlement and an LP order session's
sequence numbers are the STP desk's (`stp.desk.StpDesk.settle_hedge`, `set_session_numbers`), with
an operator audit record (`operator_audit`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import grpc.aio
from sqlalchemy import text

from services.oms.api.orders import cancel_order
from services.oms.api.ownership import authorize_internal
from services.oms.api.paging import decode_token, encode_token, page_size
from services.oms.api.positions import closing_intent, position_not_found
from services.oms.api.valuation import Valuer, load_instruments
from services.oms.domain.state import OrderStatus
from services.oms.entry.fingerprint import fingerprint
from services.oms.entry.placement import Placement
from services.oms.feeds.quotes import QuoteBook
from services.oms.model import OrderOrigin
from services.oms.rollover.admin import SwapAdmin
from services.oms.store import events
from services.oms.store.changes import AccountChange, get_position, load_account, load_accounts
from services.oms.store.queries import list_orders, list_positions, list_trades
from services.oms.stp.desk import StpDesk
from services.oms.stp.hedges import HedgeRow, SettlementOutcome
from services.oms.stp.lp_orders import SessionNumbers
from services.platform.access import (
    ADMIN,
    BACKOFFICE,
    DEALER,
    account_not_found,
    require_roles,
)
from services.platform.db import Database
from services.platform.errors import DomainError
from services.platform.resources import Resources
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.oms.v1 import oms_pb2, order_admin_service_pb2, order_admin_service_pb2_grpc

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
            page = await list_orders(
                session,
                account_id=request.account_id or None,
                statuses=[OrderStatus.from_proto(s).value for s in request.statuses],
                open_only=request.open_only,
                symbol=request.symbol,
                origins=[OrderOrigin.from_proto(o).value for o in request.origins],
                time_range=request.time_range if request.HasField("time_range") else None,
                requested_size=request.page_size,
                token=request.page_token,
            )
        return order_admin_service_pb2.ListAllOrdersResponse(
            orders=[order.to_proto(currency) for order, currency in page.items],
            next_page_token=page.next_page_token,
        )

    async def ListAllTrades(  # noqa: N802
        self, request: order_admin_service_pb2.ListAllTradesRequest, context: Context
    ) -> order_admin_service_pb2.ListAllTradesResponse:
        require_roles(READERS)
        async with self.db.read_session() as session:
            page = await list_trades(
                session,
                account_id=request.account_id or None,
                symbol=request.symbol,
                hedge_order_id=request.hedge_order_id,
                time_range=request.time_range if request.HasField("time_range") else None,
                requested_size=request.page_size,
                token=request.page_token,
            )
        return order_admin_service_pb2.ListAllTradesResponse(
            trades=[trade.to_proto() for trade, _ in page.items],
            next_page_token=page.next_page_token,
        )

    async def ListAllPositions(  # noqa: N802
        self, request: order_admin_service_pb2.ListAllPositionsRequest, context: Context
    ) -> order_admin_service_pb2.ListAllPositionsResponse:
        require_roles(READERS)
        async with self.db.read_session() as session:
            page = await list_positions(
                session,
                account_id=request.account_id or None,
                symbol=request.symbol,
                requested_size=request.page_size,
                token=request.page_token,
            )
            instruments = await load_instruments(session)
            accounts = await load_accounts(session, {p.account_id for p, _ in page.items})
        positions = []
        for position, currency in page.items:
            account = accounts.get(position.account_id)
            if account is None:
                positions.append(position.to_proto(currency))
            else:
                positions.extend(self.valuer.value(account, [position], instruments))
        return order_admin_service_pb2.ListAllPositionsResponse(
            positions=positions, next_page_token=page.next_page_token
        )

    async def ListHedgeOrders(  # noqa: N802
        self, request: order_admin_service_pb2.ListHedgeOrdersRequest, context: Context
    ) -> order_admin_service_pb2.ListHedgeOrdersResponse:
        require_roles(READERS)
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if request.symbol:
            clauses.append("h.symbol = :symbol")
            params["symbol"] = request.symbol
        if request.liquidity_provider_id:
            clauses.append("h.liquidity_provider_id = :lp")
            params["lp"] = request.liquidity_provider_id
        if request.statuses:
            clauses.append("h.status = ANY(:statuses)")
            params["statuses"] = [
                oms_pb2.HedgeOrderStatus.Name(s).removeprefix("HEDGE_ORDER_STATUS_")
                for s in request.statuses
            ]
        if request.order_id:
            clauses.append(
                "EXISTS (SELECT 1 FROM oms.hedge_order_orders l"
                " WHERE l.hedge_order_id = h.id AND l.order_id = :order_id)"
            )
            params["order_id"] = request.order_id
        if request.HasField("time_range"):
            if request.time_range.HasField("start_time"):
                clauses.append("h.created_at >= :start")
                params["start"] = request.time_range.start_time.ToDatetime(UTC)
            if request.time_range.HasField("end_time"):
                clauses.append("h.created_at < :end")
                params["end"] = request.time_range.end_time.ToDatetime(UTC)
        after = decode_token(request.page_token)
        if after is not None:
            clauses.append("(h.created_at, h.id) < (:after_time, :after_id)")
            params["after_time"], params["after_id"] = after
        size = page_size(request.page_size)
        params["limit"] = size + 1
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        async with self.db.read_session() as session:
            rows = list(
                (
                    await session.execute(
                        text(
                            f"SELECT {HedgeRow.COLUMNS} FROM oms.hedge_orders h{where}"
                            " ORDER BY h.created_at DESC, h.id DESC LIMIT :limit"
                        ),
                        params,
                    )
                ).mappings()
            )
            more = len(rows) > size
            rows = rows[:size]
            links = await self._links(session, [str(r["id"]) for r in rows])
        return order_admin_service_pb2.ListHedgeOrdersResponse(
            hedge_orders=[HedgeRow.from_row(r).to_proto(links.get(str(r["id"]), [])) for r in rows],
            next_page_token=(
                encode_token(rows[-1]["created_at"], str(rows[-1]["id"])) if more else ""
            ),
        )

    async def GetHedgeOrder(  # noqa: N802
        self, request: order_admin_service_pb2.GetHedgeOrderRequest, context: Context
    ) -> order_admin_service_pb2.GetHedgeOrderResponse:
        require_roles(READERS)
        async with self.db.read_session() as session:
            row = (
                (
                    await session.execute(
                        text(f"SELECT {HedgeRow.COLUMNS} FROM oms.hedge_orders WHERE id = :id"),
                        {"id": request.hedge_order_id},
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                raise DomainError(
                    ErrorReason.ERROR_REASON_NOT_FOUND,
                    f"hedge order {request.hedge_order_id} not found",
                    metadata={"hedge_order_id": request.hedge_order_id},
                )
            links = await self._links(session, [request.hedge_order_id])
        return order_admin_service_pb2.GetHedgeOrderResponse(
            hedge_order=HedgeRow.from_row(row).to_proto(links.get(request.hedge_order_id, []))
        )

    async def _links(self, session: Any, hedge_ids: list[str]) -> dict[str, list[str]]:
        if not hedge_ids:
            return {}
        rows = await session.execute(
            text(
                "SELECT hedge_order_id::text, order_id::text FROM oms.hedge_order_orders"
                " WHERE hedge_order_id = ANY(CAST(:ids AS uuid[])) ORDER BY order_id"
            ),
            {"ids": hedge_ids},
        )
        links: dict[str, list[str]] = {}
        for hedge_id, order_id in rows:
            links.setdefault(hedge_id, []).append(order_id)
        return links

    async def CancelOrderAsOperator(  # noqa: N802
        self, request: order_admin_service_pb2.CancelOrderAsOperatorRequest, context: Context
    ) -> order_admin_service_pb2.CancelOrderAsOperatorResponse:
        caller = require_roles(ACTORS)
        async with self.db.transaction() as session:
            account = await load_account(session, request.account_id)
            if account is None:
                raise account_not_found(request.account_id)
            async with AccountChange.opened(
                session, account, events.actor_of(caller), self.clock(), caller.request_id
            ) as change:
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
        async with self.db.read_session() as session:
            position = await get_position(session, request.account_id, request.position_id)
        if position is None:
            raise position_not_found(request.position_id)
        intent = closing_intent(
            position,
            client_order_id=request.client_order_id,
            request_fingerprint=fingerprint(request),
            quantity=Decimal(request.quantity) if request.HasField("quantity") else None,
            origin=OrderOrigin.OPERATOR,
            requotable=False,
            status_message=request.reason,
        )
        placed = await self.placement.place(
            intent,
            events.actor_of(caller),
            authorize_internal(request.account_id),
            caller.request_id,
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
            links = await self._links(session, [hedge.id])
        return order_admin_service_pb2.SettleHedgeOrderResponse(
            hedge_order=hedge.to_proto(links.get(hedge.id, []))
        )

    async def ListLpOrderSessions(  # noqa: N802
        self, request: order_admin_service_pb2.ListLpOrderSessionsRequest, context: Context
    ) -> order_admin_service_pb2.ListLpOrderSessionsResponse:
        require_roles(READERS)
        if self.desk is None or self.desk.router is None:
            return order_admin_service_pb2.ListLpOrderSessionsResponse()
        return order_admin_service_pb2.ListLpOrderSessionsResponse(
            sessions=[_session_proto(n) for n in await self.desk.session_numbers()]
        )

    async def ResetLpOrderSession(  # noqa: N802
        self, request: order_admin_service_pb2.ResetLpOrderSessionRequest, context: Context
    ) -> order_admin_service_pb2.ResetLpOrderSessionResponse:
        caller = require_roles(ACTORS)
        numbers = await self._desk().set_session_numbers(
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
    return order_admin_service_pb2.LpOrderSession(
        liquidity_provider_id=numbers.lp,
        sender_comp_id=numbers.sender_comp_id,
        target_comp_id=numbers.target_comp_id,
        logged_on=numbers.logged_on,
        next_sender_msg_seq_num=numbers.next_sender_msg_seq_num,
        next_target_msg_seq_num=numbers.next_target_msg_seq_num,
    )

"""tradingmesh.oms.v1.PositionService: the caller's positions, closing and modifying them.

Thin: ClosePosition is `entry.closing` (a MARKET IOC order on the other side, placed as
PlaceOrder's are), ModifyPosition is `entry.amendment`; reads are valued live (`valuation`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from typing import Any

import grpc.aio

from services.oms.api.lists import position_page
from services.oms.api.ownership import authorize_owner
from services.oms.api.ownership import authorize_trader
from services.oms.api.ownership import owned_account
from services.oms.api.valuation import Valuer
from services.oms.entry.amendment import Amendment
from services.oms.entry.closing import close_position
from services.oms.entry.placement import Placement
from services.oms.feeds.quotes import QuoteBook
from services.oms.store import events
from services.oms.store.changes import position_of
from services.oms.store.reference import load_instruments
from services.platform.db import Database
from services.platform.identity import current_caller
from services.platform.resources import Resources
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.exact import optional_decimal
from tradingmesh.oms.v1 import position_service_pb2
from tradingmesh.oms.v1 import position_service_pb2_grpc

__all__ = ["PositionService"]

Context = grpc.aio.ServicerContext[Any, Any]
_R = ErrorReason


class PositionService(position_service_pb2_grpc.PositionServiceServicer):
    def __init__(
        self,
        resources: Resources,
        placement: Placement,
        quotes: QuoteBook,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.resources = resources
        self.placement = placement
        self.quotes = quotes
        self.valuer = Valuer(quotes, clock)
        self.clock = clock
        self.amendment = Amendment(resources, quotes, placement.risk, clock)

    @property
    def db(self) -> Database:
        return self.resources.db

    async def ListPositions(  # noqa: N802
        self, request: position_service_pb2.ListPositionsRequest, context: Context
    ) -> position_service_pb2.ListPositionsResponse:
        async with self.db.read_session() as session:
            account = await owned_account(session, request.account_id)
            positions, token = await position_page(session, self.valuer, request, account)
        return position_service_pb2.ListPositionsResponse(
            positions=positions, next_page_token=token
        )

    async def GetPosition(  # noqa: N802
        self, request: position_service_pb2.GetPositionRequest, context: Context
    ) -> position_service_pb2.GetPositionResponse:
        async with self.db.read_session() as session:
            account = await owned_account(session, request.account_id)
            position = await position_of(session, account.account_id, request.position_id)
            instruments = await load_instruments(session)
        (valued,) = self.valuer.value(account, [position], instruments)
        return position_service_pb2.GetPositionResponse(position=valued)

    async def ClosePosition(  # noqa: N802
        self, request: position_service_pb2.ClosePositionRequest, context: Context
    ) -> position_service_pb2.ClosePositionResponse:
        caller = current_caller()
        _, placed = await close_position(
            self.db,
            self.placement,
            request,
            events.actor_of(caller),
            authorize_trader(request.account_id),
            caller.request_id,
            check_account=owned_account,
            requested_price=optional_decimal(request, "requested_price"),
        )
        return position_service_pb2.ClosePositionResponse(
            order=placed.order.to_proto(placed.currency)
        )

    async def ModifyPosition(  # noqa: N802
        self, request: position_service_pb2.ModifyPositionRequest, context: Context
    ) -> position_service_pb2.ModifyPositionResponse:
        modified = await self.amendment.modify_position(
            request, current_caller(), authorize_owner(request.account_id)
        )
        (valued,) = self.valuer.value(modified.account, [modified.position], modified.instruments)
        return position_service_pb2.ModifyPositionResponse(position=valued)

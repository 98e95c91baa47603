"""tradingmesh.oms.v1.OmsInternalService: what the risk service's margin watcher needs.

Reached only by other services (the edge token; never routed at Envoy). ForceClosePosition
closes through the same order pipeline and fill path as a client's close (`placement`,
`fills`), with origin STOP_OUT, no pre-trade check and no requote (instant execution runs as
market for it), idempotent on its client_order_id.
"""

from __future__ import annotations

from typing import Any

import grpc.aio

from services.oms.api.ownership import authorize_internal
from services.oms.api.ownership import known_account
from services.oms.api.paging import decode_id_token
from services.oms.api.paging import encode_id_token
from services.oms.api.paging import page_size
from services.oms.entry.closing import close_position
from services.oms.entry.placement import Placement
from services.oms.model import OrderOrigin
from services.oms.store.changes import get_position
from services.oms.store.queries import open_positions_by_account
from services.platform.db import Database
from services.platform.identity import current_caller
from services.platform.resources import Resources
from tradingmesh.oms.v1 import oms_internal_service_pb2 as internal_pb
from tradingmesh.oms.v1 import oms_internal_service_pb2_grpc as internal_grpc

__all__ = ["OmsInternalService"]

Context = grpc.aio.ServicerContext[Any, Any]


class OmsInternalService(internal_grpc.OmsInternalServiceServicer):
    def __init__(self, resources: Resources, placement: Placement) -> None:
        self.resources = resources
        self.placement = placement

    @property
    def db(self) -> Database:
        return self.resources.db

    async def ForceClosePosition(  # noqa: N802
        self, request: internal_pb.ForceClosePositionRequest, context: Context
    ) -> internal_pb.ForceClosePositionResponse:
        caller = current_caller()
        position, placed = await close_position(
            self.db,
            self.placement,
            request,
            request.actor,
            authorize_internal(request.account_id),
            request.margin_event_id or caller.request_id,
            check_account=known_account,
            origin=OrderOrigin.from_proto(request.origin),
            pre_trade_check=False,
            requotable=False,
        )
        after = placed.position
        if after is None or after.id != position.id:
            async with self.db.read_session() as session:
                after = await get_position(session, request.account_id, position.id)
        assert after is not None
        return internal_pb.ForceClosePositionResponse(
            order=placed.order.to_proto(placed.currency),
            position=after.to_proto(placed.currency),
        )

    async def ListOpenPositions(  # noqa: N802
        self, request: internal_pb.ListOpenPositionsRequest, context: Context
    ) -> internal_pb.ListOpenPositionsResponse:
        async with self.db.read_session() as session:
            grouped, more = await open_positions_by_account(
                session,
                decode_id_token(request.page_token),
                list(request.account_ids),
                page_size(request.page_size),
            )
        return internal_pb.ListOpenPositionsResponse(
            accounts=[
                internal_pb.AccountPositions(
                    account_id=account_id, positions=[p.to_proto(c) for p, c in positions]
                )
                for account_id, positions in grouped.items()
            ],
            next_page_token=encode_id_token(list(grouped)[-1]) if more and grouped else "",
        )

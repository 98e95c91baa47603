"""tradingmesh.oms.v1.OmsInternalService: what the risk service's margin watcher needs.

Reached only by other services (the edge token; never routed at Envoy). ForceClosePosition
closes through the same order pipeline and fill path as a client's close (`placement`,
`fills`), with origin STOP_OUT, no pre-trade check and no requote (instant execution runs as
market for it), idempotent on its client_order_id.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import grpc.aio
from sqlalchemy import text

from services.oms.api.ownership import authorize_internal
from services.oms.api.paging import decode_id_token, encode_id_token, page_size
from services.oms.api.positions import closing_intent, position_not_found
from services.oms.entry.fingerprint import fingerprint
from services.oms.entry.placement import Placement
from services.oms.model import OrderOrigin, PositionRow
from services.oms.store.changes import get_position, load_account
from services.platform.access import account_not_found
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
        async with self.db.read_session() as session:
            account = await load_account(session, request.account_id)
            if account is None:
                raise account_not_found(request.account_id)
            position = await get_position(session, account.account_id, request.position_id)
        if position is None:
            raise position_not_found(request.position_id)
        intent = closing_intent(
            position,
            client_order_id=request.client_order_id,
            request_fingerprint=fingerprint(request),
            quantity=Decimal(request.quantity) if request.HasField("quantity") else None,
            origin=OrderOrigin.from_proto(request.origin),
            pre_trade_check=False,
            requotable=False,
        )
        placed = await self.placement.place(
            intent,
            request.actor,
            authorize_internal(request.account_id),
            request.margin_event_id or caller.request_id,
        )
        after = placed.position
        if after is None or after.id != position.id:
            async with self.db.read_session() as session:
                after = await get_position(session, account.account_id, position.id)
        assert after is not None
        return internal_pb.ForceClosePositionResponse(
            order=placed.order.to_proto(placed.currency),
            position=after.to_proto(placed.currency),
        )

    async def ListOpenPositions(  # noqa: N802
        self, request: internal_pb.ListOpenPositionsRequest, context: Context
    ) -> internal_pb.ListOpenPositionsResponse:
        size = page_size(request.page_size)
        after = decode_id_token(request.page_token)
        clauses = ["status = 'OPEN'"]
        params: dict[str, Any] = {"limit": size + 1}
        if after is not None:
            clauses.append("account_id > :after")
            params["after"] = after
        if request.account_ids:
            clauses.append("account_id = ANY(CAST(:accounts AS uuid[]))")
            params["accounts"] = list(request.account_ids)
        where = " AND ".join(clauses)
        async with self.db.read_session() as session:
            accounts = [
                str(a)
                for a in (
                    await session.execute(
                        text(
                            f"SELECT DISTINCT account_id FROM oms.positions WHERE {where}"
                            " ORDER BY account_id LIMIT :limit"
                        ),
                        params,
                    )
                ).scalars()
            ]
            more = len(accounts) > size
            accounts = accounts[:size]
            rows = await session.execute(
                text(
                    f"SELECT {PositionRow.COLUMNS}, (SELECT currency FROM oms.accounts a"
                    " WHERE a.account_id = p.account_id) AS account_currency"
                    " FROM oms.positions p WHERE status = 'OPEN'"
                    " AND account_id = ANY(CAST(:accounts AS uuid[]))"
                    " ORDER BY account_id, open_time, id"
                ),
                {"accounts": accounts},
            )
            grouped: dict[str, list[Any]] = defaultdict(list)
            for row in rows.mappings():
                position = PositionRow.from_row(row)
                currency = str(row["account_currency"]).strip()
                grouped[position.account_id].append(position.to_proto(currency))
        return internal_pb.ListOpenPositionsResponse(
            accounts=[
                internal_pb.AccountPositions(account_id=a, positions=grouped[a]) for a in accounts
            ],
            next_page_token=encode_id_token(accounts[-1]) if more and accounts else "",
        )

"""tradingmesh.oms.v1.PositionService: the caller's positions, closing and modifying them.

ClosePosition places a MARKET order on the other side with position_id set (IOC, origin
CLIENT) through the same pipeline as PlaceOrder (`placement`), so it is idempotent on
client_order_id and stored before the answer. ModifyPosition changes the stop-loss and
take-profit in one transaction with its audit row and a PositionChanged (STOPS_MODIFIED) event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from typing import Any

import grpc.aio

from services.oms.api.lists import position_page
from services.oms.api.ownership import authorize_trader
from services.oms.api.ownership import owned_account
from services.oms.api.valuation import Valuer
from services.oms.domain import positions as domain
from services.oms.domain.validation import check_price
from services.oms.domain.validation import check_stops
from services.oms.entry.closing import close_position
from services.oms.entry.placement import Placement
from services.oms.feeds.quotes import QuoteBook
from services.oms.model import PositionRow
from services.oms.store import events
from services.oms.store.changes import AccountChange
from services.oms.store.changes import concurrent_modification
from services.oms.store.changes import position_of
from services.oms.store.reference import load_instruments
from services.platform.db import Database
from services.platform.errors import DomainError
from services.platform.identity import current_caller
from services.platform.resources import Resources
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.exact import optional_decimal
from tradingmesh.oms.v1 import oms_events_pb2
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
        caller = current_caller()
        now = self.clock()
        async with self.db.transaction() as session:
            account = await owned_account(session, request.account_id)
            async with AccountChange.for_caller(session, account, caller, now) as change:
                position = await position_of(
                    session, account.account_id, request.position_id, lock=True
                )
                if not position.is_open:
                    raise DomainError(
                        _R.ERROR_REASON_INVALID_ORDER_STATE,
                        f"position {position.id} is closed",
                        metadata={"position_id": position.id},
                    )
                if (
                    request.HasField("expected_version")
                    and request.expected_version != position.version
                ):
                    raise concurrent_modification("position", position.id)
                stop_loss = _level(request, "stop_loss", position.stop_loss)
                take_profit = _level(request, "take_profit", position.take_profit)
                instruments = await load_instruments(session)
                if (stop_loss, take_profit) != (position.stop_loss, position.take_profit):
                    self._check_levels(
                        account.group_id, position, stop_loss, take_profit, instruments
                    )
                    modified = await change.change_position(
                        position,
                        "STOPS_MODIFIED",
                        "modified by the client",
                        stop_loss=stop_loss,
                        take_profit=take_profit,
                    )
                    await change.emit(
                        "oms.position.changed",
                        oms_events_pb2.PositionChanged(
                            metadata=change.metadata(modified.version),
                            position=modified.to_proto(account.currency),
                            change_type=oms_events_pb2.POSITION_CHANGE_TYPE_STOPS_MODIFIED,
                        ),
                    )
                    position = modified
        (valued,) = self.valuer.value(account, [position], instruments)
        return position_service_pb2.ModifyPositionResponse(position=valued)

    def _check_levels(
        self,
        group_id: str,
        position: PositionRow,
        stop_loss: Decimal | None,
        take_profit: Decimal | None,
        instruments: dict[str, Any],
    ) -> None:
        instrument = instruments.get(position.symbol)
        if instrument is not None:
            for name, value in (("stop_loss", stop_loss), ("take_profit", take_profit)):
                if value is not None:
                    check_price(value, instrument.rules, name)
        if stop_loss is None and take_profit is None:
            return
        quote = self.quotes.live(group_id, position.symbol)
        if quote is None:
            raise DomainError(
                _R.ERROR_REASON_PRICE_UNAVAILABLE,
                f"no live price for {position.symbol} to check the levels against",
                metadata={"symbol": position.symbol},
            )
        reference = domain.close_price(position.side, quote.bid, quote.ask)
        check_stops(position.side, reference, stop_loss, take_profit)


def _level(request: Any, name: str, current: Decimal | None) -> Decimal | None:
    if request.HasField(name):
        return Decimal(getattr(request, name))
    if getattr(request, f"clear_{name}"):
        return None
    return current

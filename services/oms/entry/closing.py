"""A position closed by a MARKET IOC order on its other side, through the same pipeline as any
order (`placement`): the client's ClosePosition, the risk service's ForceClosePosition (a
stop-out), an operator's ClosePositionAsOperator, and the trigger engine's stop-loss and
take-profit. Idempotent on client_order_id and stored before the answer, as PlaceOrder is.
"""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.entry.fingerprint import fingerprint
from services.oms.entry.placement import Authorize
from services.oms.entry.placement import OrderIntent
from services.oms.entry.placement import Placed
from services.oms.entry.placement import Placement
from services.oms.model import Account
from services.oms.model import OrderType
from services.oms.model import PositionRow
from services.oms.model import TimeInForce
from services.oms.store.changes import position_of
from services.platform.db import Database
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.exact import optional_decimal

__all__ = ["close_position", "closing_intent"]


async def close_position(
    db: Database,
    placement: Placement,
    request: Any,
    actor: Actor,
    authorize: Authorize,
    correlation_id: str,
    *,
    check_account: Callable[[AsyncSession, str], Awaitable[Account]] | None = None,
    **options: Any,
) -> tuple[PositionRow, Placed]:
    """Places the order that closes a position as a close request asks (its account_id,
    position_id, client_order_id, fingerprint and quantity, none: in full), with `options`
    (`closing_intent`); the account checked first by `check_account` (`owned_account`,
    `known_account`) when given. The position as read before, and the placed order."""
    async with db.read_session() as session:
        if check_account is not None:
            await check_account(session, request.account_id)
        position = await position_of(session, request.account_id, request.position_id)
    intent = closing_intent(
        position,
        client_order_id=request.client_order_id,
        request_fingerprint=fingerprint(request),
        quantity=optional_decimal(request, "quantity"),
        **options,
    )
    return position, await placement.place(intent, actor, authorize, correlation_id)


def closing_intent(
    position: PositionRow,
    *,
    client_order_id: str,
    request_fingerprint: str,
    quantity: Decimal | None,
    requested_price: Decimal | None = None,
    **options: Any,
) -> OrderIntent:
    """The MARKET IOC order that closes `position` (in full when quantity is None)."""
    return OrderIntent(
        account_id=position.account_id,
        client_order_id=client_order_id,
        fingerprint=request_fingerprint,
        symbol=position.symbol,
        side=position.side.opposite,
        type=OrderType.MARKET,
        time_in_force=TimeInForce.IOC,
        quantity=quantity,
        requested_price=requested_price,
        position_id=position.id,
        closing=True,
        **options,
    )

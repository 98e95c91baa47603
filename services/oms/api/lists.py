"""From a list request to a page of the contract's messages, one way for the client's RPCs
(ListOrders, ListTrades, ListPositions: the caller's own account) and the staff's
(ListAllOrders, ListAllTrades, ListAllPositions: any account, or the one they name), which
share their filters' names."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.api.valuation import Valuer
from services.oms.domain.state import OrderStatus
from services.oms.model import Account
from services.oms.store.changes import load_accounts
from services.oms.store.queries import list_orders
from services.oms.store.queries import list_positions
from services.oms.store.queries import list_trades
from services.oms.store.reference import load_instruments
from tradingmesh.common.v1.types_pb2 import TimeRange
from tradingmesh.oms.v1 import oms_pb2

__all__ = ["order_page", "paging", "position_page", "time_range_of", "trade_page"]


def time_range_of(request: Any) -> TimeRange | None:
    return request.time_range if request.HasField("time_range") else None


def paging(request: Any) -> dict[str, Any]:
    """A list request's page size and token, as the store's list reads take them."""
    return {"requested_size": request.page_size, "token": request.page_token}


async def order_page(
    session: AsyncSession, request: Any, account_id: str | None, **filters: Any
) -> tuple[list[oms_pb2.Order], str]:
    """The orders a request asks for (statuses, open_only, symbol, time_range and its page),
    with `filters` besides, and the next page's token."""
    page = await list_orders(
        session,
        account_id=account_id,
        statuses=[OrderStatus.from_proto(s).value for s in request.statuses],
        open_only=request.open_only,
        symbol=request.symbol,
        time_range=time_range_of(request),
        **paging(request),
        **filters,
    )
    return [order.to_proto(currency) for order, currency in page.items], page.next_page_token


async def trade_page(
    session: AsyncSession, request: Any, account_id: str | None, **filters: Any
) -> tuple[list[oms_pb2.Trade], str]:
    """The trades a request asks for (symbol, time_range and its page), with `filters` besides,
    and the next page's token."""
    page = await list_trades(
        session,
        account_id=account_id,
        symbol=request.symbol,
        time_range=time_range_of(request),
        **paging(request),
        **filters,
    )
    return [trade.to_proto() for trade, _ in page.items], page.next_page_token


async def position_page(
    session: AsyncSession, valuer: Valuer, request: Any, owner: Account | None
) -> tuple[list[oms_pb2.Position], str]:
    """The open positions a request asks for (symbol and its page), valued, and the next page's
    token: of `owner` (the caller's account), or with None of any account or the one the
    request names."""
    page = await list_positions(
        session,
        account_id=(request.account_id or None) if owner is None else owner.account_id,
        symbol=request.symbol,
        **paging(request),
    )
    instruments = await load_instruments(session)
    accounts = (
        {owner.account_id: owner}
        if owner is not None
        else await load_accounts(session, {p.account_id for p, _ in page.items})
    )
    return valuer.value_page(accounts, page.items, instruments), page.next_page_token

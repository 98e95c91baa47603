"""The OMS's list reads (orders, trades, positions), newest first with keyset page tokens.

Shared by the client RPCs (one account) and the staff RPCs (any account), so both page and
filter the same way. Each row comes with its account's currency, which formats its amounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Generic, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.api.paging import decode_token, encode_token, page_size
from services.oms.model import OrderRow, PositionRow, TradeRow
from services.oms.store.changes import OPEN_STATUS_NAMES
from tradingmesh.common.v1.types_pb2 import TimeRange

__all__ = ["Page", "list_orders", "list_positions", "list_trades"]

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[tuple[T, str]]  # (row, account currency)
    next_page_token: str


def _prefixed(columns: str, alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


def _time_range(
    column: str, time_range: TimeRange | None, clauses: list[str], params: dict[str, Any]
) -> None:
    if time_range is None:
        return
    if time_range.HasField("start_time"):
        clauses.append(f"{column} >= :range_start")
        params["range_start"] = time_range.start_time.ToDatetime(UTC)
    if time_range.HasField("end_time"):
        clauses.append(f"{column} < :range_end")
        params["range_end"] = time_range.end_time.ToDatetime(UTC)


async def _page(
    session: AsyncSession,
    *,
    select: str,
    time_column: str,
    id_column: str,
    clauses: list[str],
    params: dict[str, Any],
    requested_size: int,
    token: str,
) -> list[Any]:
    after = decode_token(token)
    if after is not None:
        clauses.append(f"({time_column}, {id_column}) < (:after_time, :after_id)")
        params["after_time"], params["after_id"] = after
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    params["limit"] = page_size(requested_size) + 1
    rows = await session.execute(
        text(f"{select}{where} ORDER BY {time_column} DESC, {id_column} DESC LIMIT :limit"),
        params,
    )
    return list(rows.mappings())


def _next(rows: list[Any], size: int, time_key: str) -> tuple[list[Any], str]:
    if len(rows) <= size:
        return rows, ""
    rows = rows[:size]
    last = rows[-1]
    return rows, encode_token(last[time_key], str(last["id"]))


async def list_orders(
    session: AsyncSession,
    *,
    account_id: str | None = None,
    statuses: Sequence[str] = (),
    open_only: bool = False,
    symbol: str = "",
    time_range: TimeRange | None = None,
    client_order_id: str = "",
    origins: Sequence[str] = (),
    requested_size: int = 0,
    token: str = "",
) -> Page[OrderRow]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if account_id is not None:
        clauses.append("o.account_id = :account_id")
        params["account_id"] = account_id
    if open_only:
        statuses = OPEN_STATUS_NAMES
    if statuses:
        clauses.append("o.status = ANY(:statuses)")
        params["statuses"] = list(statuses)
    if symbol:
        clauses.append("o.symbol = :symbol")
        params["symbol"] = symbol
    if client_order_id:
        clauses.append("o.client_order_id = :client_order_id")
        params["client_order_id"] = client_order_id
    if origins:
        clauses.append("o.origin = ANY(:origins)")
        params["origins"] = list(origins)
    _time_range("o.created_at", time_range, clauses, params)
    rows = await _page(
        session,
        select=(
            f"SELECT {_prefixed(OrderRow.COLUMNS, 'o')}, a.currency AS account_currency"
            " FROM oms.orders o JOIN oms.accounts a ON a.account_id = o.account_id"
        ),
        time_column="o.created_at",
        id_column="o.id",
        clauses=clauses,
        params=params,
        requested_size=requested_size,
        token=token,
    )
    rows, next_token = _next(rows, page_size(requested_size), "created_at")
    return Page(
        [(OrderRow.from_row(r), str(r["account_currency"]).strip()) for r in rows], next_token
    )


async def list_trades(
    session: AsyncSession,
    *,
    account_id: str | None = None,
    symbol: str = "",
    order_id: str = "",
    position_id: str = "",
    hedge_order_id: str = "",
    time_range: TimeRange | None = None,
    requested_size: int = 0,
    token: str = "",
) -> Page[TradeRow]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for column, value in (
        ("account_id", account_id or ""),
        ("symbol", symbol),
        ("order_id", order_id),
        ("position_id", position_id),
        ("hedge_order_id", hedge_order_id),
    ):
        if value:
            clauses.append(f"t.{column} = :{column}")
            params[column] = value
    _time_range("t.fill_time", time_range, clauses, params)
    rows = await _page(
        session,
        select=f"SELECT {_prefixed(TradeRow.COLUMNS, 't')} FROM oms.trades t",
        time_column="t.fill_time",
        id_column="t.id",
        clauses=clauses,
        params=params,
        requested_size=requested_size,
        token=token,
    )
    rows, next_token = _next(rows, page_size(requested_size), "fill_time")
    return Page([(TradeRow.from_row(r), str(r["currency"]).strip()) for r in rows], next_token)


async def list_positions(
    session: AsyncSession,
    *,
    account_id: str | None = None,
    symbol: str = "",
    open_only: bool = True,
    requested_size: int = 0,
    token: str = "",
) -> Page[PositionRow]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if account_id is not None:
        clauses.append("p.account_id = :account_id")
        params["account_id"] = account_id
    if open_only:
        clauses.append("p.status = 'OPEN'")
    if symbol:
        clauses.append("p.symbol = :symbol")
        params["symbol"] = symbol
    rows = await _page(
        session,
        select=(
            f"SELECT {_prefixed(PositionRow.COLUMNS, 'p')}, a.currency AS account_currency"
            " FROM oms.positions p JOIN oms.accounts a ON a.account_id = p.account_id"
        ),
        time_column="p.open_time",
        id_column="p.id",
        clauses=clauses,
        params=params,
        requested_size=requested_size,
        token=token,
    )
    rows, next_token = _next(rows, page_size(requested_size), "open_time")
    return Page(
        [(PositionRow.from_row(r), str(r["account_currency"]).strip()) for r in rows],
        next_token,
    )

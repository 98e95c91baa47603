"""The OMS's list reads (orders, trades, positions), newest first with keyset page tokens.

Shared by the client RPCs (one account) and the staff RPCs (any account), so both page and
filter the same way. Each row comes with its account's currency, which formats its amounts.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import Generic
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.api.paging import decode_token
from services.oms.api.paging import encode_token
from services.oms.api.paging import page_size
from services.oms.model import OrderRow
from services.oms.model import PositionRow
from services.oms.model import TradeRow
from services.oms.store.changes import OPEN_STATUS_NAMES
from services.oms.store.rows import all_rows
from services.oms.stp.hedges import HedgeRow
from services.platform import sql
from tradingmesh.common.v1.types_pb2 import TimeRange

__all__ = [
    "Page",
    "expiring_orders",
    "hedge_order_links",
    "list_hedge_orders",
    "list_orders",
    "list_positions",
    "list_trades",
    "open_positions_by_account",
    "positions_with_stops",
    "working_trigger_orders",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[tuple[T, str]]  # (row, account currency)
    next_page_token: str


Filter = tuple[str, str, object]  # as `platform.sql.where` takes them; a value None: not given


def _prefixed(columns: str, alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


def _given(value: str | Sequence[str] | None) -> object:
    """A filter's value, None when the request leaves it empty ("" or no items)."""
    return value or None


def _time_range(column: str, time_range: TimeRange | None) -> list[Filter]:
    filters: list[Filter] = []
    if time_range is not None and time_range.HasField("start_time"):
        start = time_range.start_time.ToDatetime(UTC)
        filters.append((f"{column} >= :range_start", "range_start", start))
    if time_range is not None and time_range.HasField("end_time"):
        filters.append((f"{column} < :range_end", "range_end", time_range.end_time.ToDatetime(UTC)))
    return filters


async def _page(
    session: AsyncSession,
    build: Callable[[Mapping[Any, Any]], tuple[T, str]],
    *,
    select: str,
    time_column: str,
    id_column: str,
    filters: Sequence[Filter],
    requested_size: int,
    token: str,
) -> Page[T]:
    """One page of `select` newest first by (time_column, id_column), after `token`'s item:
    each row as `build` makes it (the row and its account currency)."""
    after = decode_token(token)
    keyset = f"({time_column}, {id_column}) < (:after_time, :after_id)"
    where, params = sql.where(*filters, (keyset, "after_time", None if after is None else after[0]))
    if after is not None:
        params["after_id"] = after[1]
    size = page_size(requested_size)
    params["limit"] = size + 1
    rows = list(
        (
            await session.execute(
                text(f"{select}{where} ORDER BY {time_column} DESC, {id_column} DESC LIMIT :limit"),
                params,
            )
        ).mappings()
    )
    if len(rows) <= size:
        return Page([build(row) for row in rows], "")
    rows = rows[:size]
    time_key = time_column.split(".")[-1]
    return Page([build(row) for row in rows], encode_token(rows[-1][time_key], str(rows[-1]["id"])))


def _with_account_currency(
    from_row: Callable[[Mapping[Any, Any]], T],
) -> Callable[[Mapping[Any, Any]], tuple[T, str]]:
    return lambda row: (from_row(row), str(row["account_currency"]).strip())


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
    return await _page(
        session,
        _with_account_currency(OrderRow.from_row),
        select=(
            f"SELECT {_prefixed(OrderRow.COLUMNS, 'o')}, a.currency AS account_currency"
            " FROM oms.orders o JOIN oms.accounts a ON a.account_id = o.account_id"
        ),
        time_column="o.created_at",
        id_column="o.id",
        filters=[
            ("o.account_id = :account_id", "account_id", account_id),
            (
                "o.status = ANY(:statuses)",
                "statuses",
                _given(OPEN_STATUS_NAMES if open_only else statuses),
            ),
            ("o.symbol = :symbol", "symbol", _given(symbol)),
            ("o.client_order_id = :client_order_id", "client_order_id", _given(client_order_id)),
            ("o.origin = ANY(:origins)", "origins", _given(origins)),
            *_time_range("o.created_at", time_range),
        ],
        requested_size=requested_size,
        token=token,
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
    given = {
        "account_id": account_id,
        "symbol": symbol,
        "order_id": order_id,
        "position_id": position_id,
        "hedge_order_id": hedge_order_id,
    }
    return await _page(
        session,
        lambda row: (TradeRow.from_row(row), str(row["currency"]).strip()),
        select=f"SELECT {_prefixed(TradeRow.COLUMNS, 't')} FROM oms.trades t",
        time_column="t.fill_time",
        id_column="t.id",
        filters=[
            *(
                (f"t.{column} = :{column}", column, _given(value))
                for column, value in given.items()
            ),
            *_time_range("t.fill_time", time_range),
        ],
        requested_size=requested_size,
        token=token,
    )


async def list_positions(
    session: AsyncSession,
    *,
    account_id: str | None = None,
    symbol: str = "",
    open_only: bool = True,
    requested_size: int = 0,
    token: str = "",
) -> Page[PositionRow]:
    return await _page(
        session,
        _with_account_currency(PositionRow.from_row),
        select=(
            f"SELECT {_prefixed(PositionRow.COLUMNS, 'p')}, a.currency AS account_currency"
            " FROM oms.positions p JOIN oms.accounts a ON a.account_id = p.account_id"
        ),
        time_column="p.open_time",
        id_column="p.id",
        filters=[
            ("p.account_id = :account_id", "account_id", account_id),
            # A condition with no parameter (the literal lets the partial index serve): its
            # value only says whether it applies.
            ("p.status = 'OPEN'", "open_only", open_only or None),
            ("p.symbol = :symbol", "symbol", _given(symbol)),
        ],
        requested_size=requested_size,
        token=token,
    )


async def list_hedge_orders(
    session: AsyncSession,
    *,
    symbol: str = "",
    liquidity_provider_id: str = "",
    statuses: Sequence[str] = (),
    order_id: str = "",
    time_range: TimeRange | None = None,
    requested_size: int = 0,
    token: str = "",
) -> Page[HedgeRow]:
    """Hedge orders, newest first (the currency of a page item is empty: a hedge order is the
    broker's, in no account)."""
    return await _page(
        session,
        lambda row: (HedgeRow.from_row(row), ""),
        select=f"SELECT {HedgeRow.COLUMNS} FROM oms.hedge_orders h",
        time_column="h.created_at",
        id_column="h.id",
        filters=[
            ("h.symbol = :symbol", "symbol", _given(symbol)),
            ("h.liquidity_provider_id = :lp", "lp", _given(liquidity_provider_id)),
            ("h.status = ANY(:statuses)", "statuses", _given(statuses)),
            (
                "EXISTS (SELECT 1 FROM oms.hedge_order_orders l"
                " WHERE l.hedge_order_id = h.id AND l.order_id = :order_id)",
                "order_id",
                _given(order_id),
            ),
            *_time_range("h.created_at", time_range),
        ],
        requested_size=requested_size,
        token=token,
    )


async def hedge_order_links(
    session: AsyncSession, hedge_ids: Sequence[str]
) -> dict[str, list[str]]:
    """The client orders of each of the hedge orders, by hedge order id (order ids in order)."""
    if not hedge_ids:
        return {}
    rows = await session.execute(
        text(
            "SELECT hedge_order_id::text, order_id::text FROM oms.hedge_order_orders"
            " WHERE hedge_order_id = ANY(CAST(:ids AS uuid[])) ORDER BY order_id"
        ),
        {"ids": list(hedge_ids)},
    )
    links: dict[str, list[str]] = {}
    for hedge_id, linked in rows:
        links.setdefault(hedge_id, []).append(linked)
    return links


async def open_positions_by_account(
    session: AsyncSession, after: str | None, account_ids: Sequence[str], size: int
) -> tuple[dict[str, list[tuple[PositionRow, str]]], bool]:
    """Up to `size` accounts with open positions, in id order after `after` (among
    `account_ids` if any), each with its open positions (oldest first) and their currency;
    and whether more accounts follow."""
    where, params = sql.where(
        ("status = 'OPEN'", "open", True),  # no parameter: the literal, as the index has it
        ("account_id > :after", "after", after),
        ("account_id = ANY(CAST(:accounts AS uuid[]))", "accounts", account_ids or None),
    )
    accounts = [
        str(a)
        for a in (
            await session.execute(
                text(
                    f"SELECT DISTINCT account_id FROM oms.positions{where}"
                    " ORDER BY account_id LIMIT :limit"
                ),
                {**params, "limit": size + 1},
            )
        ).scalars()
    ]
    more = len(accounts) > size
    rows = await session.execute(
        text(
            f"SELECT {PositionRow.COLUMNS}, (SELECT currency FROM oms.accounts a"
            " WHERE a.account_id = p.account_id) AS account_currency"
            " FROM oms.positions p WHERE status = 'OPEN'"
            " AND account_id = ANY(CAST(:accounts AS uuid[]))"
            " ORDER BY account_id, open_time, id"
        ),
        {"accounts": accounts[:size]},
    )
    grouped: dict[str, list[tuple[PositionRow, str]]] = {a: [] for a in accounts[:size]}
    build = _with_account_currency(PositionRow.from_row)
    for row in rows.mappings():
        position, currency = build(row)
        grouped[position.account_id].append((position, currency))
    return grouped, more


async def expiring_orders(
    session: AsyncSession, now: datetime, limit: int
) -> list[tuple[str, str]]:
    """(account id, order id) of open orders whose `expire_time` has passed, the earliest
    first: the expiry sweeper's batch."""
    rows = await session.execute(
        text(
            "SELECT account_id::text, id::text FROM oms.orders"
            " WHERE expire_time <= :now AND status = ANY(:open)"
            " ORDER BY expire_time LIMIT :batch"
        ),
        {"now": now, "open": list(OPEN_STATUS_NAMES), "batch": limit},
    )
    return [(str(account_id), str(order_id)) for account_id, order_id in rows.all()]


async def working_trigger_orders(session: AsyncSession) -> list[OrderRow]:
    """Limit, stop and stop-limit orders WORKING or PARTIALLY_FILLED: what the trigger engine
    indexes at start (it decides which of them the price can trigger)."""
    return await all_rows(
        session,
        f"SELECT {OrderRow.COLUMNS} FROM oms.orders"
        " WHERE status IN ('WORKING', 'PARTIALLY_FILLED')"
        " AND type IN ('LIMIT', 'STOP', 'STOP_LIMIT')",
        OrderRow.from_row,
    )


async def positions_with_stops(session: AsyncSession) -> list[PositionRow]:
    """Open positions with a stop-loss or a take-profit (the trigger engine's other index)."""
    return await all_rows(
        session,
        f"SELECT {PositionRow.COLUMNS} FROM oms.positions WHERE status = 'OPEN'"
        " AND (stop_loss IS NOT NULL OR take_profit IS NOT NULL)",
        PositionRow.from_row,
    )

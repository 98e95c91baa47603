"""The SQL of hedge orders (`stp/hedges.py`): the rows of `oms.hedge_orders`, their client
orders (`oms.hedge_order_orders`, with each group's markup) and fills (`oms.hedge_fills`,
unique per ExecID), an update with its event in the outbox, the locks an allocation takes,
and the STP orders a restart finds in no hedge order. Functions taking the caller's session.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.domain.state import OPEN_STATUSES
from services.oms.model import OrderRow
from services.oms.store.rows import all_rows
from services.oms.store.rows import first_row
from services.oms.store.rows import for_update
from services.oms.stp.hedges import SCHEMA
from services.oms.stp.hedges import HedgeRow
from services.oms.stp.hedges import HedgeStatus
from services.oms.stp.hedges import hedge_event
from services.oms.stp.lp_orders import ExecutionReport
from services.platform.outbox import add_event
from tradingmesh.common.v1.types_pb2 import Actor

__all__ = [
    "HedgeLink",
    "WaitingOrder",
    "get_hedge",
    "hedged_order_ids",
    "hedges_to_allocate",
    "in_flight",
    "in_flight_order_ids",
    "insert_hedge",
    "links_of",
    "lock_accounts",
    "lock_orders",
    "new_hedges_among",
    "new_hedges_before",
    "open_hedges",
    "publish",
    "record_fill",
    "unhedged_stp_limits",
    "unhedged_stp_orders",
    "update_hedge",
]


@dataclass(frozen=True)
class HedgeLink:
    """A client order of a hedge's window, with its group's markup when the hedge was made."""

    order_id: str
    account_id: str
    bid_markup: Decimal
    ask_markup: Decimal


_INSERT_HEDGE: Final = text(
    f"INSERT INTO oms.hedge_orders ({HedgeRow.COLUMNS}) VALUES ("
    + ", ".join(f":{c.strip()}" for c in HedgeRow.COLUMNS.split(","))
    + ")"
)
_MUTABLE: Final = (
    "status",
    "filled_quantity",
    "average_price",
    "lp_order_id",
    "status_reason",
    "status_message",
    "updated_at",
    "version",
)
_UPDATE_HEDGE: Final = text(
    "UPDATE oms.hedge_orders SET "
    + ", ".join(f"{c} = :{c}" for c in _MUTABLE)
    + " WHERE id = :id AND version = :expected_version"
)
_OPEN_ORDERS: Final = sorted(s.value for s in OPEN_STATUSES)


async def insert_hedge(session: AsyncSession, hedge: HedgeRow, links: Sequence[HedgeLink]) -> None:
    await session.execute(_INSERT_HEDGE, hedge.params())
    await session.execute(
        text(
            "INSERT INTO oms.hedge_order_orders (hedge_order_id, order_id, bid_markup, ask_markup)"
            " VALUES (:hedge_order_id, :order_id, :bid_markup, :ask_markup)"
        ),
        [
            {
                "hedge_order_id": hedge.id,
                "order_id": link.order_id,
                "bid_markup": link.bid_markup,
                "ask_markup": link.ask_markup,
            }
            for link in links
        ],
    )


async def get_hedge(session: AsyncSession, hedge_id: str, *, lock: bool = False) -> HedgeRow | None:
    return await first_row(
        session,
        f"SELECT {HedgeRow.COLUMNS} FROM oms.hedge_orders WHERE id = :id{for_update(lock)}",
        {"id": hedge_id},
        HedgeRow.from_row,
    )


async def open_hedges(session: AsyncSession) -> list[HedgeRow]:
    """Hedge orders at their provider (SENT, WORKING, PARTIALLY_FILLED), oldest first."""
    return await all_rows(
        session,
        f"SELECT {HedgeRow.COLUMNS} FROM oms.hedge_orders"
        " WHERE status IN ('SENT', 'WORKING', 'PARTIALLY_FILLED') ORDER BY created_at",
        HedgeRow.from_row,
    )


async def update_hedge(session: AsyncSession, hedge: HedgeRow, expected_version: int) -> None:
    params = hedge.params()
    params["expected_version"] = expected_version
    written = await session.execute(_UPDATE_HEDGE, params)
    if written.rowcount != 1:  # type: ignore[attr-defined]
        raise RuntimeError(f"hedge order {hedge.id} changed meanwhile")


async def record_fill(session: AsyncSession, hedge_id: str, report: ExecutionReport) -> bool:
    """Stores a fill once per ExecID; False when it was stored before (a resent report)."""
    assert report.last_price is not None
    inserted = (
        await session.execute(
            text(
                "INSERT INTO oms.hedge_fills (id, hedge_order_id, lp_execution_id, quantity,"
                " price, fill_time) VALUES (:id, :hedge, :execution, :quantity, :price, :time)"
                " ON CONFLICT (hedge_order_id, lp_execution_id) DO NOTHING RETURNING id"
            ),
            {
                "id": str(uuid.uuid4()),
                "hedge": hedge_id,
                "execution": report.execution_id[:128],
                "quantity": report.last_quantity,
                "price": report.last_price,
                "time": report.received_at,
            },
        )
    ).first()
    return inserted is not None


async def publish(
    session: AsyncSession,
    before: HedgeRow,
    after: HedgeRow,
    actor: Actor,
    report: ExecutionReport | None = None,
) -> None:
    """Writes `after` and its event (if any) to the outbox, in the session's transaction."""
    await update_hedge(session, after, before.version)
    order_ids = [link.order_id for link in await links_of(session, after.id)]
    found = hedge_event(before, after, order_ids, actor, report)
    if found is not None:
        subject, message = found
        await add_event(session, SCHEMA, subject, message)


async def links_of(session: AsyncSession, hedge_id: str) -> list[HedgeLink]:
    """The hedge's client orders in arrival order (created_at, then id)."""
    rows = await session.execute(
        text(
            "SELECT l.order_id::text, o.account_id::text, l.bid_markup, l.ask_markup"
            " FROM oms.hedge_order_orders l JOIN oms.orders o ON o.id = l.order_id"
            " WHERE l.hedge_order_id = :hedge ORDER BY o.created_at, o.id"
        ),
        {"hedge": hedge_id},
    )
    return [HedgeLink(r[0], r[1], Decimal(r[2]), Decimal(r[3])) for r in rows]


async def lock_accounts(session: AsyncSession, account_ids: Sequence[str]) -> None:
    """Locks the accounts' rows in id order: every change of several accounts takes them in
    this order, each other change takes one, so no two changes wait on each other in a
    circle."""
    await session.execute(
        text(
            "SELECT account_id FROM oms.accounts WHERE account_id = ANY(:ids)"
            " ORDER BY account_id FOR UPDATE"
        ),
        {"ids": sorted(set(account_ids))},
    )


async def lock_orders(session: AsyncSession, order_ids: Sequence[str]) -> dict[str, OrderRow]:
    """The orders' rows, locked (after their accounts'), by id."""
    rows = await session.execute(
        text(
            f"SELECT {OrderRow.COLUMNS} FROM oms.orders WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"
        ),
        {"ids": list(order_ids)},
    )
    return {str(r["id"]): OrderRow.from_row(r) for r in rows.mappings()}


async def hedged_order_ids(session: AsyncSession, order_ids: Sequence[str]) -> set[str]:
    """Those of `order_ids` already in a hedge order."""
    rows = await session.execute(
        text("SELECT order_id::text FROM oms.hedge_order_orders WHERE order_id = ANY(:ids)"),
        {"ids": list(order_ids)},
    )
    return {r[0] for r in rows}


async def in_flight(session: AsyncSession, order_id: str) -> bool:
    """Whether the order is in a hedge order the provider has not finished: a cancel then
    waits for the hedge's outcome (PENDING_CANCEL, ADR 0007)."""
    found = await session.scalar(
        text(
            "SELECT EXISTS (SELECT 1 FROM oms.hedge_order_orders l"
            " JOIN oms.hedge_orders h ON h.id = l.hedge_order_id"
            " WHERE l.order_id = :order_id AND h.status = ANY(:open))"
        ),
        {"order_id": order_id, "open": [s.value for s in HedgeStatus if not s.terminal]},
    )
    return bool(found)


async def in_flight_order_ids(session: AsyncSession, order_ids: Sequence[str]) -> set[str]:
    """Those of `order_ids` in a hedge order the provider has not finished."""
    rows = await session.execute(
        text(
            "SELECT l.order_id::text FROM oms.hedge_order_orders l"
            " JOIN oms.hedge_orders h ON h.id = l.hedge_order_id"
            " WHERE l.order_id = ANY(:ids) AND h.status = ANY(:open)"
        ),
        {"ids": list(order_ids), "open": [s.value for s in HedgeStatus if not s.terminal]},
    )
    return {r[0] for r in rows}


async def hedges_to_allocate(session: AsyncSession) -> list[str]:
    """Ended hedge orders with a client order still open that the hedge booked no trade for:
    the allocation did not commit (the process stopped between the two). A window's allocation
    ends every order of it; a limit order's may leave it working (GTC, DAY): then a trade the
    hedge booked says it ran, and a hedge that filled nothing is left out unless the order is
    being cancelled (allocating it again would change nothing)."""
    rows = await session.execute(
        text(
            "SELECT h.id::text FROM oms.hedge_orders h WHERE h.status = ANY(:ended) AND EXISTS"
            " (SELECT 1 FROM oms.hedge_order_orders l JOIN oms.orders o ON o.id = l.order_id"
            "  WHERE l.hedge_order_id = h.id AND o.status = ANY(:open) AND NOT EXISTS"
            "  (SELECT 1 FROM oms.trades t WHERE t.order_id = o.id AND t.hedge_order_id = h.id)"
            "  AND NOT (h.filled_quantity = 0 AND o.execution_mode = 'STP'"
            "   AND o.type IN ('LIMIT', 'STOP_LIMIT') AND o.time_in_force IN ('GTC', 'DAY')"
            "   AND o.status IN ('WORKING', 'PARTIALLY_FILLED')))"
            " ORDER BY h.created_at"
        ),
        {"ended": ["FILLED", "CANCELLED", "REJECTED"], "open": _OPEN_ORDERS},
    )
    return [r[0] for r in rows]


async def new_hedges_before(
    session: AsyncSession, lp: str | None, before: datetime
) -> list[HedgeRow]:
    """Hedge orders still NEW (never known to be sent) created before `before`, of `lp` (None:
    of any provider), oldest first."""
    clause = "" if lp is None else " AND liquidity_provider_id = :lp"
    return await all_rows(
        session,
        f"SELECT {HedgeRow.COLUMNS} FROM oms.hedge_orders"
        f" WHERE status = 'NEW' AND created_at < :before{clause} ORDER BY created_at",
        HedgeRow.from_row,
        {"before": before, "lp": lp},
    )


async def new_hedges_among(session: AsyncSession, hedge_ids: Collection[str]) -> list[HedgeRow]:
    """Those of `hedge_ids` that are hedge orders still NEW, oldest first."""
    if not hedge_ids:
        return []
    return await all_rows(
        session,
        f"SELECT {HedgeRow.COLUMNS} FROM oms.hedge_orders"
        " WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'NEW' ORDER BY created_at",
        HedgeRow.from_row,
        {"ids": list(hedge_ids)},
    )


@dataclass(frozen=True)
class WaitingOrder:
    order_id: str
    account_id: str
    group_id: str
    symbol: str


async def unhedged_stp_orders(session: AsyncSession) -> list[WaitingOrder]:
    """Open STP market orders in no hedge order: accepted, but their window never closed (the
    process stopped first). Oldest first."""
    rows = await session.execute(
        text(
            "SELECT o.id::text, o.account_id::text, a.group_id::text, o.symbol FROM oms.orders o"
            " JOIN oms.accounts a ON a.account_id = o.account_id"
            " WHERE o.execution_mode = 'STP' AND o.type = 'MARKET' AND o.status = 'WORKING'"
            " AND NOT EXISTS (SELECT 1 FROM oms.hedge_order_orders l WHERE l.order_id = o.id)"
            " ORDER BY o.created_at, o.id"
        )
    )
    return [WaitingOrder(r[0], r[1], r[2], r[3]) for r in rows]


async def unhedged_stp_limits(session: AsyncSession) -> list[WaitingOrder]:
    """Open STP limit orders that must be tried at once and are in no hedge order: IOC and FOK
    limit orders (and triggered stop-limits) accepted, or triggered, just before a restart.
    GTC and DAY ones need no list: the trigger engine loads them. Oldest first."""
    rows = await session.execute(
        text(
            "SELECT o.id::text, o.account_id::text, a.group_id::text, o.symbol FROM oms.orders o"
            " JOIN oms.accounts a ON a.account_id = o.account_id"
            " WHERE o.execution_mode = 'STP' AND o.status = 'WORKING'"
            " AND o.time_in_force IN ('IOC', 'FOK')"
            " AND (o.type = 'LIMIT' OR (o.type = 'STOP_LIMIT' AND o.trigger_time IS NOT NULL))"
            " AND NOT EXISTS (SELECT 1 FROM oms.hedge_order_orders l WHERE l.order_id = o.id)"
            " ORDER BY o.created_at, o.id"
        )
    )
    return [WaitingOrder(r[0], r[1], r[2], r[3]) for r in rows]

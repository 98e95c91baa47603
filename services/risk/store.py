"""The risk schema (migration 0009): loading the working set, and the writes of copies, limits,
margin states and events, and stop-out attempts. Each function runs in the caller's session and
transaction; none commits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from datetime import datetime
from decimal import Decimal
from typing import Any
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform import schedule
from services.platform.sql import insert_rows
from services.platform.sql import where
from services.risk.episodes import Episode
from services.risk.model import Account
from services.risk.model import AccountLimits
from services.risk.model import Group
from services.risk.model import GroupInstrument
from services.risk.model import Instrument
from services.risk.model import Position
from services.risk.model import PositionMode
from services.risk.model import Side
from services.risk.model import UnbookedTrade
from services.risk.state import RiskState
from tradingmesh.trading.margin import RiskStatus

__all__ = [
    "ACCOUNT_COLUMNS",
    "SNAPSHOT_COLUMNS",
    "ExecutedTrade",
    "due_snapshot_days",
    "load_state",
    "record_snapshots_due",
    "save_account",
    "save_balance",
    "save_booking",
    "save_group",
    "save_group_instrument",
    "save_hedge_fill",
    "save_instrument",
    "save_position",
    "save_positions",
    "save_trades",
    "write_snapshots",
]

Row = Mapping[Any, Any]


def _dec(value: Any) -> Decimal:
    return Decimal(value).normalize()


def _opt(value: Any) -> Decimal | None:
    return None if value is None else _dec(value)


# -- rows -> values ----------------------------------------------------------------------------

ACCOUNT_COLUMNS: Final = (
    "account_id::text AS id, user_id::text AS user_id, group_id::text AS group_id, currency,"
    " position_mode, status, version, balance, ledger_sequence"
)


def _account(row: Row) -> Account:
    return Account(
        id=row["id"],
        user_id=row["user_id"],
        group_id=row["group_id"],
        currency=row["currency"].strip(),
        position_mode=PositionMode(row["position_mode"]),
        status=row["status"],
        version=int(row["version"]),
        balance=_dec(row["balance"]),
        ledger_sequence=int(row["ledger_sequence"]),
    )


_GROUP_COLUMNS: Final = (
    "group_id::text AS id, currency, leverage, margin_call_level, stop_out_level, version"
)


def _group(row: Row) -> Group:
    return Group(
        id=row["id"],
        currency=row["currency"].strip(),
        leverage=int(row["leverage"]),
        margin_call_level=_dec(row["margin_call_level"]),
        stop_out_level=_dec(row["stop_out_level"]),
        version=int(row["version"]),
    )


_GROUP_INSTRUMENT_COLUMNS: Final = (
    "group_id::text AS group_id, symbol, enabled, max_order_size, max_position, margin_rate,"
    " version"
)


def _group_instrument(row: Row) -> GroupInstrument:
    return GroupInstrument(
        group_id=row["group_id"],
        symbol=row["symbol"],
        enabled=bool(row["enabled"]),
        max_order_size=_opt(row["max_order_size"]),
        max_position=_opt(row["max_position"]),
        margin_rate=_opt(row["margin_rate"]),
        version=int(row["version"]),
    )


_INSTRUMENT_COLUMNS: Final = (
    "symbol, base_currency, quote_currency, contract_size, margin_rate, sessions, halted, version"
)


def _instrument(row: Row) -> Instrument:
    rate = _dec(row["margin_rate"])
    return Instrument(
        symbol=row["symbol"],
        base_currency=row["base_currency"].strip(),
        quote_currency=row["quote_currency"].strip(),
        contract_size=_dec(row["contract_size"]),
        margin_rate=rate if rate > 0 else None,
        sessions=schedule.from_json(row["sessions"]),
        halted=bool(row["halted"]),
        version=int(row["version"]),
    )


_POSITION_COLUMNS: Final = (
    "position_id::text AS id, account_id::text AS account_id, symbol, side, status, quantity,"
    " open_price, open_time, version"
)


def _position(row: Row) -> Position:
    return Position(
        id=row["id"],
        account_id=row["account_id"],
        symbol=row["symbol"],
        side=Side(row["side"]),
        quantity=_dec(row["quantity"]),
        open_price=_dec(row["open_price"]),
        open_time=row["open_time"],
        version=int(row["version"]),
        is_open=row["status"] == "OPEN",
    )


_TRADE_COLUMNS: Final = (
    "trade_id::text AS trade_id, account_id::text AS account_id,"
    " COALESCE(order_id::text, '') AS order_id, realized_pnl, commission, executed, pnl_booked,"
    " commission_booked"
)


def _unbooked(row: Row) -> UnbookedTrade:
    """What is left to book of a trade row; nothing before the trade itself was seen."""
    executed = bool(row["executed"])
    return UnbookedTrade(
        trade_id=row["trade_id"],
        account_id=row["account_id"],
        order_id=row["order_id"],
        realized_pnl=_dec(row["realized_pnl"])
        if executed and not row["pnl_booked"]
        else Decimal(0),
        commission=_dec(row["commission"])
        if executed and not row["commission_booked"]
        else Decimal(0),
    )


def limits_of(row: Row) -> AccountLimits:
    return AccountLimits(
        max_open_positions=int(row["max_open_positions"]),
        max_open_orders=int(row["max_open_orders"]),
        max_gross_notional=_opt(row["max_gross_notional"]),
    )


def episode_of(row: Row) -> Episode:
    return Episode(
        status=RiskStatus(row["status"]),
        version=int(row["version"]),
        margin_call_event_id=row["margin_call_event_id"],
        stop_out_event_id=row["stop_out_event_id"],
    )


async def _rows(session: AsyncSession, sql: str, params: Mapping[str, Any] | None = None) -> Any:
    return (await session.execute(text(sql), dict(params or {}))).mappings()


async def _one(
    session: AsyncSession, sql: str, params: Mapping[str, Any] | None = None
) -> Row | None:
    row: Row | None = (await _rows(session, sql, params)).first()
    return row


# -- the working set ---------------------------------------------------------------------------


async def load_state(session: AsyncSession) -> RiskState:
    """Everything the check and the watcher hold in memory, as stored now."""
    state = RiskState()
    for row in await _rows(session, f"SELECT {ACCOUNT_COLUMNS} FROM risk.accounts"):
        state.put_account(_account(row))
    for row in await _rows(session, f"SELECT {_GROUP_COLUMNS} FROM risk.groups"):
        state.put_group(_group(row))
    for row in await _rows(
        session, f"SELECT {_GROUP_INSTRUMENT_COLUMNS} FROM risk.group_instruments"
    ):
        state.put_group_instrument(_group_instrument(row))
    for row in await _rows(session, f"SELECT {_INSTRUMENT_COLUMNS} FROM risk.instruments"):
        state.put_instrument(_instrument(row))
    for row in await _rows(
        session, f"SELECT {_POSITION_COLUMNS} FROM risk.positions WHERE status = 'OPEN'"
    ):
        state.put_position(_position(row))
    for row in await _rows(
        session,
        f"SELECT {_TRADE_COLUMNS} FROM risk.trades"
        " WHERE executed AND ((NOT pnl_booked AND realized_pnl <> 0)"
        " OR (NOT commission_booked AND commission <> 0))",
    ):
        state.put_unbooked(_unbooked(row))
    for row in await _rows(
        session,
        "SELECT account_id::text AS account_id, max_open_positions, max_open_orders,"
        " max_gross_notional FROM risk.account_limits",
    ):
        state.limits[row["account_id"]] = limits_of(row)
    for row in await _rows(
        session,
        "SELECT symbol, sum(CASE side WHEN 'BUY' THEN quantity ELSE -quantity END) AS net"
        " FROM risk.hedge_fills GROUP BY symbol",
    ):
        state.coverage[row["symbol"]] = _dec(row["net"])
    state.statuses = await load_statuses(session)
    return state


class Stored:
    """One row of each copy as stored now: what an instance takes into memory for an event
    another instance applied (ADR 0017; `Copies` per instance). None: no such row."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def account(self, account_id: str) -> Account | None:
        row = await _one(
            self.session,
            f"SELECT {ACCOUNT_COLUMNS} FROM risk.accounts WHERE account_id = :id",
            {"id": account_id},
        )
        return None if row is None else _account(row)

    async def group(self, group_id: str) -> Group | None:
        row = await _one(
            self.session,
            f"SELECT {_GROUP_COLUMNS} FROM risk.groups WHERE group_id = :id",
            {"id": group_id},
        )
        return None if row is None else _group(row)

    async def group_instrument(self, group_id: str, symbol: str) -> GroupInstrument | None:
        row = await _one(
            self.session,
            f"SELECT {_GROUP_INSTRUMENT_COLUMNS} FROM risk.group_instruments"
            " WHERE group_id = :id AND symbol = :symbol",
            {"id": group_id, "symbol": symbol},
        )
        return None if row is None else _group_instrument(row)

    async def instrument(self, symbol: str) -> Instrument | None:
        row = await _one(
            self.session,
            f"SELECT {_INSTRUMENT_COLUMNS} FROM risk.instruments WHERE symbol = :symbol",
            {"symbol": symbol},
        )
        return None if row is None else _instrument(row)

    async def position(self, position_id: str) -> Position | None:
        row = await _one(
            self.session,
            f"SELECT {_POSITION_COLUMNS} FROM risk.positions WHERE position_id = :id",
            {"id": position_id},
        )
        return None if row is None else _position(row)

    async def trade(self, trade_id: str) -> UnbookedTrade | None:
        row = await _one(
            self.session,
            f"SELECT {_TRADE_COLUMNS} FROM risk.trades WHERE trade_id = :id",
            {"id": trade_id},
        )
        return None if row is None else _unbooked(row)

    async def coverage(self, symbol: str) -> Decimal:
        row = await _one(
            self.session,
            "SELECT COALESCE(sum(CASE side WHEN 'BUY' THEN quantity ELSE -quantity END), 0)"
            " AS net FROM risk.hedge_fills WHERE symbol = :symbol",
            {"symbol": symbol},
        )
        return _dec(row["net"]) if row is not None else Decimal(0)


async def load_statuses(session: AsyncSession) -> dict[str, RiskStatus]:
    """The margin status of every account not OK."""
    rows = await _rows(
        session,
        "SELECT account_id::text AS account_id, status FROM risk.margin_status"
        " WHERE status <> 'OK'",
    )
    return {row["account_id"]: RiskStatus(row["status"]) for row in rows}


# -- copies: each returns the value now stored, or None when the change was older ---------------


async def save_account(
    session: AsyncSession, values: Mapping[str, Any], version: int
) -> Account | None:
    """Upserts an account's identity and status (not its balance) if `version` is newer."""
    row = await _one(
        session,
        "INSERT INTO risk.accounts (account_id, user_id, group_id, currency, position_mode,"
        " status, version) VALUES (:account_id, :user_id, :group_id, :currency, :position_mode,"
        " :status, :version)"
        " ON CONFLICT (account_id) DO UPDATE SET user_id = EXCLUDED.user_id,"
        " group_id = EXCLUDED.group_id, currency = EXCLUDED.currency,"
        " position_mode = EXCLUDED.position_mode, status = EXCLUDED.status,"
        " version = EXCLUDED.version, updated_at = now()"
        " WHERE risk.accounts.version < EXCLUDED.version"
        f" RETURNING {ACCOUNT_COLUMNS}",
        {**values, "version": version},
    )
    return None if row is None else _account(row)


async def save_balance(
    session: AsyncSession, account_id: str, balance: Decimal, sequence: int
) -> Account | None:
    """Takes the balance after ledger entry `sequence` if it is newer than the one held; None
    when it is not. Raises LookupError for an account not copied yet (its creation event is
    still to come: the message is redelivered)."""
    row = await _one(
        session,
        "UPDATE risk.accounts SET balance = :balance, ledger_sequence = :sequence,"
        " updated_at = now() WHERE account_id = :id AND ledger_sequence < :sequence"
        f" RETURNING {ACCOUNT_COLUMNS}",
        {"id": account_id, "balance": balance, "sequence": sequence},
    )
    if row is not None:
        return _account(row)
    known = await _one(
        session, "SELECT 1 FROM risk.accounts WHERE account_id = :id", {"id": account_id}
    )
    if known is None:
        raise LookupError(f"account {account_id} is not known yet")
    return None


async def save_group(
    session: AsyncSession, values: Mapping[str, Any], version: int
) -> Group | None:
    row = await _one(
        session,
        "INSERT INTO risk.groups (group_id, name, currency, leverage, margin_call_level,"
        " stop_out_level, version) VALUES (:group_id, :name, :currency, :leverage,"
        " :margin_call_level, :stop_out_level, :version)"
        " ON CONFLICT (group_id) DO UPDATE SET name = EXCLUDED.name,"
        " currency = EXCLUDED.currency, leverage = EXCLUDED.leverage,"
        " margin_call_level = EXCLUDED.margin_call_level,"
        " stop_out_level = EXCLUDED.stop_out_level, version = EXCLUDED.version,"
        " updated_at = now() WHERE risk.groups.version < EXCLUDED.version"
        f" RETURNING {_GROUP_COLUMNS}",
        {**values, "version": version},
    )
    return None if row is None else _group(row)


async def save_group_instrument(
    session: AsyncSession, values: Mapping[str, Any], version: int
) -> GroupInstrument | None:
    row = await _one(
        session,
        "INSERT INTO risk.group_instruments (group_id, symbol, enabled, max_order_size,"
        " max_position, margin_rate, version) VALUES (:group_id, :symbol, :enabled,"
        " :max_order_size, :max_position, :margin_rate, :version)"
        " ON CONFLICT (group_id, symbol) DO UPDATE SET enabled = EXCLUDED.enabled,"
        " max_order_size = EXCLUDED.max_order_size, max_position = EXCLUDED.max_position,"
        " margin_rate = EXCLUDED.margin_rate, version = EXCLUDED.version, updated_at = now()"
        " WHERE risk.group_instruments.version < EXCLUDED.version"
        f" RETURNING {_GROUP_INSTRUMENT_COLUMNS}",
        {**values, "version": version},
    )
    return None if row is None else _group_instrument(row)


async def save_instrument(
    session: AsyncSession, values: Mapping[str, Any], version: int
) -> Instrument | None:
    row = await _one(
        session,
        "INSERT INTO risk.instruments (symbol, base_currency, quote_currency, contract_size,"
        " margin_rate, sessions, halted, version) VALUES (:symbol, :base_currency,"
        " :quote_currency, :contract_size, :margin_rate, CAST(:sessions AS jsonb), :halted,"
        " :version)"
        " ON CONFLICT (symbol) DO UPDATE SET base_currency = EXCLUDED.base_currency,"
        " quote_currency = EXCLUDED.quote_currency, contract_size = EXCLUDED.contract_size,"
        " margin_rate = EXCLUDED.margin_rate, sessions = EXCLUDED.sessions,"
        " halted = EXCLUDED.halted, version = EXCLUDED.version, updated_at = now()"
        " WHERE risk.instruments.version < EXCLUDED.version"
        f" RETURNING {_INSTRUMENT_COLUMNS}",
        {**values, "version": version},
    )
    return None if row is None else _instrument(row)


_POSITION_INSERT_COLUMNS: Final = (
    "position_id",
    "account_id",
    "symbol",
    "side",
    "status",
    "quantity",
    "open_price",
    "open_time",
    "version",
)


def _position_values(position: Position) -> dict[str, Any]:
    return {
        "position_id": position.id,
        "account_id": position.account_id,
        "symbol": position.symbol,
        "side": position.side.value,
        "status": "OPEN" if position.is_open else "CLOSED",
        "quantity": position.quantity,
        "open_price": position.open_price,
        "open_time": position.open_time,
        "version": position.version,
    }


async def save_position(session: AsyncSession, position: Position) -> bool:
    """Stores the position if its version is newer than the one held; True if it was."""
    return position.id in await save_positions(session, [position])


async def save_positions(session: AsyncSession, positions: Sequence[Position]) -> set[str]:
    """Stores each position whose version is newer than the one held, with ONE statement (at
    most one version per position: the newest given); the ids stored."""
    newest: dict[str, Position] = {}
    for position in positions:
        held = newest.get(position.id)
        if held is None or held.version < position.version:
            newest[position.id] = position
    if not newest:
        return set()
    statement, params = insert_rows(
        "risk.positions",
        _POSITION_INSERT_COLUMNS,
        [_position_values(p) for p in newest.values()],
        "ON CONFLICT (position_id) DO UPDATE SET side = EXCLUDED.side,"
        " status = EXCLUDED.status, quantity = EXCLUDED.quantity,"
        " open_price = EXCLUDED.open_price, version = EXCLUDED.version, updated_at = now()"
        " WHERE risk.positions.version < EXCLUDED.version RETURNING position_id::text",
    )
    return {str(row[0]) for row in await session.execute(statement, params)}


@dataclass(frozen=True)
class ExecutedTrade:
    """A trade as `oms.trade.executed` tells it."""

    trade_id: str
    account_id: str
    order_id: str
    quantity: Decimal
    realized_pnl: Decimal
    commission: Decimal


async def save_trades(
    session: AsyncSession, trades: Sequence[ExecutedTrade]
) -> dict[str, UnbookedTrade]:
    """Records executed trades with ONE statement; per trade id, what of it the ledger has not
    booked yet."""
    unique = {trade.trade_id: trade for trade in trades}
    if not unique:
        return {}
    statement, params = insert_rows(
        "risk.trades",
        (
            "trade_id",
            "account_id",
            "order_id",
            "quantity",
            "realized_pnl",
            "commission",
            "executed",
        ),
        [
            {
                "trade_id": t.trade_id,
                "account_id": t.account_id,
                "order_id": t.order_id,
                "quantity": t.quantity,
                "realized_pnl": t.realized_pnl,
                "commission": t.commission,
                "executed": True,
            }
            for t in unique.values()
        ],
        "ON CONFLICT (trade_id) DO UPDATE SET order_id = EXCLUDED.order_id,"
        " quantity = EXCLUDED.quantity, realized_pnl = EXCLUDED.realized_pnl,"
        " commission = EXCLUDED.commission,"
        f" executed = TRUE, updated_at = now() RETURNING {_TRADE_COLUMNS}",
    )
    rows = (await session.execute(statement, params)).mappings()
    return {row["trade_id"]: _unbooked(row) for row in rows}


@dataclass(frozen=True)
class ChargedSwap:
    """A swap a rollover charged (`oms.position.swap_charged`): kept with the trades, its charge
    id as the trade id, no order and no quantity, until the ledger books it (ADR 0010)."""

    charge_id: str
    account_id: str
    amount: Decimal


async def save_swaps(
    session: AsyncSession, swaps: Sequence[ChargedSwap]
) -> dict[str, UnbookedTrade]:
    """Records charged swaps with ONE statement; per charge id, what the ledger has not booked."""
    unique = {swap.charge_id: swap for swap in swaps}
    if not unique:
        return {}
    statement, params = insert_rows(
        "risk.trades",
        ("trade_id", "account_id", "realized_pnl", "executed"),
        [
            {
                "trade_id": s.charge_id,
                "account_id": s.account_id,
                "realized_pnl": s.amount,
                "executed": True,
            }
            for s in unique.values()
        ],
        "ON CONFLICT (trade_id) DO UPDATE SET realized_pnl = EXCLUDED.realized_pnl,"
        f" executed = TRUE, updated_at = now() RETURNING {_TRADE_COLUMNS}",
    )
    rows = (await session.execute(statement, params)).mappings()
    return {row["trade_id"]: _unbooked(row) for row in rows}


async def save_booking(
    session: AsyncSession, trade_id: str, account_id: str, order_id: str, *, commission: bool
) -> UnbookedTrade:
    """Records that the ledger booked a trade's P&L (or its commission); returns what is left."""
    column = "commission_booked" if commission else "pnl_booked"
    row = await _one(
        session,
        f"INSERT INTO risk.trades (trade_id, account_id, order_id, {column})"
        " VALUES (:id, :account_id, CAST(NULLIF(:order_id, '') AS uuid), TRUE)"
        f" ON CONFLICT (trade_id) DO UPDATE SET {column} = TRUE, updated_at = now()"
        f" RETURNING {_TRADE_COLUMNS}",
        {"id": trade_id, "account_id": account_id, "order_id": order_id},
    )
    assert row is not None
    return _unbooked(row)


async def save_hedge_fill(
    session: AsyncSession,
    hedge_order_id: str,
    execution_id: str,
    symbol: str,
    side: Side,
    quantity: Decimal,
    fill_time: datetime,
) -> bool:
    """Records a hedge fill once; True if it is new."""
    row = await _one(
        session,
        "INSERT INTO risk.hedge_fills (hedge_order_id, lp_execution_id, symbol, side, quantity,"
        " fill_time) VALUES (:hedge, :execution, :symbol, :side, :quantity, :time)"
        " ON CONFLICT DO NOTHING RETURNING hedge_order_id",
        {
            "hedge": hedge_order_id,
            "execution": execution_id,
            "symbol": symbol,
            "side": side.value,
            "quantity": quantity,
            "time": fill_time,
        },
    )
    return row is not None


# -- limits ------------------------------------------------------------------------------------


async def read_limits(
    session: AsyncSession, account_id: str, *, lock: bool = False
) -> tuple[AccountLimits, datetime] | None:
    row = await _one(
        session,
        "SELECT max_open_positions, max_open_orders, max_gross_notional, updated_at"
        " FROM risk.account_limits WHERE account_id = :id" + (" FOR UPDATE" if lock else ""),
        {"id": account_id},
    )
    return None if row is None else (limits_of(row), row["updated_at"])


async def write_limits(
    session: AsyncSession,
    account_id: str,
    limits: AccountLimits,
    *,
    before: AccountLimits | None,
    actor_kind: str,
    actor_id: str,
    request_id: str,
) -> datetime:
    """Stores the account's limits and the audit record of the change; returns the change's
    time."""
    row = await _one(
        session,
        "INSERT INTO risk.account_limits (account_id, max_open_positions, max_open_orders,"
        " max_gross_notional) VALUES (:id, :positions, :orders, :notional)"
        " ON CONFLICT (account_id) DO UPDATE SET max_open_positions = EXCLUDED.max_open_positions,"
        " max_open_orders = EXCLUDED.max_open_orders,"
        " max_gross_notional = EXCLUDED.max_gross_notional, updated_at = now()"
        " RETURNING updated_at",
        {
            "id": account_id,
            "positions": limits.max_open_positions,
            "orders": limits.max_open_orders,
            "notional": limits.max_gross_notional,
        },
    )
    assert row is not None
    await session.execute(
        text(
            "INSERT INTO risk.limit_changes (account_id, actor_kind, actor_id, request_id,"
            " before, after) VALUES (:id, :kind, :actor, :request,"
            " CAST(:before AS jsonb), CAST(:after AS jsonb))"
        ),
        {
            "id": account_id,
            "kind": actor_kind,
            "actor": actor_id,
            "request": request_id,
            "before": None if before is None else json.dumps(_limits_json(before)),
            "after": json.dumps(_limits_json(limits)),
        },
    )
    updated: datetime = row["updated_at"]
    return updated


def _limits_json(limits: AccountLimits) -> dict[str, Any]:
    return {
        "max_open_positions": limits.max_open_positions,
        "max_open_orders": limits.max_open_orders,
        "max_gross_notional": (
            None if limits.max_gross_notional is None else str(limits.max_gross_notional)
        ),
    }


# -- check decisions ---------------------------------------------------------------------------

DECISION_COLUMNS: Final = (
    "check_id",
    "account_id",
    "order_id",
    "purpose",
    "symbol",
    "side",
    "quantity",
    "remaining_quantity",
    "price",
    "position_id",
    "open_order_count",
    "approved",
    "reject_reason",
    "reject_message",
    "required_margin",
    "free_margin",
    "free_margin_after",
    "margin_level_after",
    "valuation_price",
    "currency",
    "checked_at",
)


async def write_decisions(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """The batch's decisions in one statement."""
    if rows:
        await session.execute(
            *insert_rows("risk.check_decisions", DECISION_COLUMNS, rows, "ON CONFLICT DO NOTHING")
        )


# -- margin states, events, stop-out attempts --------------------------------------------------


async def read_episodes(session: AsyncSession) -> dict[str, Episode]:
    rows = await _rows(
        session,
        "SELECT account_id::text AS account_id, status, version,"
        " margin_call_event_id::text AS margin_call_event_id,"
        " stop_out_event_id::text AS stop_out_event_id FROM risk.margin_status",
    )
    return {row["account_id"]: episode_of(row) for row in rows}


async def write_episode(session: AsyncSession, account_id: str, episode: Episode) -> None:
    await session.execute(
        text(
            "INSERT INTO risk.margin_status (account_id, status, version, margin_call_event_id,"
            " stop_out_event_id) VALUES (:id, :status, :version, :call, :stop)"
            " ON CONFLICT (account_id) DO UPDATE SET status = EXCLUDED.status,"
            " version = EXCLUDED.version, margin_call_event_id = EXCLUDED.margin_call_event_id,"
            " stop_out_event_id = EXCLUDED.stop_out_event_id, updated_at = now()"
        ),
        {
            "id": account_id,
            "status": episode.status.value,
            "version": episode.version,
            "call": episode.margin_call_event_id,
            "stop": episode.stop_out_event_id,
        },
    )


async def write_margin_event(session: AsyncSession, values: Mapping[str, Any]) -> None:
    await session.execute(
        text(
            "INSERT INTO risk.margin_events (margin_event_id, account_id, group_id, type,"
            " related_margin_event_id, closed_position_ids, closing_order_ids, realized_pnl,"
            " negative_balance, account_risk, created_at) VALUES (:id, :account_id, :group_id,"
            " :type, :related, CAST(:closed_positions AS uuid[]), CAST(:closing_orders AS uuid[]),"
            " :realized_pnl, :negative_balance, :account_risk, :created_at)"
        ),
        dict(values),
    )


MARGIN_EVENT_COLUMNS: Final = (
    "margin_event_id::text AS id, account_id::text AS account_id, type,"
    " COALESCE(related_margin_event_id::text, '') AS related,"
    " closed_position_ids::text[] AS closed_positions,"
    " closing_order_ids::text[] AS closing_orders, realized_pnl, negative_balance, account_risk,"
    " created_at"
)


async def margin_events(
    session: AsyncSession,
    *,
    account_id: str,
    group_id: str,
    types: Sequence[str],
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
) -> Sequence[Row]:
    """Margin events newest first; an empty filter (or None) is no filter."""
    condition, params = where(
        ("account_id = :account_id", "account_id", account_id or None),
        ("group_id = :group_id", "group_id", group_id or None),
        ("type = ANY(:types)", "types", list(types) or None),
        ("created_at >= :start", "start", start),
        ("created_at < :end", "end", end),
    )
    rows = await _rows(
        session,
        f"SELECT {MARGIN_EVENT_COLUMNS} FROM risk.margin_events{condition}"
        " ORDER BY created_at DESC, margin_event_id DESC LIMIT :limit OFFSET :offset",
        {**params, "limit": limit, "offset": offset},
    )
    return list(rows)


async def start_close(
    session: AsyncSession, client_order_id: str, event_id: str, account_id: str, position_id: str
) -> None:
    await session.execute(
        text(
            "INSERT INTO risk.stop_out_closes (client_order_id, margin_event_id, account_id,"
            " position_id) VALUES (:client_order_id, :event, :account, :position)"
        ),
        {
            "client_order_id": client_order_id,
            "event": event_id,
            "account": account_id,
            "position": position_id,
        },
    )


async def finish_close(
    session: AsyncSession,
    client_order_id: str,
    order_id: str | None,
    order_status: str,
    filled_quantity: Decimal,
) -> None:
    await session.execute(
        text(
            "UPDATE risk.stop_out_closes SET order_id = :order, order_status = :status,"
            " filled_quantity = :filled, answered_at = now()"
            " WHERE client_order_id = :client_order_id"
        ),
        {
            "client_order_id": client_order_id,
            "order": order_id,
            "status": order_status,
            "filled": filled_quantity,
        },
    )


async def closes_of(session: AsyncSession, event_id: str) -> list[Row]:
    """The close attempts of a stop-out, oldest first."""
    rows = await _rows(
        session,
        "SELECT client_order_id, position_id::text AS position_id,"
        " COALESCE(order_id::text, '') AS order_id, order_status, filled_quantity,"
        " answered_at IS NOT NULL AS answered"
        " FROM risk.stop_out_closes WHERE margin_event_id = :event ORDER BY created_at",
        {"event": event_id},
    )
    return list(rows)


async def filled_by_trades(session: AsyncSession, order_id: str) -> Decimal:
    """The quantity of the order's trades seen so far (oms.trade.executed)."""
    row = await _one(
        session,
        "SELECT COALESCE(sum(quantity), 0) AS filled FROM risk.trades"
        " WHERE executed AND order_id = :order",
        {"order": order_id},
    )
    assert row is not None
    return _dec(row["filled"])


async def realized_of_orders(session: AsyncSession, order_ids: Sequence[str]) -> Decimal:
    """The realized P&L of the trades of these orders, as the OMS reported it."""
    row = await _one(
        session,
        "SELECT COALESCE(sum(realized_pnl), 0) AS total FROM risk.trades"
        " WHERE executed AND order_id = ANY(CAST(:orders AS uuid[]))",
        {"orders": list(order_ids)},
    )
    assert row is not None
    return _dec(row["total"])


# -- daily snapshots (snapshots.py) ------------------------------------------------------------

SNAPSHOT_COLUMNS: Final = (
    "account_id",
    "trading_date",
    "currency",
    "balance",
    "equity",
    "margin",
    "free_margin",
    "floating_pnl",
    "margin_level",
    "taken_at",
)
_SNAPSHOT_CHUNK: Final = 1000


async def record_snapshots_due(
    session: AsyncSession, trading_date: date, rollover_time: datetime
) -> None:
    """Marks the day's snapshots due (in the consumer's transaction)."""
    await session.execute(
        text(
            "INSERT INTO risk.rollover_snapshots (trading_date, rollover_time)"
            " VALUES (:trading_date, :rollover_time) ON CONFLICT DO NOTHING"
        ),
        {"trading_date": trading_date, "rollover_time": rollover_time},
    )


async def due_snapshot_days(session: AsyncSession) -> list[tuple[date, datetime]]:
    """The trading days whose snapshots are due, oldest first, with when each became due."""
    rows = await _rows(
        session,
        "SELECT trading_date, received_at FROM risk.rollover_snapshots"
        " WHERE taken_at IS NULL ORDER BY trading_date",
    )
    return [(row["trading_date"], row["received_at"]) for row in rows]


async def write_snapshots(
    session: AsyncSession, trading_date: date, rows: Sequence[Mapping[str, Any]], now: datetime
) -> None:
    """The day's snapshots (one row per account, `SNAPSHOT_COLUMNS`; a row already there stays
    as it is), and the day marked taken."""
    for start in range(0, len(rows), _SNAPSHOT_CHUNK):
        chunk = rows[start : start + _SNAPSHOT_CHUNK]
        await session.execute(
            *insert_rows("risk.daily_snapshots", SNAPSHOT_COLUMNS, chunk, "ON CONFLICT DO NOTHING")
        )
    await session.execute(
        text(
            "UPDATE risk.rollover_snapshots SET taken_at = :now WHERE trading_date = :trading_date"
        ),
        {"now": now, "trading_date": trading_date},
    )

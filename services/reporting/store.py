"""Reporting's SQL: every read goes to the read replica (`Database.read_session`, ADR 0012).

The reporting role reads every service's schema (migration 0001) and writes none. Each function
is one statement against tables other services own; the column meanings are
theirs (account.ledger_entries, oms.orders/trades/positions, pricing.published_prices,
risk.daily_snapshots).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from typing import Final
from typing import cast

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.paging import Cursor

# At most this many lines of each list block of a statement (reporting.proto, Statement).
STATEMENT_ROWS: Final = 5000
OPEN_ORDER_STATUSES: Final = (
    "NEW",
    "PENDING",
    "ACCEPTED",
    "WORKING",
    "PARTIALLY_FILLED",
    "PENDING_CANCEL",
    "PENDING_AMEND",
)
CLOSING_EFFECTS: Final = ("REDUCE", "CLOSE", "REVERSE")


@dataclass(frozen=True)
class AccountInfo:
    account_id: str
    user_id: str
    account_number: str
    currency: str
    group_id: str
    created_at: datetime


async def load_account(session: AsyncSession, account_id: str) -> AccountInfo | None:
    row = (
        await session.execute(
            text(
                """SELECT id::text, user_id::text, account_number, currency, group_id::text,
                          created_at
                     FROM account.trading_accounts WHERE id = CAST(:id AS uuid)"""
            ),
            {"id": account_id},
        )
    ).first()
    if row is None:
        return None
    return AccountInfo(row[0], row[1], row[2], row[3].strip(), row[4], row[5])


# --- the ledger -------------------------------------------------------------------------------


async def balance_before(session: AsyncSession, account_id: str, at: datetime) -> Decimal:
    """The balance after the account's last ledger entry made before `at` (0 before any)."""
    value = await session.scalar(
        text(
            """SELECT balance_after FROM account.ledger_entries
                WHERE account_id = CAST(:a AS uuid) AND created_at < :at
                ORDER BY created_at DESC, sequence DESC LIMIT 1"""
        ),
        {"a": account_id, "at": at},
    )
    return Decimal(value) if value is not None else Decimal(0)


async def ledger_sums(
    session: AsyncSession, account_id: str, start: datetime, end: datetime
) -> dict[str, Decimal]:
    """The signed sum of the period's ledger entries per reason."""
    rows = await session.execute(
        text(
            """SELECT reason, sum(amount) FROM account.ledger_entries
                WHERE account_id = CAST(:a AS uuid) AND created_at >= :s AND created_at < :e
                GROUP BY reason"""
        ),
        {"a": account_id, "s": start, "e": end},
    )
    return {reason: Decimal(total) for reason, total in rows}


async def ledger_lines(
    session: AsyncSession,
    account_id: str,
    start: datetime,
    end: datetime,
    limit: int,
    places: int,
) -> Sequence[Row[Any]]:
    """The period's entries in ledger order (created_at follows the sequence), amounts as
    text with the currency's `places` decimals (they are booked in minor units)."""
    rows = await session.execute(
        text(
            """SELECT id::text AS id, sequence, reason, round(amount, :places)::text AS amount,
                      round(balance_after, :places)::text AS balance_after, description,
                      order_id::text AS order_id, trade_id::text AS trade_id,
                      position_id::text AS position_id,
                      (extract(epoch FROM created_at) * 1000000)::bigint AS created_us
                 FROM account.ledger_entries
                WHERE account_id = CAST(:a AS uuid) AND created_at >= :s AND created_at < :e
                ORDER BY created_at, sequence LIMIT :n"""
        ),
        {"a": account_id, "s": start, "e": end, "n": limit, "places": places},
    )
    return rows.all()


async def swaps_by_position(
    session: AsyncSession, account_id: str, end: datetime, position_ids: Sequence[str] | None
) -> dict[str, Decimal]:
    """The swap booked on each position (of `position_ids`, or all) before `end`."""
    rows = await session.execute(
        text(
            """SELECT position_id::text, sum(amount) FROM account.ledger_entries
                WHERE account_id = CAST(:a AS uuid) AND reason = 'SWAP' AND created_at < :e
                  AND position_id IS NOT NULL
                  AND (CAST(:ids AS uuid[]) IS NULL OR position_id = ANY(CAST(:ids AS uuid[])))
                GROUP BY position_id"""
        ),
        {"a": account_id, "e": end, "ids": list(position_ids) if position_ids else None},
    )
    return {pid: Decimal(total) for pid, total in rows}


async def net_deposit_flows(
    session: AsyncSession, account_id: str, start: datetime, end: datetime
) -> Sequence[tuple[datetime, Decimal]]:
    """Every deposit and withdrawal (and reversal) of the period: (time, signed amount)."""
    rows = await session.execute(
        text(
            """SELECT created_at, amount FROM account.ledger_entries
                WHERE account_id = CAST(:a AS uuid) AND created_at >= :s AND created_at < :e
                  AND reason IN ('DEPOSIT', 'WITHDRAWAL', 'WITHDRAWAL_REVERSAL')
                ORDER BY sequence"""
        ),
        {"a": account_id, "s": start, "e": end},
    )
    return [(at, Decimal(amount)) for at, amount in rows]


# --- orders and trades ------------------------------------------------------------------------

# Times leave it also as microseconds since the epoch (`*_us`), for the wire's Timestamps.
# Decimals leave PostgreSQL as text without trailing zeros (trim_scale, as the CSV exports write
# them and as `plain_decimal` would): a statement's thousands of rows never become Decimals.
_TRADE_COLUMNS: Final = """t.id::text AS trade_id, t.order_id::text AS order_id,
       t.client_order_id, t.account_id::text AS account_id, t.symbol, t.side,
       trim_scale(t.quantity)::text AS quantity, trim_scale(t.price)::text AS price,
       trim_scale(t.commission)::text AS commission,
       trim_scale(t.realized_pnl)::text AS realized_pnl, t.position_id::text AS position_id,
       t.position_effect, t.origin, t.fill_time, t.currency,
       (extract(epoch FROM t.fill_time) * 1000000)::bigint AS fill_us"""

_ORDER_COLUMNS: Final = """o.id::text AS order_id, o.client_order_id, o.account_id::text AS
       account_id, o.symbol, o.side, o.type, o.time_in_force, o.status, o.status_reason,
       o.status_message, trim_scale(o.quantity)::text AS quantity,
       trim_scale(o.filled_quantity)::text AS filled_quantity,
       trim_scale(o.price)::text AS price, trim_scale(o.stop_price)::text AS stop_price,
       trim_scale(o.average_fill_price)::text AS average_fill_price,
       trim_scale(o.stop_loss)::text AS stop_loss,
       trim_scale(o.take_profit)::text AS take_profit, o.position_id::text AS position_id,
       o.execution_mode, trim_scale(o.commission)::text AS commission, o.origin, o.created_at,
       (extract(epoch FROM o.created_at) * 1000000)::bigint AS create_us,
       (extract(epoch FROM o.updated_at) * 1000000)::bigint AS update_us"""


async def trades_in_period(
    session: AsyncSession,
    account_id: str,
    start: datetime,
    end: datetime,
    limit: int,
    closing_only: bool = False,
) -> Sequence[Row[Any]]:
    """The period's fills, oldest first, with their position's side, open price and open time
    (a closing fill's position)."""
    rows = await session.execute(
        text(
            f"""SELECT {_TRADE_COLUMNS}, p.side AS position_side,
                       trim_scale(p.open_price)::text AS position_open_price,
                       (extract(epoch FROM p.open_time) * 1000000)::bigint AS position_open_us
                  FROM oms.trades t JOIN oms.positions p ON p.id = t.position_id
                 WHERE t.account_id = CAST(:a AS uuid) AND t.fill_time >= :s
                   AND t.fill_time < :e
                   AND (NOT :closing OR t.position_effect IN ('REDUCE', 'CLOSE', 'REVERSE'))
                 ORDER BY t.fill_time, t.id LIMIT :n"""
        ),
        {"a": account_id, "s": start, "e": end, "n": limit, "closing": closing_only},
    )
    return rows.all()


async def orders_in_period(
    session: AsyncSession, account_id: str, start: datetime, end: datetime, limit: int
) -> Sequence[Row[Any]]:
    rows = await session.execute(
        text(
            f"""SELECT {_ORDER_COLUMNS} FROM oms.orders o
                 WHERE o.account_id = CAST(:a AS uuid) AND o.created_at >= :s
                   AND o.created_at < :e
                 ORDER BY o.created_at, o.id LIMIT :n"""
        ),
        {"a": account_id, "s": start, "e": end, "n": limit},
    )
    return rows.all()


async def working_orders_at(
    session: AsyncSession, account_id: str, end: datetime, limit: int, ends_now: bool
) -> Sequence[Row[Any]]:
    """Orders working at `end`: created before it, and open now or ended (updated_at, for a
    terminal order) at or after it. A period that ends now needs only the open ones (the OMS's
    partial index of open orders)."""
    ended_after = "" if ends_now else " OR o.updated_at >= :e"
    rows = await session.execute(
        text(
            f"""SELECT {_ORDER_COLUMNS} FROM oms.orders o
                 WHERE o.account_id = CAST(:a AS uuid) AND o.created_at < :e
                   AND o.type <> 'MARKET'
                   AND (o.status IN ({", ".join(f"'{s}'" for s in OPEN_ORDER_STATUSES)})
                        {ended_after})
                 ORDER BY o.created_at, o.id LIMIT :n"""
        ),
        {"a": account_id, "e": end, "n": limit},
    )
    return rows.all()


async def positions_open_at(
    session: AsyncSession, account_id: str, end: datetime, ends_now: bool
) -> Sequence[Row[Any]]:
    """The fills before `end` of every position open at `end` (opened before it, closed at or
    after it or not at all), by position and time. A period that ends now needs only the open
    positions (the OMS's partial index of them)."""
    still_open = "p.status = 'OPEN'" if ends_now else "(p.close_time IS NULL OR p.close_time >= :e)"
    rows = await session.execute(
        text(
            f"""SELECT p.id::text AS position_id, p.symbol, p.open_time, t.side, t.quantity,
                      t.price, t.position_effect, t.commission, t.fill_time
                 FROM oms.positions p JOIN oms.trades t ON t.position_id = p.id
                WHERE p.account_id = CAST(:a AS uuid) AND p.open_time < :e
                  AND {still_open} AND t.fill_time < :e
                ORDER BY p.open_time, p.id, t.fill_time, t.id"""
        ),
        {"a": account_id, "e": end},
    )
    return rows.all()


@dataclass(frozen=True)
class HistoryPage:
    """Which page of an account's history, newest first: [start, end) (open-ended where
    None), of one symbol ("" for every one), below the cursor, `limit` rows at most."""

    account_id: str
    start: datetime | None
    end: datetime | None
    symbol: str
    after: Cursor | None
    limit: int

    def sql(self, table: str, time_column: str, more: str = "") -> tuple[str, dict[str, Any]]:
        """The FROM, WHERE and ORDER BY of the page of `table` (with its alias, "oms.trades
        t") by `time_column`, its rows also passing `more` (" AND ..."), and their
        parameters."""
        alias = table.rpartition(" ")[2]
        time = f"{alias}.{time_column}"
        sql = f"""FROM {table}
                 WHERE {alias}.account_id = CAST(:a AS uuid)
                   AND (CAST(:s AS timestamptz) IS NULL OR {time} >= :s)
                   AND (CAST(:e AS timestamptz) IS NULL OR {time} < :e)
                   AND (:symbol = '' OR {alias}.symbol = :symbol){more}
                   AND (CAST(:at AS timestamptz) IS NULL
                        OR ({time}, {alias}.id) < (:at, CAST(:id AS uuid)))
                 ORDER BY {time} DESC, {alias}.id DESC LIMIT :n"""
        params = {
            "a": self.account_id,
            "s": self.start,
            "e": self.end,
            "symbol": self.symbol,
            "at": self.after[0] if self.after else None,
            "id": self.after[1] if self.after else None,
            "n": self.limit,
        }
        return sql, params


async def trade_page(session: AsyncSession, page: HistoryPage) -> Sequence[Row[Any]]:
    """One page of fills (keyset on (fill_time, id))."""
    sql, params = page.sql("oms.trades t", "fill_time")
    return (await session.execute(text(f"SELECT {_TRADE_COLUMNS} {sql}"), params)).all()


async def order_page(
    session: AsyncSession, page: HistoryPage, statuses: Sequence[str]
) -> Sequence[Row[Any]]:
    """One page of orders by create_time (keyset on (created_at, id)), of `statuses` (all
    when empty)."""
    sql, params = page.sql(
        "oms.orders o",
        "created_at",
        " AND (CAST(:statuses AS text[]) IS NULL OR o.status = ANY(:statuses))",
    )
    params["statuses"] = list(statuses) or None
    return (await session.execute(text(f"SELECT {_ORDER_COLUMNS} {sql}"), params)).all()


async def closing_trade_results(
    session: AsyncSession, account_id: str, start: datetime, end: datetime
) -> Sequence[tuple[Decimal, bool]]:
    """(realized P&L, closed a long position) of every closing fill of the period. A closing
    fill sells a long position or buys back a short one, so its side is the opposite of the
    position it closed."""
    rows = await session.execute(
        text(
            """SELECT realized_pnl, side = 'SELL' FROM oms.trades
                WHERE account_id = CAST(:a AS uuid) AND fill_time >= :s AND fill_time < :e
                  AND position_effect IN ('REDUCE', 'CLOSE', 'REVERSE')"""
        ),
        {"a": account_id, "s": start, "e": end},
    )
    return [(Decimal(pnl), bool(long)) for pnl, long in rows]


# --- reference data and prices ----------------------------------------------------------------


@dataclass(frozen=True)
class InstrumentTerms:
    symbol: str
    base_currency: str
    quote_currency: str
    contract_size: Decimal
    margin_rate: Decimal | None
    group_margin_rate: Decimal | None


async def group_terms(
    session: AsyncSession, group_id: str
) -> tuple[int, dict[str, InstrumentTerms]]:
    """The group's leverage and every instrument's terms in it (the OMS's copies)."""
    leverage = await session.scalar(
        text("SELECT leverage FROM oms.groups WHERE group_id = CAST(:g AS uuid)"),
        {"g": group_id},
    )
    rows = await session.execute(
        text(
            """SELECT i.symbol, i.base_currency, i.quote_currency, i.contract_size,
                      i.margin_rate, gi.margin_rate
                 FROM oms.instruments i
                 LEFT JOIN oms.group_instruments gi
                   ON gi.symbol = i.symbol AND gi.group_id = CAST(:g AS uuid)"""
        ),
        {"g": group_id},
    )
    terms = {
        r[0]: InstrumentTerms(
            r[0],
            r[1].strip(),
            r[2].strip(),
            Decimal(r[3]),
            Decimal(r[4]) if r[4] is not None and Decimal(r[4]) > 0 else None,
            Decimal(r[5]) if r[5] is not None else None,
        )
        for r in rows
    }
    return int(leverage or 1), terms


@dataclass(frozen=True)
class Price:
    bid: Decimal
    ask: Decimal
    time: datetime

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


async def prices_at(
    session: AsyncSession, group_id: str, symbols: Sequence[str], at: datetime
) -> dict[str, Price]:
    """The group's last published price of each symbol before `at` (pricing's tick store)."""
    if not symbols:
        return {}
    rows = await session.execute(
        text(
            """SELECT s.symbol, p.bid, p.ask, p.time
                 FROM unnest(CAST(:symbols AS text[])) AS s(symbol)
                 CROSS JOIN LATERAL (
                     SELECT bid, ask, time FROM pricing.published_prices
                      WHERE group_id = CAST(:g AS uuid) AND symbol = s.symbol AND time < :at
                      ORDER BY time DESC LIMIT 1) p"""
        ),
        {"symbols": list(symbols), "g": group_id, "at": at},
    )
    return {r[0]: Price(Decimal(r[1]), Decimal(r[2]), r[3]) for r in rows}


# --- performance ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    time: datetime
    balance: Decimal
    equity: Decimal


async def daily_snapshots(
    session: AsyncSession, account_id: str, start: datetime, end: datetime
) -> Sequence[Snapshot]:
    """The account's daily snapshots (risk.daily_snapshots, written at each rollover by the
    broker's day, ADR 0010) taken in [start, end), and the last one before `start`, oldest
    first. The one read of that table."""
    rows = await session.execute(
        text(
            """(SELECT taken_at, balance, equity FROM risk.daily_snapshots
                 WHERE account_id = CAST(:a AS uuid) AND taken_at < :s
                 ORDER BY taken_at DESC LIMIT 1)
               UNION ALL
               (SELECT taken_at, balance, equity FROM risk.daily_snapshots
                 WHERE account_id = CAST(:a AS uuid) AND taken_at >= :s AND taken_at < :e
                 ORDER BY taken_at)"""
        ),
        {"a": account_id, "s": start, "e": end},
    )
    found = [Snapshot(r[0], Decimal(r[1]), Decimal(r[2])) for r in rows]
    return sorted(found, key=lambda s: s.time)


# --- broker views -----------------------------------------------------------------------------

# The broker views' selection: the accounts of :groups and the instruments :symbols, each NULL
# for every one (`_scope` gives both).
_IN_GROUPS: Final = "(CAST(:groups AS uuid[]) IS NULL OR a.group_id = ANY(CAST(:groups AS uuid[])))"


def _in_symbols(column: str) -> str:
    return f"(CAST(:symbols AS text[]) IS NULL OR {column} = ANY(:symbols))"


def _scope(group_ids: Sequence[str], symbols: Sequence[str]) -> dict[str, list[str] | None]:
    """The parameters of `_IN_GROUPS` and `_in_symbols`: an empty selection is every one."""
    return {"groups": list(group_ids) or None, "symbols": list(symbols) or None}


# Per (group, symbol): fills, accounts, lots, notional in the quote currency and in the base
# currency, the clients' realized P&L and commissions (account currency).
_BROKER_TOTALS: Final = f"""SELECT a.group_id::text AS group_id, t.symbol, count(*) AS trades,
                      count(DISTINCT t.account_id) AS accounts,
                      array_agg(DISTINCT t.account_id::text) AS account_ids,
                      sum(t.quantity) AS lots,
                      sum(t.quantity * i.contract_size * t.price) AS quote_notional,
                      sum(t.quantity * i.contract_size) AS base_notional,
                      sum(t.realized_pnl) AS realized, sum(t.commission) AS commissions,
                      min(i.base_currency) AS base, min(i.quote_currency) AS quote
                 FROM oms.trades t
                 JOIN oms.accounts a ON a.account_id = t.account_id
                 JOIN oms.instruments i ON i.symbol = t.symbol
                WHERE t.fill_time >= :s AND t.fill_time < :e
                  AND {_IN_GROUPS}
                  AND {_in_symbols("t.symbol")}
                GROUP BY a.group_id, t.symbol"""
# Per (group, symbol): the swaps booked to clients in the period (ledger SWAP entries, by their
# position's instrument).
_BROKER_SWAPS: Final = f"""SELECT a.group_id::text, p.symbol, sum(l.amount)
                 FROM account.ledger_entries l
                 JOIN oms.positions p ON p.id = l.position_id
                 JOIN oms.accounts a ON a.account_id = l.account_id
                WHERE l.reason = 'SWAP' AND l.created_at >= :s AND l.created_at < :e
                  AND {_IN_GROUPS}
                  AND {_in_symbols("p.symbol")}
                GROUP BY a.group_id, p.symbol"""


async def broker_totals(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    group_ids: Sequence[str],
    symbols: Sequence[str],
) -> tuple[Sequence[Row[Any]], Sequence[Row[Any]]]:
    """Per (group, symbol) of the period: the fills' totals (`_BROKER_TOTALS`) and the swaps
    booked to clients (`_BROKER_SWAPS`)."""
    params = {"s": start, "e": end} | _scope(group_ids, symbols)
    totals = await session.execute(text(_BROKER_TOTALS), params)
    swaps = await session.execute(text(_BROKER_SWAPS), params)
    return totals.all(), swaps.all()


async def broker_money_flows(
    session: AsyncSession, start: datetime, end: datetime, group_ids: Sequence[str]
) -> dict[str, Decimal]:
    """The clients' deposits and withdrawals booked in the period (ledger DEPOSIT, WITHDRAWAL
    and WITHDRAWAL_REVERSAL entries), the signed sum per reason, of the accounts of
    `group_ids` (or of every group)."""
    rows = await session.execute(
        text(
            f"""SELECT l.reason, sum(l.amount)
                 FROM account.ledger_entries l
                 JOIN account.trading_accounts a ON a.id = l.account_id
                WHERE l.reason IN ('DEPOSIT', 'WITHDRAWAL', 'WITHDRAWAL_REVERSAL')
                  AND l.created_at >= :s AND l.created_at < :e
                  AND {_IN_GROUPS}
                GROUP BY l.reason"""
        ),
        {"s": start, "e": end, "groups": list(group_ids) or None},
    )
    return {str(reason): Decimal(total) for reason, total in rows.tuples()}


async def client_net_at(
    session: AsyncSession, at: datetime, group_ids: Sequence[str], symbols: Sequence[str]
) -> dict[str, Decimal]:
    """The clients' net open quantity per symbol at `at` (lots, long minus short): every fill
    before it, buys minus sells, as `client_net_buckets` counts it; symbols netting to zero
    left out."""
    rows = await session.execute(
        text(
            f"""SELECT t.symbol,
                      sum(CASE WHEN t.side = 'BUY' THEN t.quantity ELSE -t.quantity END) AS net
                 FROM oms.trades t JOIN oms.accounts a ON a.account_id = t.account_id
                WHERE t.fill_time < :at
                  AND {_IN_GROUPS}
                  AND {_in_symbols("t.symbol")}
                GROUP BY t.symbol
               HAVING sum(CASE WHEN t.side = 'BUY' THEN t.quantity ELSE -t.quantity END) <> 0"""
        ),
        {"at": at} | _scope(group_ids, symbols),
    )
    return {str(symbol): Decimal(net) for symbol, net in rows.tuples()}


async def group_names(session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(text("SELECT group_id::text, name FROM oms.groups"))
    return {str(group_id): str(name) for group_id, name in rows.tuples()}


async def first_fill_time(session: AsyncSession) -> datetime | None:
    value = await session.scalar(text("SELECT min(fill_time) FROM oms.trades"))
    return cast(datetime | None, value)


def _net_buckets(fills: str, symbol: str, side: str, quantity: str, time: str, where: str) -> str:
    """SQL: per symbol and time bucket (date_trunc :unit) of `fills` before :e passing `where`,
    the signed filled lots (buys minus sells); the bucket NULL holds everything before :s."""
    return f"""SELECT {symbol},
                      CASE WHEN {time} < :s THEN NULL
                           ELSE date_trunc(:unit, {time}, 'UTC') END AS bucket,
                      sum(CASE WHEN {side} = 'BUY' THEN {quantity} ELSE -{quantity} END)
                 FROM {fills}
                WHERE {time} < :e AND {where}
                GROUP BY 1, 2"""


# The clients' fills, and the broker's hedge fills at the LPs.
_CLIENT_NET_BUCKETS: Final = _net_buckets(
    "oms.trades t JOIN oms.accounts a ON a.account_id = t.account_id",
    "t.symbol",
    "t.side",
    "t.quantity",
    "t.fill_time",
    f"{_IN_GROUPS} AND {_in_symbols('t.symbol')}",
)
_HEDGE_NET_BUCKETS: Final = _net_buckets(
    "oms.hedge_fills f JOIN oms.hedge_orders h ON h.id = f.hedge_order_id",
    "h.symbol",
    "h.side",
    "f.quantity",
    "f.fill_time",
    _in_symbols("h.symbol"),
)


async def client_net_buckets(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    unit: str,
    group_ids: Sequence[str],
    symbols: Sequence[str],
) -> Sequence[Row[Any]]:
    """Per symbol and time bucket (date_trunc `unit`), the clients' signed filled lots (buys
    minus sells); the bucket NULL holds everything before `start`."""
    params = {"s": start, "e": end, "unit": unit} | _scope(group_ids, symbols)
    return (await session.execute(text(_CLIENT_NET_BUCKETS), params)).all()


async def hedge_net_buckets(
    session: AsyncSession, start: datetime, end: datetime, unit: str, symbols: Sequence[str]
) -> Sequence[Row[Any]]:
    """As `client_net_buckets`, for the broker's hedge fills at the LPs."""
    params = {"s": start, "e": end, "unit": unit, "symbols": list(symbols) or None}
    return (await session.execute(text(_HEDGE_NET_BUCKETS), params)).all()


async def mids_at(
    session: AsyncSession, symbols: Sequence[str], times: Sequence[datetime]
) -> dict[tuple[str, datetime], Decimal]:
    """The mid of the last published price of each symbol before each time, in whichever group
    published it last: markups widen bid and ask alike (ADR 0006), so any group's mid is the LP
    mid; but a group need not be offered the symbol (one group picked blindly had no price)."""
    if not symbols or not times:
        return {}
    rows = await session.execute(
        text(
            """SELECT s.symbol, tt.at, (p.bid + p.ask) / 2
                 FROM unnest(CAST(:symbols AS text[])) AS s(symbol)
                 CROSS JOIN unnest(CAST(:times AS timestamptz[])) AS tt(at)
                 CROSS JOIN LATERAL (
                     SELECT q.bid, q.ask FROM pricing.groups g
                      CROSS JOIN LATERAL (
                          SELECT bid, ask, time FROM pricing.published_prices
                           WHERE group_id = g.group_id AND symbol = s.symbol AND time < tt.at
                           ORDER BY time DESC LIMIT 1) q
                      ORDER BY q.time DESC LIMIT 1) p"""
        ),
        {"symbols": list(symbols), "times": list(times)},
    )
    return {(r[0], r[1]): Decimal(r[2]) for r in rows}


async def instrument_currencies(session: AsyncSession) -> dict[str, tuple[str, str, Decimal]]:
    rows = await session.execute(
        text("SELECT symbol, base_currency, quote_currency, contract_size FROM oms.instruments")
    )
    return {r[0]: (r[1].strip(), r[2].strip(), Decimal(r[3])) for r in rows}


# --- CSV exports (written by PostgreSQL, streamed in chunks) ----------------------------------


# One CSV record per fill as PostgreSQL writes it: decimals without trailing zeros (trim_scale,
# as `plain_decimal`), times RFC 3339 in UTC with milliseconds, enum names without their prefix,
# CRLF at the end. Ids, numbers, times and enum names never need quotes; the two free texts are
# quoted by `_quoted` if they ever would (RFC 4180), though the contracts restrict them.
def _quoted(column: str) -> str:
    return (
        f"CASE WHEN {column} ~ '[\",\\r\\n]' "
        f"THEN '\"' || replace({column}, '\"', '\"\"') || '\"' ELSE {column} END"
    )


_CSV_TRADE_FIELDS: Final = f"""t.id, t.order_id, {_quoted("t.client_order_id")}, t.position_id,
       to_char(date_trunc('milliseconds', t.fill_time AT TIME ZONE 'UTC'),
               'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
       t.symbol, t.side, t.position_effect, trim_scale(t.quantity), trim_scale(t.price),
       trim_scale(t.commission), trim_scale(t.realized_pnl), t.currency, t.origin"""
# Fills per chunk: one statement (or one fetched row) per chunk, about 190 bytes a fill.
CSV_CHUNK_ROWS: Final = 2000


async def account_trades_csv(
    session: AsyncSession, account_id: str, start: datetime, end: datetime
) -> AsyncIterator[bytes]:
    """The account's fills in [start, end), oldest first, as CSV records in chunks of
    CSV_CHUNK_ROWS: keyset pages on the OMS's (account_id, fill_time, id) index, each one
    statement whose one row is the chunk's text. Nothing is held but the chunk in flight."""
    after: tuple[datetime, str] | None = None
    while True:
        row = (
            await session.execute(
                text(
                    f"""SELECT string_agg(line, '' ORDER BY fill_time, id), count(*),
                               (array_agg(fill_time ORDER BY fill_time DESC, id DESC))[1],
                               (array_agg(id::text ORDER BY fill_time DESC, id DESC))[1]
                          FROM (SELECT t.fill_time, t.id,
                                       concat_ws(',', {_CSV_TRADE_FIELDS}) || E'\\r\\n' AS line
                                  FROM oms.trades t
                                 WHERE t.account_id = CAST(:a AS uuid) AND t.fill_time >= :s
                                   AND t.fill_time < :e
                                   AND (CAST(:at AS timestamptz) IS NULL
                                        OR (t.fill_time, t.id) > (:at, CAST(:id AS uuid)))
                                 ORDER BY t.fill_time, t.id LIMIT :n) page"""
                ),
                {
                    "a": account_id,
                    "s": start,
                    "e": end,
                    "at": after[0] if after else None,
                    "id": after[1] if after else None,
                    "n": CSV_CHUNK_ROWS,
                },
            )
        ).one()
        data, count, last_time, last_id = tuple(row)
        if not count:
            return
        yield str(data).encode()
        if count < CSV_CHUNK_ROWS:
            return
        after = (last_time, last_id)


async def broker_trades_csv(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    group_ids: Sequence[str],
    symbols: Sequence[str],
    account_ids: Sequence[str],
) -> AsyncIterator[bytes]:
    """Every selected account's fills in [start, end), oldest first, as CSV records in chunks:
    one statement read through a server-side cursor, each row a chunk of CSV_CHUNK_ROWS
    records (fills of every account have no index in time order, so PostgreSQL sorts them
    once, on its side)."""
    result = await session.stream(
        text(
            f"""SELECT string_agg(line, '' ORDER BY rn)
                  FROM (SELECT row_number() OVER (ORDER BY t.fill_time, t.id) AS rn,
                               concat_ws(',', a.id, {_quoted("a.account_number")}, a.group_id,
                                         {_CSV_TRADE_FIELDS}) || E'\\r\\n' AS line
                          FROM oms.trades t
                          JOIN account.trading_accounts a ON a.id = t.account_id
                         WHERE t.fill_time >= :s AND t.fill_time < :e
                           AND {_IN_GROUPS}
                           AND {_in_symbols("t.symbol")}
                           AND (CAST(:accounts AS uuid[]) IS NULL
                                OR t.account_id = ANY(CAST(:accounts AS uuid[])))) numbered
                 GROUP BY (rn - 1) / :n ORDER BY (rn - 1) / :n"""
        ),
        {
            "s": start,
            "e": end,
            **_scope(group_ids, symbols),
            "accounts": list(account_ids) or None,
            "n": CSV_CHUNK_ROWS,
        },
    )
    async for (data,) in result.tuples():
        yield str(data).encode()

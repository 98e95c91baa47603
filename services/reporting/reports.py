"""Each report as three steps: load from the replica (store), compute (domain), build the reply.

Every read runs in one read-only REPEATABLE READ transaction on the replica (`_snapshot`), so a
report is one consistent snapshot even while the replica replays the primary's changes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import AsyncIterator
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Any
from typing import Final

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.access import STAFF_ROLES
from services.platform.access import account_not_found
from services.platform.access import require_account
from services.platform.access import require_roles
from services.platform.db import Database
from services.platform.enums import enum_name
from services.platform.enums import enum_value
from services.platform.errors import DomainError
from services.platform.errors import field_error
from services.platform.messages import timestamp
from services.reporting import records
from services.reporting import store
from services.reporting.domain import csvrows
from services.reporting.domain.exposure import client_exposure
from services.reporting.domain.performance import CurvePoint
from services.reporting.domain.performance import PerformanceFigures
from services.reporting.domain.performance import TradeResult
from services.reporting.domain.performance import percent
from services.reporting.domain.performance import ratio
from services.reporting.domain.statement import PositionFill
from services.reporting.domain.statement import PositionValuation
from services.reporting.domain.statement import closing_figures
from services.reporting.domain.statement import replay_position
from services.reporting.domain.statement import summarize
from services.reporting.domain.statement import value_position
from services.reporting.paging import decode_token
from services.reporting.paging import encode_token
from services.reporting.paging import page_size
from tradingmesh.common.v1 import errors_pb2
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.exact import format_decimal
from tradingmesh.exact import plain_decimal
from tradingmesh.reporting.v1 import reporting_admin_service_pb2 as admin_api
from tradingmesh.reporting.v1 import reporting_pb2
from tradingmesh.reporting.v1 import reporting_service_pb2 as api
from tradingmesh.trading.margin import margin_rule
from tradingmesh.trading.money import IDENTITY
from tradingmesh.trading.money import Conversion
from tradingmesh.trading.money import exact_sum
from tradingmesh.trading.money import minor_unit
from tradingmesh.trading.money import round_money

__all__ = ["Reports", "interval_points"]

_ZERO: Final = Decimal(0)
MAX_CURVE_POINTS: Final = 1000
MAX_EXPOSURE_POINTS: Final = 10_000
REPORTING_CURRENCY: Final = "USD"

# Each interval's date_trunc unit (PostgreSQL) and its step.
_INTERVALS: Final[dict[int, tuple[str, timedelta | None]]] = {
    reporting_pb2.REPORT_INTERVAL_HOUR: ("hour", timedelta(hours=1)),
    reporting_pb2.REPORT_INTERVAL_DAY: ("day", timedelta(days=1)),
    reporting_pb2.REPORT_INTERVAL_WEEK: ("week", timedelta(weeks=1)),
    reporting_pb2.REPORT_INTERVAL_MONTH: ("month", None),
}


# The shortest length of each interval, to bound the number of points from above.
_SECONDS_PER: Final[dict[int, int]] = {
    reporting_pb2.REPORT_INTERVAL_HOUR: 3600,
    reporting_pb2.REPORT_INTERVAL_DAY: 86400,
    reporting_pb2.REPORT_INTERVAL_WEEK: 7 * 86400,
    reporting_pb2.REPORT_INTERVAL_MONTH: 28 * 86400,
}


def _next(at: datetime, interval: int) -> datetime:
    step = _INTERVALS[interval][1]
    if step is not None:
        return at + step
    return (
        at.replace(year=at.year + 1, month=1) if at.month == 12 else at.replace(month=at.month + 1)
    )


def _money(value: Decimal, currency: str) -> str:
    return format_decimal(round_money(value, currency))


def _optional(value: Decimal | None, shape: str = "ratio") -> str:
    if value is None:
        return ""
    return format_decimal(percent(value) if shape == "percent" else ratio(value))


def _floor(at: datetime, interval: int) -> datetime:
    at = at.astimezone(UTC)
    if interval == reporting_pb2.REPORT_INTERVAL_HOUR:
        return at.replace(minute=0, second=0, microsecond=0)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == reporting_pb2.REPORT_INTERVAL_DAY:
        return day
    if interval == reporting_pb2.REPORT_INTERVAL_WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def interval_points(start: datetime, end: datetime, interval: int) -> list[datetime]:
    """The start of each interval that begins in [start, end) (the first is `start` itself),
    then `end`: the points of an equity curve or exposure series."""
    points = [start]
    at = _next(_floor(start, interval), interval)
    while at < end:
        points.append(at)
        at = _next(at, interval)
    points.append(end)
    return points


def _estimate(start: datetime, end: datetime, interval: int) -> int:
    seconds = (end - start).total_seconds()
    return math.ceil(seconds / _SECONDS_PER[interval]) + 2


def _choose_interval(
    start: datetime, end: datetime, requested: int, limit: int, series: int, finest: int
) -> int:
    """The requested interval if its points fit `limit`, else VALIDATION_FAILED; unset: the
    finest from `finest` up that fits."""
    if requested:
        if _estimate(start, end, requested) * series > limit:
            raise field_error(
                errors_pb2.ERROR_REASON_VALIDATION_FAILED,
                "interval",
                f"more than {limit:,} points; choose a coarser one",
                f"the report would have more than {limit:,} points at this interval",
            )
        return requested
    for interval in sorted(_INTERVALS):
        if interval >= finest and _estimate(start, end, interval) * series <= limit:
            return interval
    raise field_error(
        errors_pb2.ERROR_REASON_VALIDATION_FAILED,
        "time_range",
        "too long; choose a shorter period",
        f"the report would have more than {limit:,} points even at MONTH",
    )


def _backwards() -> DomainError:
    return field_error(
        errors_pb2.ERROR_REASON_VALIDATION_FAILED,
        "time_range",
        "end_time must be after start_time",
        "time_range ends before it starts",
    )


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    def to_proto(self) -> types_pb2.TimeRange:
        return types_pb2.TimeRange(start_time=timestamp(self.start), end_time=timestamp(self.end))


def _period(time_range: types_pb2.TimeRange, default_start: datetime, now: datetime) -> Period:
    start = (
        time_range.start_time.ToDatetime(UTC)
        if time_range.HasField("start_time")
        else default_start
    )
    end = time_range.end_time.ToDatetime(UTC) if time_range.HasField("end_time") else now
    if end <= start:
        raise _backwards()
    return Period(start, end)


def _conversion(
    quote_currency: str,
    account_currency: str,
    prices: dict[str, store.Price],
    pairs: dict[tuple[str, str], str],
) -> Conversion | None:
    """QUOTE/ACCOUNT multiplies, ACCOUNT/QUOTE divides, at the pair's mid (ADR 0007)."""
    if quote_currency == account_currency:
        return IDENTITY
    direct = pairs.get((quote_currency, account_currency))
    if direct and direct in prices:
        return Conversion(prices[direct].mid)
    inverse = pairs.get((account_currency, quote_currency))
    if inverse and inverse in prices:
        return Conversion(prices[inverse].mid, inverse=True)
    return None


class Reports:
    """The reports of ReportingService and ReportingAdminService, over the replica."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[AsyncSession]:
        """A read-only transaction on the replica that sees one snapshot throughout (REPEATABLE
        READ, which a hot standby allows): a report's several statements agree with each other
        even while the standby replays new entries (the summary reconciles)."""
        async with self.db.read_session() as session:
            await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            yield session

    # --- ownership ----------------------------------------------------------------------------

    @staticmethod
    async def _owned(session: AsyncSession, account_id: str) -> store.AccountInfo:
        account = await store.load_account(session, account_id)
        require_account(account_id, account.user_id if account else None)
        assert account is not None
        return account

    @staticmethod
    async def _existing(session: AsyncSession, account_id: str) -> store.AccountInfo:
        """The account for another service's call (ReportingInternalService): it acts for no
        user, so only existence is checked."""
        account = await store.load_account(session, account_id)
        if account is None:
            raise account_not_found(account_id)
        return account

    # --- statement ----------------------------------------------------------------------------

    async def statement(
        self, account_id: str, time_range: types_pb2.TimeRange, *, internal: bool = False
    ) -> reporting_pb2.Statement:
        """The account's statement for the period; `internal` for another service's call
        (no caller to own the account: only its existence is checked)."""
        now = datetime.now(UTC)
        limit = store.STATEMENT_ROWS
        async with self._snapshot() as session:
            if internal:
                account = await self._existing(session, account_id)
            else:
                account = await self._owned(session, account_id)
            period = _period(time_range, account.created_at, now)
            start, end = period.start, period.end
            opening = await store.balance_before(session, account_id, start)
            closing = await store.balance_before(session, account_id, end)
            sums = await store.ledger_sums(session, account_id, start, end)
            lines = await store.ledger_lines(
                session, account_id, start, end, limit + 1, minor_unit(account.currency)
            )
            ends_now = end >= now
            deals = await store.trades_in_period(session, account_id, start, end, limit + 1)
            closed = await store.trades_in_period(
                session, account_id, start, end, limit + 1, closing_only=True
            )
            orders = await store.orders_in_period(session, account_id, start, end, limit + 1)
            working = await store.working_orders_at(session, account_id, end, limit, ends_now)
            fills = await store.positions_open_at(session, account_id, end, ends_now)
            swaps = await store.swaps_by_position(session, account_id, end, None)
            leverage, terms = await store.group_terms(session, account.group_id)
            held_symbols = {f.symbol for f in fills}
            pairs = {(t.base_currency, t.quote_currency): s for s, t in terms.items()}
            wanted = set(held_symbols)
            for symbol in held_symbols:
                quote = terms[symbol].quote_currency if symbol in terms else account.currency
                wanted.update(
                    s
                    for key, s in pairs.items()
                    if key in ((quote, account.currency), (account.currency, quote))
                )
            prices = await store.prices_at(session, account.group_id, sorted(wanted), end)

        currency = account.currency
        totals = summarize(opening, closing, sums)
        by_position: dict[str, list[PositionFill]] = defaultdict(list)
        opened: dict[str, tuple[str, datetime]] = {}
        for f in fills:
            by_position[f.position_id].append(
                PositionFill(
                    side=f.side,
                    quantity=Decimal(f.quantity),
                    price=Decimal(f.price),
                    effect=f.position_effect,
                    commission=Decimal(f.commission),
                    fill_time=f.fill_time,
                )
            )
            opened[f.position_id] = (f.symbol, f.open_time)
        open_records: list[reporting_pb2.OpenPositionRecord] = []
        valuations: list[PositionValuation] = []
        for position_id, position_fills in by_position.items():
            held = replay_position(position_fills)
            if held is None:
                continue
            symbol, open_time = opened[position_id]
            instrument = terms.get(symbol)
            price = prices.get(symbol)
            conversion = (
                _conversion(instrument.quote_currency, currency, prices, pairs)
                if instrument
                else None
            )
            if instrument is None or price is None or conversion is None:
                # No price before the period's end (or no way to convert it): valued at its
                # open price, unrealized 0, and no margin counted (ADR 0012).
                valuation = PositionValuation(held.open_price, _ZERO, _ZERO)
            else:
                rule = margin_rule(leverage, instrument.margin_rate, instrument.group_margin_rate)
                valuation = value_position(
                    held, price.bid, price.ask, instrument.contract_size, rule, currency, conversion
                )
            valuations.append(valuation)
            open_records.append(
                reporting_pb2.OpenPositionRecord(
                    position_id=position_id,
                    symbol=symbol,
                    side=enum_value(types_pb2.Side, held.side),
                    quantity=plain_decimal(held.quantity),
                    open_price=plain_decimal(held.open_price),
                    open_time=timestamp(open_time),
                    valuation_price=plain_decimal(valuation.valuation_price),
                    unrealized_pnl=_money(valuation.unrealized_pnl, currency),
                    swap=_money(swaps.get(position_id, _ZERO), currency),
                    commission=_money(held.commission, currency),
                )
            )
        figures = closing_figures(closing, valuations)
        truncated = any(len(rows) > limit for rows in (lines, deals, closed, orders))
        return reporting_pb2.Statement(
            account_id=account.account_id,
            account_number=account.account_number,
            currency=currency,
            period=period.to_proto(),
            opening_balance=_money(totals.opening_balance, currency),
            closing_balance=_money(totals.closing_balance, currency),
            deposits=_money(totals.deposits, currency),
            withdrawals=_money(totals.withdrawals, currency),
            realized_pnl=_money(totals.realized_pnl, currency),
            stop_out_loss=_money(totals.stop_out_loss, currency),
            commissions=_money(totals.commissions, currency),
            swaps=_money(totals.swaps, currency),
            adjustments=_money(totals.adjustments, currency),
            negative_balance_corrections=_money(totals.negative_balance_corrections, currency),
            closing_unrealized_pnl=_money(figures.unrealized_pnl, currency),
            closing_equity=_money(figures.equity, currency),
            closing_margin=_money(figures.used_margin, currency),
            closing_free_margin=_money(figures.free_margin, currency),
            closing_margin_level=(
                "" if figures.margin_level is None else format_decimal(figures.margin_level)
            ),
            ledger_lines=[records.ledger_line(row) for row in lines[:limit]],
            closed_trades=[_closed_trade(row) for row in closed[:limit]],
            open_positions=open_records,
            orders=[records.order_record(row) for row in orders[:limit]],
            deals=[records.trade_record(row, swaps) for row in deals[:limit]],
            working_orders=[records.order_record(row) for row in working],
            truncated=truncated,
            generate_time=timestamp(now),
        )

    # --- performance --------------------------------------------------------------------------

    async def performance(
        self, account_id: str, time_range: types_pb2.TimeRange, interval: int
    ) -> reporting_pb2.Performance:
        now = datetime.now(UTC)
        async with self._snapshot() as session:
            account = await self._owned(session, account_id)
            period = _period(time_range, account.created_at, now)
            # Snapshots are daily: HOUR only when asked for.
            chosen = _choose_interval(
                period.start,
                period.end,
                interval,
                MAX_CURVE_POINTS,
                1,
                reporting_pb2.REPORT_INTERVAL_DAY,
            )
            snapshots = await store.daily_snapshots(session, account_id, period.start, period.end)
            flows = await store.net_deposit_flows(session, account_id, period.start, period.end)
            trades = await store.closing_trade_results(
                session, account_id, period.start, period.end
            )
        points = _curve(interval_points(period.start, period.end, chosen), snapshots, flows)
        figures = PerformanceFigures.compute(
            points, [TradeResult(pnl, long) for pnl, long in trades], account.currency
        )
        currency = account.currency
        stats = figures.trades
        return reporting_pb2.Performance(
            account_id=account.account_id,
            currency=currency,
            period=period.to_proto(),
            interval=chosen,  # type: ignore[arg-type]
            equity_curve=[
                reporting_pb2.EquityPoint(
                    time=timestamp(p.time),
                    balance=_money(p.balance, currency),
                    equity=_money(p.equity, currency),
                    return_percent=_optional(r, "percent"),
                )
                for p, r in zip(figures.points, figures.returns, strict=True)
            ],
            starting_equity=_money(figures.starting_equity, currency),
            ending_equity=_money(figures.ending_equity, currency),
            net_deposits=_money(figures.net_deposits, currency),
            net_profit=_money(figures.net_profit, currency),
            total_return_percent=_optional(figures.total_return, "percent"),
            max_drawdown=_money(figures.max_drawdown, currency),
            max_drawdown_percent=format_decimal(percent(figures.max_drawdown_percent)),
            trade_count=stats.trade_count,
            winning_trade_count=stats.winning,
            losing_trade_count=stats.losing,
            win_rate_percent=_optional(stats.win_rate, "percent"),
            gross_profit=_money(stats.gross_profit, currency),
            gross_loss=_money(stats.gross_loss, currency),
            profit_factor=_optional(stats.profit_factor),
            sharpe_ratio=_optional(figures.sharpe),
            sortino_ratio=_optional(figures.sortino),
            expectancy=_money(stats.expectancy, currency) if stats.expectancy is not None else "",
            average_win=_money(stats.average_win, currency)
            if stats.average_win is not None
            else "",
            average_loss=(
                _money(stats.average_loss, currency) if stats.average_loss is not None else ""
            ),
            best_trade=_money(stats.best, currency) if stats.best is not None else "",
            worst_trade=_money(stats.worst, currency) if stats.worst is not None else "",
            long_trade_count=stats.long_count,
            short_trade_count=stats.short_count,
            long_short_ratio=_optional(stats.long_short_ratio),
        )

    # --- history ------------------------------------------------------------------------------

    async def trade_history(
        self, request: api.ListTradeHistoryRequest
    ) -> tuple[list[reporting_pb2.TradeRecord], str]:
        start, end = _bounds(request.time_range if request.HasField("time_range") else None)
        filters = f"trades|{request.account_id}|{start}|{end}|{request.symbol}"
        wanted, size = _history_page(request, start, end, filters)
        async with self._snapshot() as session:
            await self._owned(session, request.account_id)
            rows = await store.trade_page(session, wanted)
            page = rows[:size]
            closing = [r.position_id for r in page if r.position_effect in ("CLOSE", "REVERSE")]
            swaps = (
                await store.swaps_by_position(
                    session, request.account_id, end or datetime.now(UTC), closing
                )
                if closing
                else {}
            )
        token = (
            encode_token(page[-1].fill_time, page[-1].trade_id, filters) if len(rows) > size else ""
        )
        return [records.trade_record(r, swaps) for r in page], token

    async def order_history(
        self, request: api.ListOrderHistoryRequest
    ) -> tuple[list[reporting_pb2.OrderRecord], str]:
        start, end = _bounds(request.time_range if request.HasField("time_range") else None)
        statuses = sorted(enum_name(trading_pb2.OrderStatus, s) for s in request.statuses)
        filters = f"orders|{request.account_id}|{start}|{end}|{request.symbol}|{statuses}"
        wanted, size = _history_page(request, start, end, filters)
        async with self._snapshot() as session:
            await self._owned(session, request.account_id)
            rows = await store.order_page(session, wanted, statuses)
        page = rows[:size]
        token = (
            encode_token(page[-1].created_at, page[-1].order_id, filters)
            if len(rows) > size
            else ""
        )
        return [records.order_record(r) for r in page], token

    # --- exports ------------------------------------------------------------------------------

    async def export_trades(
        self, account_id: str, time_range: types_pb2.TimeRange
    ) -> AsyncIterator[bytes]:
        """The CSV file: the header row, then chunks of whole records written by PostgreSQL
        (store.CSV_CHUNK_ROWS each). Ownership is checked before the first chunk, so a foreign
        account is a plain NOT_FOUND."""
        now = datetime.now(UTC)
        async with self._snapshot() as session:
            account = await self._owned(session, account_id)
            period = _period(time_range, account.created_at, now)
            yield csvrows.header(csvrows.TRADE_COLUMNS)
            async for chunk in store.account_trades_csv(
                session, account_id, period.start, period.end
            ):
                yield chunk

    async def export_broker_trades(
        self, request: admin_api.ExportBrokerTradesRequest
    ) -> AsyncIterator[bytes]:
        require_roles(STAFF_ROLES)
        now = datetime.now(UTC)
        async with self._snapshot() as session:
            first = await store.first_fill_time(session) or now
            period = _period(request.time_range, min(first, now - timedelta(seconds=1)), now)
            yield csvrows.header(csvrows.BROKER_TRADE_COLUMNS)
            async for chunk in store.broker_trades_csv(
                session,
                period.start,
                period.end,
                list(request.group_ids),
                list(request.symbols),
                list(request.account_ids),
            ):
                yield chunk

    # --- broker views -------------------------------------------------------------------------

    async def broker_summary(
        self, request: admin_api.GetBrokerSummaryRequest
    ) -> reporting_pb2.BrokerSummary:
        require_roles(STAFF_ROLES)
        now = datetime.now(UTC)
        groups, symbols = list(request.group_ids), list(request.symbols)
        async with self._snapshot() as session:
            first = await store.first_fill_time(session) or now
            period = _period(request.time_range, min(first, now - timedelta(seconds=1)), now)
            rows, swap_rows = await store.broker_totals(
                session, period.start, period.end, groups, symbols
            )
            flows = await store.broker_money_flows(session, period.start, period.end, groups)
            client_net = await store.client_net_at(session, period.end, groups, symbols)
            names = await store.group_names(session)
            currencies = await store.instrument_currencies(session)
            pairs = {(b, q): s for s, (b, q, _) in currencies.items()}
            mids = await store.mids_at(session, sorted(currencies), [period.end])
        rc = REPORTING_CURRENCY

        def to_reporting(amount: Decimal, currency: str) -> Decimal | None:
            if currency == rc:
                return amount
            direct, inverse = pairs.get((currency, rc)), pairs.get((rc, currency))
            if direct and (direct, period.end) in mids:
                return amount * mids[(direct, period.end)]
            if inverse and (inverse, period.end) in mids:
                return amount / mids[(inverse, period.end)]
            return None

        total = _Totals()
        by_symbol: dict[str, _Totals] = defaultdict(_Totals)
        by_group: dict[str, _Totals] = defaultdict(_Totals)
        for row in rows:
            base, quote = row.base.strip(), row.quote.strip()
            # Notional in the reporting currency: exact when the instrument's base or quote is
            # it (USDJPY: lots x contract size; EURUSD: x price), else converted at the mid at
            # the period's end (ADR 0012).
            if base == rc:
                notional: Decimal | None = Decimal(row.base_notional)
            else:
                notional = to_reporting(Decimal(row.quote_notional), quote)
            for bucket in (total, by_symbol[row.symbol], by_group[row.group_id]):
                bucket.add(row, notional)
        for group_id, symbol, amount in (tuple(r) for r in swap_rows):
            for bucket in (total, by_symbol[symbol], by_group[group_id]):
                bucket.swaps += Decimal(amount)
        exposure = client_exposure(
            client_net,
            currencies,
            {symbol: mid for (symbol, _), mid in mids.items()},
            rc,
            to_reporting,
        )
        return reporting_pb2.BrokerSummary(
            period=period.to_proto(),
            reporting_currency=rc,
            deposits=_money(flows.get("DEPOSIT", _ZERO), rc),
            withdrawals=_money(
                exact_sum(flows.get("WITHDRAWAL", _ZERO), flows.get("WITHDRAWAL_REVERSAL", _ZERO)),
                rc,
            ),
            client_exposure=[
                reporting_pb2.ClientExposure(
                    symbol=e.symbol,
                    client_net_quantity=plain_decimal(e.net_quantity),
                    client_net_notional="" if e.notional is None else _money(e.notional, rc),
                )
                for e in exposure
            ],
            totals=total.to_proto(rc),
            by_instrument=[
                reporting_pb2.InstrumentTotals(symbol=s, totals=t.to_proto(rc))
                for s, t in sorted(by_symbol.items(), key=lambda kv: (-kv[1].notional, kv[0]))
            ],
            by_group=[
                reporting_pb2.GroupTotals(
                    group_id=g, group_name=names.get(g, ""), totals=t.to_proto(rc)
                )
                for g, t in sorted(by_group.items(), key=lambda kv: (-kv[1].notional, kv[0]))
            ],
            generate_time=timestamp(now),
        )

    async def exposure_history(
        self, request: admin_api.GetExposureHistoryRequest
    ) -> dict[str, Any]:
        """The fields of GetExposureHistoryResponse (`reporting_currency`, `series`)."""
        require_roles(STAFF_ROLES)
        start = request.time_range.start_time.ToDatetime(UTC)
        end = request.time_range.end_time.ToDatetime(UTC)
        if end <= start:
            raise _backwards()
        groups, symbols = list(request.group_ids), list(request.symbols)
        rc = REPORTING_CURRENCY
        async with self._snapshot() as session:
            client_rows = await store.client_net_buckets(
                session, start, end, "month", groups, symbols
            )
            wanted = sorted({r[0] for r in client_rows} | set(symbols))
            hedge_rows = (
                await store.hedge_net_buckets(session, start, end, "month", symbols)
                if not groups
                else []
            )
            if not groups:
                wanted = sorted(set(wanted) | {r[0] for r in hedge_rows})
            series_count = max(len(wanted), 1)
            interval = _choose_interval(
                start,
                end,
                request.interval,
                MAX_EXPOSURE_POINTS,
                series_count,
                reporting_pb2.REPORT_INTERVAL_HOUR,
            )
            unit = _INTERVALS[interval][0]
            client_rows = await store.client_net_buckets(session, start, end, unit, groups, wanted)
            hedge_rows = (
                await store.hedge_net_buckets(session, start, end, unit, wanted)
                if not groups
                else []
            )
            times = interval_points(start, end, interval)
            currencies = await store.instrument_currencies(session)
            conversion_pairs = {(b, q): s for s, (b, q, _) in currencies.items()}
            mids = await store.mids_at(session, sorted(currencies), times)
        client = _cumulative([tuple(r) for r in client_rows], times)
        hedge = _cumulative([tuple(r) for r in hedge_rows], times)
        series = []
        for symbol in wanted:
            base, quote, contract_size = currencies.get(symbol, (rc, rc, Decimal(1)))
            points = []
            for at in times:
                client_net = client.get((symbol, at), _ZERO)
                hedge_net = hedge.get((symbol, at), _ZERO)
                broker_net = hedge_net - client_net if not groups else -client_net
                mid = mids.get((symbol, at))
                notional = ""
                if base == rc:
                    notional = plain_decimal(broker_net * contract_size)
                elif mid is not None:
                    in_quote = broker_net * contract_size * mid
                    converted = _convert_mid(in_quote, quote, rc, conversion_pairs, mids, at)
                    if converted is not None:
                        notional = _money(converted, rc)
                points.append(
                    reporting_pb2.ExposurePoint(
                        time=timestamp(at),
                        client_net_quantity=plain_decimal(client_net),
                        hedge_net_quantity="" if groups else plain_decimal(hedge_net),
                        broker_net_quantity="" if groups else plain_decimal(broker_net),
                        broker_net_notional=notional,
                    )
                )
            series.append(reporting_pb2.InstrumentExposureSeries(symbol=symbol, points=points))
        return {"reporting_currency": rc, "series": series}


def _convert_mid(
    amount: Decimal,
    currency: str,
    rc: str,
    pairs: dict[tuple[str, str], str],
    mids: dict[tuple[str, datetime], Decimal],
    at: datetime,
) -> Decimal | None:
    if currency == rc:
        return amount
    direct, inverse = pairs.get((currency, rc)), pairs.get((rc, currency))
    if direct and (direct, at) in mids:
        return amount * mids[(direct, at)]
    if inverse and (inverse, at) in mids:
        return amount / mids[(inverse, at)]
    return None


def _cumulative(
    rows: Sequence[tuple[Any, ...]], times: Sequence[datetime]
) -> dict[tuple[str, datetime], Decimal]:
    """The net quantity of each symbol at each point. The first point (the period's start) has
    what was filled before the period (bucket NULL); every later point sits on an interval
    boundary or is the period's end, so a bucket (the start of its fills' interval) counts at a
    point once it starts before the point."""
    buckets: dict[str, list[tuple[datetime | None, Decimal]]] = defaultdict(list)
    for symbol, bucket, quantity in rows:
        buckets[symbol].append((bucket, Decimal(quantity)))
    result: dict[tuple[str, datetime], Decimal] = {}
    for symbol, entries in buckets.items():
        net = sum((q for b, q in entries if b is None), _ZERO)
        dated = sorted((b, q) for b, q in entries if b is not None)
        cursor = 0
        for index, at in enumerate(times):
            while index > 0 and cursor < len(dated) and dated[cursor][0] < at:
                net += dated[cursor][1]
                cursor += 1
            result[(symbol, at)] = net
    return result


class _Totals:
    def __init__(self) -> None:
        self.trades = 0
        self.accounts: set[str] = set()
        self.lots = _ZERO
        self.notional = _ZERO
        self.realized = _ZERO
        self.commissions = _ZERO
        self.swaps = _ZERO

    def add(self, row: Row[Any], notional: Decimal | None) -> None:
        self.trades += int(row.trades)
        self.accounts.update(row.account_ids)
        self.lots += Decimal(row.lots)
        self.notional += notional or _ZERO
        self.realized += Decimal(row.realized)
        self.commissions += Decimal(row.commissions)

    def to_proto(self, currency: str) -> reporting_pb2.TradingTotals:
        return reporting_pb2.TradingTotals(
            trade_count=self.trades,
            account_count=len(self.accounts),
            volume_lots=plain_decimal(self.lots),
            notional_volume=_money(self.notional, currency),
            client_realized_pnl=_money(self.realized, currency),
            commissions=_money(self.commissions, currency),
            swaps=_money(self.swaps, currency),
        )


def _bounds(time_range: types_pb2.TimeRange | None) -> tuple[datetime | None, datetime | None]:
    if time_range is None:
        return None, None
    start = time_range.start_time.ToDatetime(UTC) if time_range.HasField("start_time") else None
    end = time_range.end_time.ToDatetime(UTC) if time_range.HasField("end_time") else None
    return start, end


def _curve(
    times: Sequence[datetime],
    snapshots: Sequence[store.Snapshot],
    flows: Sequence[tuple[datetime, Decimal]],
) -> list[CurvePoint]:
    """The equity curve at `times`: at each point the last snapshot taken at or before it (none
    yet: balance and equity 0), with the net deposits booked since the previous point."""
    points: list[CurvePoint] = []
    snap_index = -1
    flow_index = 0
    for at in times:
        while snap_index + 1 < len(snapshots) and snapshots[snap_index + 1].time <= at:
            snap_index += 1
        flow_total = _ZERO
        while flow_index < len(flows) and flows[flow_index][0] < at:
            flow_total += flows[flow_index][1]
            flow_index += 1
        snapshot = snapshots[snap_index] if snap_index >= 0 else None
        points.append(
            CurvePoint(
                time=at,
                balance=snapshot.balance if snapshot else _ZERO,
                equity=snapshot.equity if snapshot else _ZERO,
                net_deposits=flow_total if points else _ZERO,
            )
        )
    return points


def _closed_trade(row: Row[Any]) -> reporting_pb2.ClosedTrade:
    return reporting_pb2.ClosedTrade(
        trade_id=row.trade_id,
        position_id=row.position_id,
        symbol=row.symbol,
        # The position's side: a closing fill is on the other side of what it closes.
        side=enum_value(types_pb2.Side, "SELL" if row.side == "BUY" else "BUY"),
        quantity=row.quantity,
        open_price=row.position_open_price,
        close_price=row.price,
        open_time=records.from_us(row.position_open_us),
        close_time=records.from_us(row.fill_us),
        realized_pnl=row.realized_pnl,
        commission=row.commission,
        origin=enum_value(trading_pb2.OrderOrigin, row.origin),
    )


def _history_page(
    request: api.ListTradeHistoryRequest | api.ListOrderHistoryRequest,
    start: datetime | None,
    end: datetime | None,
    filters: str,
) -> tuple[store.HistoryPage, int]:
    """The page a history request asks for (one row more than its size, to tell whether
    another follows; its token must have been made for the same `filters`), and its size."""
    after = decode_token(request.page_token, filters)
    size = page_size(request.page_size)
    return store.HistoryPage(request.account_id, start, end, request.symbol, after, size + 1), size

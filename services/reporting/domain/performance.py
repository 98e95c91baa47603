"""Portfolio performance from an equity curve and the closed trades of a period (ADR 0012).

Every formula here is written in ADR 0012, "Performance". Money figures (equity, drawdown,
profit, averages) are exact Decimals rounded once to the account currency; ratios (returns,
Sharpe, Sortino, profit factor) are Decimals computed at 50 significant digits and rounded half
to even for the wire: percents to 2 decimals, ratios to 4.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN
from decimal import Context
from decimal import Decimal
from typing import Final

from tradingmesh.trading.money import exact_difference
from tradingmesh.trading.money import exact_sum
from tradingmesh.trading.money import round_money

__all__ = [
    "CurvePoint",
    "PerformanceFigures",
    "TradeResult",
    "TradeStats",
    "interval_returns",
    "max_drawdown",
    "max_drawdown_percent",
    "percent",
    "ratio",
    "sharpe_ratio",
    "sortino_ratio",
    "time_weighted_return",
    "trade_stats",
]

_MATH: Final = Context(prec=50, rounding=ROUND_HALF_EVEN)
_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
_HUNDRED: Final = Decimal(100)
_PERCENT_PLACES: Final = Decimal("0.01")
_RATIO_PLACES: Final = Decimal("0.0001")


def percent(fraction: Decimal) -> Decimal:
    """A fraction (0.125) as a percent for the wire (12.50), half to even, 2 decimals."""
    value = _MATH.multiply(fraction, _HUNDRED).quantize(_PERCENT_PLACES, rounding=ROUND_HALF_EVEN)
    return value.copy_abs() if value.is_zero() else value


def ratio(value: Decimal) -> Decimal:
    """A ratio for the wire, half to even, 4 decimals."""
    rounded = value.quantize(_RATIO_PLACES, rounding=ROUND_HALF_EVEN)
    return rounded.copy_abs() if rounded.is_zero() else rounded


@dataclass(frozen=True)
class CurvePoint:
    """One point of an equity curve, with the net deposits (deposits minus withdrawals, net of
    reversals) booked since the previous point."""

    time: datetime
    balance: Decimal
    equity: Decimal
    net_deposits: Decimal = _ZERO


def interval_returns(points: Sequence[CurvePoint]) -> list[Decimal | None]:
    """The return of each interval, as a fraction: r_i = (E_i - E_{i-1} - F_i) / E_{i-1}, with
    F_i the net deposits of interval i (counted at its end, so a deposit is never a gain).
    One entry per point; None for the first point and where E_{i-1} <= 0 (no capital at work)."""
    returns: list[Decimal | None] = [None] * min(len(points), 1)
    for previous, point in itertools.pairwise(points):
        if previous.equity <= 0:
            returns.append(None)
            continue
        gain = exact_difference(exact_difference(point.equity, previous.equity), point.net_deposits)
        returns.append(_MATH.divide(gain, previous.equity))
    return returns


def _known(returns: Sequence[Decimal | None]) -> list[Decimal]:
    return [r for r in returns if r is not None]


def time_weighted_return(returns: Sequence[Decimal | None]) -> Decimal | None:
    """The compounded return: prod(1 + r_i) - 1 over the known interval returns; None if none."""
    known = _known(returns)
    if not known:
        return None
    growth = _ONE
    for r in known:
        growth = _MATH.multiply(growth, _MATH.add(_ONE, r))
    return _MATH.subtract(growth, _ONE)


def max_drawdown(points: Sequence[CurvePoint]) -> Decimal:
    """The largest fall, as a positive amount, of V_i = E_i - (cumulative net deposits after the
    first point) from its running peak to a later point: a withdrawal is not a drawdown, and a
    deposit is not a recovery. 0 if V never fell."""
    worst = _ZERO
    peak: Decimal | None = None
    flows = _ZERO
    for index, point in enumerate(points):
        if index > 0:
            flows = exact_sum(flows, point.net_deposits)
        value = exact_difference(point.equity, flows)
        peak = value if peak is None or value > peak else peak
        worst = max(worst, exact_difference(peak, value))
    return worst


def max_drawdown_percent(returns: Sequence[Decimal | None]) -> Decimal:
    """The largest fall of the time-weighted index W (W_0 = 1, W_i = W_{i-1} x (1 + r_i)) from
    its running peak, as a fraction of that peak: max (peak - W_i) / peak. 0 if W never fell."""
    index = _ONE
    peak = _ONE
    worst = _ZERO
    for r in _known(returns):
        index = _MATH.multiply(index, _MATH.add(_ONE, r))
        peak = max(peak, index)
        if peak > 0:
            worst = max(worst, _MATH.divide(_MATH.subtract(peak, index), peak))
    return worst


def _mean(values: Sequence[Decimal]) -> Decimal:
    total = _ZERO
    for v in values:
        total = _MATH.add(total, v)
    return _MATH.divide(total, Decimal(len(values)))


def sharpe_ratio(returns: Sequence[Decimal | None]) -> Decimal | None:
    """mean(r) / s(r), s the sample standard deviation sqrt(sum(r_i - mean)² / (n - 1)); risk-free
    rate 0, not annualized. None with fewer than 2 returns or s = 0."""
    known = _known(returns)
    if len(known) < 2:
        return None
    mean = _mean(known)
    squares = _ZERO
    for r in known:
        deviation = _MATH.subtract(r, mean)
        squares = _MATH.add(squares, _MATH.multiply(deviation, deviation))
    deviation = _MATH.sqrt(_MATH.divide(squares, Decimal(len(known) - 1)))
    if deviation.is_zero():
        return None
    return _MATH.divide(mean, deviation)


def sortino_ratio(returns: Sequence[Decimal | None]) -> Decimal | None:
    """mean(r) / d, d the downside deviation sqrt(sum min(r_i, 0)² / n) over all n returns;
    risk-free rate and target 0, not annualized. None with fewer than 2 returns or no negative
    one."""
    known = _known(returns)
    if len(known) < 2:
        return None
    squares = _ZERO
    for r in known:
        if r < 0:
            squares = _MATH.add(squares, _MATH.multiply(r, r))
    if squares.is_zero():
        return None
    downside = _MATH.sqrt(_MATH.divide(squares, Decimal(len(known))))
    return _MATH.divide(_mean(known), downside)


@dataclass(frozen=True)
class TradeResult:
    """A closing fill: its realized P&L (account currency) and whether it closed a long
    position."""

    realized_pnl: Decimal
    closed_long: bool


@dataclass(frozen=True)
class TradeStats:
    trade_count: int
    winning: int
    losing: int
    gross_profit: Decimal
    gross_loss: Decimal
    win_rate: Decimal | None  # fraction
    profit_factor: Decimal | None
    expectancy: Decimal | None
    average_win: Decimal | None
    average_loss: Decimal | None
    best: Decimal | None
    worst: Decimal | None
    long_count: int
    short_count: int
    long_short_ratio: Decimal | None


def trade_stats(trades: Sequence[TradeResult], currency: str) -> TradeStats:
    """The trade statistics of ADR 0012: a trade wins when its P&L is above 0, loses below 0
    (a zero trade counts in trade_count only)."""
    wins = [t.realized_pnl for t in trades if t.realized_pnl > 0]
    losses = [t.realized_pnl for t in trades if t.realized_pnl < 0]
    gross_profit = exact_sum(_ZERO, *wins)
    gross_loss = exact_sum(_ZERO, *losses)
    count = len(trades)
    longs = sum(1 for t in trades if t.closed_long)
    shorts = count - longs

    def average(total: Decimal, n: int) -> Decimal | None:
        return round_money(_MATH.divide(total, Decimal(n)), currency) if n else None

    return TradeStats(
        trade_count=count,
        winning=len(wins),
        losing=len(losses),
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        win_rate=_MATH.divide(Decimal(len(wins)), Decimal(count)) if count else None,
        profit_factor=_MATH.divide(gross_profit, -gross_loss) if losses else None,
        expectancy=average(exact_sum(gross_profit, gross_loss), count),
        average_win=average(gross_profit, len(wins)),
        average_loss=average(gross_loss, len(losses)),
        best=max((t.realized_pnl for t in trades), default=None),
        worst=min((t.realized_pnl for t in trades), default=None),
        long_count=longs,
        short_count=shorts,
        long_short_ratio=_MATH.divide(Decimal(longs), Decimal(shorts)) if shorts else None,
    )


@dataclass(frozen=True)
class PerformanceFigures:
    """Everything GetPerformance reports, computed from a curve and the period's trades."""

    points: list[CurvePoint]
    returns: list[Decimal | None]
    starting_equity: Decimal
    ending_equity: Decimal
    net_deposits: Decimal
    net_profit: Decimal
    total_return: Decimal | None
    max_drawdown: Decimal
    max_drawdown_percent: Decimal
    sharpe: Decimal | None
    sortino: Decimal | None
    trades: TradeStats

    @classmethod
    def compute(
        cls, points: Sequence[CurvePoint], trades: Sequence[TradeResult], currency: str
    ) -> PerformanceFigures:
        curve = list(points)
        returns = interval_returns(curve)
        starting = curve[0].equity if curve else _ZERO
        ending = curve[-1].equity if curve else _ZERO
        net_deposits = exact_sum(_ZERO, *(p.net_deposits for p in curve[1:]))
        return cls(
            points=curve,
            returns=returns,
            starting_equity=starting,
            ending_equity=ending,
            net_deposits=net_deposits,
            net_profit=exact_difference(exact_difference(ending, starting), net_deposits),
            total_return=time_weighted_return(returns),
            max_drawdown=max_drawdown(curve),
            max_drawdown_percent=max_drawdown_percent(returns),
            sharpe=sharpe_ratio(returns),
            sortino=sortino_ratio(returns),
            trades=trade_stats(trades, currency),
        )

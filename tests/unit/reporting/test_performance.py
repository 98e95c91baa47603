"""Performance maths on a fixed equity series and trade list, against hand-computed values
(ADR 0012, "Performance")."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal

from services.reporting.domain.performance import CurvePoint
from services.reporting.domain.performance import PerformanceFigures
from services.reporting.domain.performance import TradeResult
from services.reporting.domain.performance import interval_returns
from services.reporting.domain.performance import max_drawdown
from services.reporting.domain.performance import max_drawdown_percent
from services.reporting.domain.performance import percent
from services.reporting.domain.performance import ratio
from services.reporting.domain.performance import sharpe_ratio
from services.reporting.domain.performance import sortino_ratio
from services.reporting.domain.performance import time_weighted_return
from services.reporting.domain.performance import trade_stats

D = Decimal
DAY0 = datetime(2026, 11, 2, tzinfo=UTC)


def _curve() -> list[CurvePoint]:
    """Five daily points: +10 %, -10 %, a 2,000 deposit and +10 %, a 500 withdrawal and -5 %.

    r1 = (11000 - 10000 - 0) / 10000 = 0.1
    r2 = (9900 - 11000 - 0) / 11000 = -0.1
    r3 = (12890 - 9900 - 2000) / 9900 = 990 / 9900 = 0.1
    r4 = (11745.5 - 12890 - (-500)) / 12890 = -644.5 / 12890 = -0.05
    """
    values = [
        (D("10000"), D("0")),
        (D("11000"), D("0")),
        (D("9900"), D("0")),
        (D("12890"), D("2000")),
        (D("11745.5"), D("-500")),
    ]
    return [
        CurvePoint(time=DAY0 + timedelta(days=i), balance=e, equity=e, net_deposits=f)
        for i, (e, f) in enumerate(values)
    ]


def test_interval_returns_take_out_deposits_and_withdrawals() -> None:
    assert interval_returns(_curve()) == [None, D("0.1"), D("-0.1"), D("0.1"), D("-0.05")]


def test_a_return_after_zero_equity_is_unknown() -> None:
    points = [
        CurvePoint(DAY0, D(0), D(0)),
        CurvePoint(DAY0 + timedelta(days=1), D(1000), D(1000), D(1000)),
        CurvePoint(DAY0 + timedelta(days=2), D(1100), D(1100)),
    ]

    assert interval_returns(points) == [None, None, D("0.1")]


def test_time_weighted_return_compounds_the_interval_returns() -> None:
    # 1.1 x 0.9 x 1.1 x 0.95 - 1 = 0.03455
    total = time_weighted_return(interval_returns(_curve()))

    assert total == D("0.03455")
    assert percent(total) == D("3.46")  # 3.455 half to even


def test_absolute_drawdown_ignores_deposits_and_withdrawals() -> None:
    # V = E - flows: 10000, 11000, 9900, 10890, 10245.5; peak 11000, deepest 9900.
    assert max_drawdown(_curve()) == D("1100")


def test_relative_drawdown_is_measured_on_the_time_weighted_index() -> None:
    # W = 1, 1.1, 0.99, 1.089, 1.03455: (1.1 - 0.99) / 1.1 = 0.1.
    assert max_drawdown_percent(interval_returns(_curve())) == D("0.1")


def test_sharpe_is_mean_over_sample_deviation() -> None:
    # mean 0.0125; squared deviations 0.00765625 + 0.01265625 + 0.00765625 + 0.00390625
    # = 0.031875, / 3 = 0.010625, sqrt = 0.10307764...; 0.0125 / 0.10307764 = 0.12126781...
    value = sharpe_ratio(interval_returns(_curve()))

    assert value is not None
    assert ratio(value) == D("0.1213")


def test_sortino_is_mean_over_downside_deviation() -> None:
    # downside: (0.01 + 0.0025) / 4 = 0.003125, sqrt = 0.05590170; 0.0125 / that = 0.2236068
    value = sortino_ratio(interval_returns(_curve()))

    assert value is not None
    assert ratio(value) == D("0.2236")


def test_ratios_need_two_returns_and_some_spread() -> None:
    assert sharpe_ratio([None, D("0.1")]) is None
    assert sharpe_ratio([D("0.1"), D("0.1")]) is None
    assert sortino_ratio([D("0.1"), D("0.2")]) is None


def test_trade_statistics() -> None:
    trades = [
        TradeResult(D("100"), closed_long=True),
        TradeResult(D("-50"), closed_long=True),
        TradeResult(D("30"), closed_long=False),
        TradeResult(D("-20"), closed_long=False),
        TradeResult(D("40"), closed_long=True),
    ]

    stats = trade_stats(trades, "USD")

    assert (stats.trade_count, stats.winning, stats.losing) == (5, 3, 2)
    assert (stats.gross_profit, stats.gross_loss) == (D("170"), D("-70"))
    assert stats.win_rate is not None
    assert percent(stats.win_rate) == D("60.00")
    assert stats.profit_factor is not None
    assert ratio(stats.profit_factor) == D("2.4286")
    assert stats.expectancy == D("20.00")  # (170 - 70) / 5
    assert stats.average_win == D("56.67")  # 170 / 3, half to even
    assert stats.average_loss == D("-35.00")
    assert (stats.best, stats.worst) == (D("100"), D("-50"))
    assert (stats.long_count, stats.short_count) == (3, 2)
    assert stats.long_short_ratio == D("1.5")


def test_no_trades_leaves_the_ratios_empty() -> None:
    stats = trade_stats([], "USD")

    assert stats.trade_count == 0
    assert stats.win_rate is None
    assert stats.profit_factor is None
    assert stats.expectancy is None
    assert stats.best is None
    assert stats.long_short_ratio is None


def test_figures_of_a_period() -> None:
    figures = PerformanceFigures.compute(_curve(), [], "USD")

    assert figures.starting_equity == D("10000")
    assert figures.ending_equity == D("11745.5")
    assert figures.net_deposits == D("1500")
    # 11745.5 - 10000 - 1500
    assert figures.net_profit == D("245.5")

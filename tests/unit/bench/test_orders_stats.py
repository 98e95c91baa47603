"""The arithmetic of the order benchmark: pacing, the buy/sell plan, summaries and verdicts."""

from __future__ import annotations

import itertools

import pytest

from bench.orders_stats import MIN_FILLED_SHARE
from bench.orders_stats import filled_share
from bench.orders_stats import judge
from bench.orders_stats import latency_from
from bench.orders_stats import latency_summary
from bench.orders_stats import order_leg
from bench.orders_stats import ratio
from bench.orders_stats import send_time
from bench.orders_stats import shares


def test_workers_together_offer_exactly_the_rate_evenly_spaced() -> None:
    times = sorted(
        send_time(100.0, 1000.0, worker, 3, index) for worker in range(3) for index in range(400)
    )

    gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert gaps == {0.001}
    assert times[0] == 100.0
    assert len([t for t in times if t < 101.0]) == 1000


def test_one_worker_sends_at_the_full_rate() -> None:
    assert send_time(0.0, 200.0, 0, 1, 0) == 0.0
    assert send_time(0.0, 200.0, 0, 1, 200) == pytest.approx(1.0)


@pytest.mark.parametrize(("rate", "worker", "workers"), [(0, 0, 1), (10, 2, 2), (10, -1, 2)])
def test_a_meaningless_schedule_is_refused(rate: float, worker: int, workers: int) -> None:
    with pytest.raises(ValueError, match="rate"):
        send_time(0.0, rate, worker, workers, 0)


def test_a_late_call_counts_from_when_it_was_due() -> None:
    # Due at 10.000, sent 30 ms late, answered 1 ms after the send: the caller waited 31 ms.
    assert latency_from(10.000, 10.030, 10.031) == pytest.approx(31.0)


def test_an_early_call_counts_from_when_it_was_sent() -> None:
    assert latency_from(10.001, 10.0005, 10.0015) == pytest.approx(1.0)


def test_each_account_buys_then_sells_the_same_symbol_then_moves_on() -> None:
    legs = [order_leg(n, ("EURUSD", "GBPUSD")) for n in range(6)]

    assert legs == [
        (True, "EURUSD"),
        (False, "EURUSD"),
        (True, "GBPUSD"),
        (False, "GBPUSD"),
        (True, "EURUSD"),
        (False, "EURUSD"),
    ]


def test_an_empty_symbol_list_is_refused() -> None:
    with pytest.raises(ValueError, match="no symbols"):
        order_leg(0, ())


def test_shares_cover_the_total_larger_first() -> None:
    assert shares(10, 3) == [4, 3, 3]
    assert shares(2, 4) == [1, 1, 0, 0]


def test_latency_summary_uses_nearest_rank_percentiles() -> None:
    summary = latency_summary(float(n) for n in range(1000, 0, -1))  # 1..1000 ms, unsorted

    assert summary["count"] == 1000
    assert summary["p50"] == 500.0
    assert summary["p99"] == 990.0
    assert summary["p99_9"] == 999.0
    assert summary["max"] == 1000.0
    assert summary["mean"] == 500.5


def test_latency_summary_of_nothing_has_no_figures() -> None:
    assert latency_summary([]) == {
        "count": 0,
        "p50": None,
        "p90": None,
        "p99": None,
        "p99_9": None,
        "max": None,
        "mean": None,
    }


def test_filled_share_counts_only_the_success_outcome() -> None:
    assert filled_share({"FILLED": 98, "REJECTED INSUFFICIENT_MARGIN": 2}, "FILLED") == 0.98
    assert filled_share({"RPC UNIMPLEMENTED": 5}, "FILLED") == 0.0
    assert filled_share({}, "FILLED") is None


def test_ratio_needs_both_figures_and_a_positive_floor() -> None:
    assert ratio(3.0, 1.5) == 2.0
    assert ratio(None, 1.0) is None
    assert ratio(1.0, 0.0) is None


def test_fast_filled_orders_meet_every_target() -> None:
    assert judge(1.5, 8.0, 1200.0, 1.0) == {"p50": True, "p99": True, "orders_per_second": True}


def test_slow_or_too_few_orders_miss_the_targets() -> None:
    assert judge(2.5, 12.0, 999.0, 1.0) == {"p50": False, "p99": False, "orders_per_second": False}


def test_fast_rejections_meet_no_target() -> None:
    share = MIN_FILLED_SHARE - 0.01

    assert judge(0.5, 1.0, 5000.0, share) == {
        "p50": False,
        "p99": False,
        "orders_per_second": False,
    }


def test_what_was_not_measured_is_not_judged() -> None:
    assert judge(None, None, None, None) == {"p50": None, "p99": None, "orders_per_second": None}


def test_a_phase_in_which_nothing_filled_misses_the_latency_targets() -> None:
    assert judge(None, None, None, 0.0) == {
        "p50": False,
        "p99": False,
        "orders_per_second": False,
    }

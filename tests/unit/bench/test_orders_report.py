"""How the order benchmark judges and compares its phases (bench.orders)."""

from __future__ import annotations

from typing import Any

from bench.orders import compare_to_echo
from bench.orders import table
from bench.orders import verdicts


def _phase(
    kind: str,
    mode: str,
    rate: float | None,
    p50: float | None,
    p99: float | None,
    per_second: float,
    share: float | None,
) -> dict[str, Any]:
    latency = {"count": 100, "p50": p50, "p90": p99, "p99": p99, "p99_9": p99, "max": p99}
    return {
        "kind": kind,
        "mode": mode,
        "offered_per_second": rate,
        "concurrency": 32 if mode == "full" else None,
        "latency_ms": latency,
        "latency_ms_every_answer": latency,
        "latency_ms_from_send": latency,
        "send_lag_ms": latency,
        "answered_per_second": per_second,
        "succeeded_per_second": per_second,
        "success_share": share,
        "not_successful": {} if share == 1.0 else {"REJECTED INSUFFICIENT_MARGIN": 5},
        "server_time": {},
        "envoy_resets_and_overflows": {},
        "dropped": 0,
        "unfinished": 0,
    }


def test_latency_is_judged_at_the_target_rate_and_throughput_by_the_best_phase() -> None:
    phases = [
        _phase("orders", "rate", 200.0, 1.0, 3.0, 200.0, 1.0),
        _phase("orders", "rate", 1000.0, 1.8, 12.0, 1000.0, 1.0),
        _phase("orders", "full", None, 5.0, 20.0, 1500.0, 1.0),
    ]

    judged = verdicts(phases)

    assert judged["latency_judged_at_per_second"] == 1000.0
    assert (judged["p50"], judged["p99"]) == (True, False)
    assert judged["orders_per_second"] is True
    assert judged["orders_per_second_value"] == 1500.0


def test_without_the_target_rate_latency_is_judged_at_the_highest_rate() -> None:
    judged = verdicts([_phase("orders", "rate", 100.0, 1.0, 3.0, 100.0, 1.0)])

    assert judged["latency_judged_at_per_second"] == 100.0
    assert (judged["p50"], judged["p99"]) == (True, True)
    assert judged["orders_per_second"] is False


def test_a_fast_phase_of_rejections_meets_no_target() -> None:
    phases = [
        _phase("orders", "rate", 1000.0, 0.5, 1.0, 1000.0, 0.5),
        _phase("orders", "full", None, 0.5, 1.0, 5000.0, 0.5),
    ]

    judged = verdicts(phases)

    assert (judged["p50"], judged["p99"], judged["orders_per_second"]) == (False, False, False)


def test_orders_are_compared_to_the_echo_of_the_same_setting() -> None:
    phases = [
        _phase("echo", "rate", 1000.0, 0.5, 2.0, 1000.0, 1.0),
        _phase("orders", "rate", 1000.0, 1.5, 8.0, 1000.0, 1.0),
        _phase("echo", "full", None, 1.0, 4.0, 3000.0, 1.0),
        _phase("orders", "full", None, 3.0, 9.0, 1200.0, 1.0),
        _phase("orders", "rate", 200.0, 1.0, 3.0, 200.0, 1.0),  # no echo at 200/s
    ]

    compare_to_echo(phases)

    assert phases[1]["ratio_to_echo"] == {"p50": 3.0, "p99": 4.0, "p99_9": 4.0, "per_second": 1.0}
    assert phases[3]["ratio_to_echo"]["per_second"] == 0.4
    assert "ratio_to_echo" not in phases[4]


def test_the_table_shows_every_outcome_that_is_not_filled() -> None:
    phases = [_phase("orders", "rate", 1000.0, 1.5, 8.0, 1000.0, 0.9)]
    summary = {"phases": phases, "verdicts": verdicts(phases)}

    rows = table(summary)

    assert ("  not FILLED", "REJECTED INSUFFICIENT_MARGIN 5", "", "") in rows
    first = rows[0]
    assert first[0] == "orders at 1,000/s: p50 / p99 / p99.9 ms (FILLED)"
    assert first[3] == "NOT met / NOT met"  # fast, but only 90 % filled

"""The arithmetic of bench.orders, without I/O: when each call is due, which order an account
sends next, how latencies are summed up, and how a phase is judged against the targets.

Kept apart from the load generator so that it can be unit-tested (tests/unit/bench/).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from bench.market_data import percentile

# SPEC.md, "Speed": an order round trip through Envoy with a durable commit before the ack.
TARGET_P50_MS = 2.0
TARGET_P99_MS = 10.0
TARGET_ORDERS_PER_SECOND = 1_000
# A target counts as met only if at least this share of the phase's orders FILLED: a REJECTED
# order is a fast answer, not a round trip that did the work.
MIN_FILLED_SHARE = 0.99


def send_time(start: float, rate: float, worker: int, workers: int, index: int) -> float:
    """When the `index`-th call of `worker` is due, open loop: the workers take turns in one
    evenly spaced stream of `rate` calls/s in all, so together they offer exactly `rate`,
    whatever the answers do."""
    if rate <= 0 or workers <= 0 or not 0 <= worker < workers:
        raise ValueError(f"rate {rate}, worker {worker} of {workers}")
    return start + (index * workers + worker) / rate


def latency_from(scheduled: float, sent: float, answered: float) -> float:
    """An open-loop call's latency in ms, counted from when it was due, so a client or server
    that falls behind shows up in the figures instead of thinning the load (coordinated
    omission). A call sent before it was due (the pacer wakes up to 1 ms early, because the
    event loop sleeps in whole milliseconds) is counted from when it was sent."""
    return (answered - min(scheduled, sent)) * 1000.0


def order_leg(sequence: int, symbols: Sequence[str]) -> tuple[bool, str]:
    """(buy?, symbol) of an account's `sequence`-th order: a buy, then a sell of the same symbol,
    then the next symbol; the account's positions return to flat every second order, so its
    margin never runs out however long the run."""
    if not symbols:
        raise ValueError("no symbols")
    return sequence % 2 == 0, symbols[(sequence // 2) % len(symbols)]


def shares(total: int, parts: int) -> list[int]:
    """`total` split into `parts` near-equal whole shares, the larger first."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def latency_summary(latencies_ms: Iterable[float]) -> dict[str, Any]:
    """Count, nearest-rank percentiles and max, in ms (None when there is nothing)."""
    ordered = sorted(latencies_ms)

    def at(fraction: float) -> float | None:
        return round(percentile(ordered, fraction), 3) if ordered else None

    return {
        "count": len(ordered),
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "p99_9": at(0.999),
        "max": round(ordered[-1], 3) if ordered else None,
        "mean": round(sum(ordered) / len(ordered), 3) if ordered else None,
    }


def filled_share(outcomes: Mapping[str, int], success: str) -> float | None:
    """The share of the outcomes that are `success` (None when there are none)."""
    total = sum(outcomes.values())
    return outcomes.get(success, 0) / total if total else None


def ratio(value: float | None, floor: float | None) -> float | None:
    """value / floor, rounded; None if either is unknown or the floor is zero."""
    if value is None or floor is None or floor <= 0:
        return None
    return round(value / floor, 2)


def judge(
    p50_ms: float | None, p99_ms: float | None, per_second: float | None, share: float | None
) -> dict[str, bool | None]:
    """Each target met (True), not met (False), or not judged (None: not measured). A phase in
    which fewer than MIN_FILLED_SHARE of the orders FILLED meets no target, even one it has no
    figure for (no order FILLED: no latency)."""
    enough = share is not None and share >= MIN_FILLED_SHARE

    def verdict(value: float | None, ok: bool) -> bool | None:
        if value is None:
            return None if share is None or enough else False
        return enough and ok

    return {
        "p50": verdict(p50_ms, p50_ms is not None and p50_ms <= TARGET_P50_MS),
        "p99": verdict(p99_ms, p99_ms is not None and p99_ms <= TARGET_P99_MS),
        "orders_per_second": verdict(
            per_second, per_second is not None and per_second >= TARGET_ORDERS_PER_SECOND
        ),
    }

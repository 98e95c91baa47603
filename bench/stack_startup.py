"""Benchmark: seconds for `tradingmesh up` to bring a new stack to healthy, and `down` to stop it.

Runs N cold starts of a fresh stack (new data directory each time) on a free port block, with the
same code as `tradingmesh up`, and reports seconds to healthy and to stopped. Target (issue #3):
healthy in under 60 s after installs. Prints a table and writes JSON (default
bench/results/stack_startup.json).

    .venv/bin/python -m bench.stack_startup [--runs 3] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path

from stack.orchestrator import StackConfig
from stack.orchestrator import down
from stack.orchestrator import up
from stack.ports import find_free_base

TARGET_SECONDS = 60.0


def run_once(index: int) -> dict[str, float]:
    config = StackConfig(
        name=f"bench-{os.getpid()}-{index}", base_port=find_free_base(), budget=300
    )
    started = time.monotonic()
    try:
        state = up(config)
        healthy = time.monotonic() - started
        if not all(component.healthy for component in state.components):
            raise SystemExit(f"run {index}: not every component is healthy")
    finally:
        stopping = time.monotonic()
        down(config.name, purge=True)
        stopped = time.monotonic() - stopping
    return {"seconds_to_healthy": round(healthy, 2), "seconds_to_stop": round(stopped, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/stack_startup.json"))
    args = parser.parse_args()

    runs = [run_once(i) for i in range(args.runs)]
    healthy = [r["seconds_to_healthy"] for r in runs]
    stopped = [r["seconds_to_stop"] for r in runs]
    summary = {
        "benchmark": "stack_startup",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
        "target_seconds_to_healthy": TARGET_SECONDS,
        "runs": runs,
        "median_seconds_to_healthy": statistics.median(healthy),
        "max_seconds_to_healthy": max(healthy),
        "median_seconds_to_stop": statistics.median(stopped),
        "meets_target": max(healthy) < TARGET_SECONDS,
    }
    print(f"{'run':>4} {'to healthy (s)':>15} {'to stopped (s)':>15}")
    for index, run in enumerate(runs, 1):
        print(f"{index:>4} {run['seconds_to_healthy']:>15.1f} {run['seconds_to_stop']:>15.1f}")
    median_healthy, median_stop = statistics.median(healthy), statistics.median(stopped)
    print(f"{'med':>4} {median_healthy:>15.1f} {median_stop:>15.1f}")
    verdict = "met" if summary["meets_target"] else "NOT met"
    print(f"target: healthy < {TARGET_SECONDS:.0f} s -> {verdict}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""What every benchmark records of the machine it ran on: the processor, the load around the run.

The machine is shared and noisy (README, Benchmarks): figures are only comparable with the load
average they were measured at, so each benchmark records it at its start and end.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

__all__ = ["cpu_model", "describe", "load_1m", "load_average"]


def cpu_model() -> str:
    """The processor's name as Linux reports it (else what Python knows of the machine)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def load_1m() -> float:
    """The 1 minute load average."""
    return round(os.getloadavg()[0], 2)


def describe(**load: Any) -> dict[str, Any]:
    """The machine's part of a benchmark's JSON: cores, processor, Python, platform, and the
    load readings given (e.g. `load_average_at_start=load_average()`)."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **load,
    }

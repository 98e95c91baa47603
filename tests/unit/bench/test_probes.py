"""CPU per process tree (bench.probes): a child that exited still counts once its parent waited."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.probes import cpu_seconds_by_tree

# A child that burns about half a second of CPU and exits.
_BURN = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\n"


def test_a_child_that_exited_and_was_waited_for_is_still_counted() -> None:
    me = {"test": os.getpid()}
    before = cpu_seconds_by_tree(me)["test"]

    subprocess.run([sys.executable, "-c", _BURN], check=True, timeout=60)  # waits for it

    after = cpu_seconds_by_tree(me)["test"]
    assert after - before >= 0.4


def test_a_process_that_is_not_running_counts_nothing() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()

    assert cpu_seconds_by_tree({"gone": child.pid}) == {"gone": 0.0}

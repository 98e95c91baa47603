"""Start servers detached in their own session, tell whether they still run, stop their group.

Every server runs in a new session (setsid), so it outlives the shell or the `up --detach` that
started it and can be stopped as a whole process group (PostgreSQL's backends, Envoy's workers).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

# Written to a component's log before each start, so a failure shows only its latest lines.
START_MARKER = "=== tradingmesh: starting"


@dataclass(frozen=True)
class RunAs:
    """Drop to this user in the child before exec (PostgreSQL refuses to run as root)."""

    uid: int
    gid: int


@dataclass(frozen=True)
class Launch:
    """How to start one server process."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    # Written to the child's stdin, then stdin is closed: Redis reads its configuration (with its
    # password) from there, so it is never on disk nor in /proc/<pid>/cmdline.
    stdin_data: bytes | None = None
    run_as: RunAs | None = None
    # OpenBao's dev banner on stdout carries the unseal key and the root token: it goes nowhere.
    discard_stdout: bool = False
    umask: int = 0o077


@dataclass(frozen=True)
class ProcessRef:
    pid: int
    start_ticks: int


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    return raw[raw.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    # After the name: state is field 3, so field 22 (starttime) is index 22 - 3.
    return int(fields[19]) if fields else None


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our own child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(ref: ProcessRef) -> bool:
    """True if the process we started is still running (not exited, not a zombie, not reused)."""
    _reap(ref.pid)
    fields = _stat_fields(ref.pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return int(fields[19]) == ref.start_ticks


def _live_processes() -> list[tuple[int, int]]:
    """(pid, process group) of every live process."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        # fields[0] is the state, fields[2] the process group.
        if fields and fields[0] not in ("Z", "X"):
            found.append((int(entry.name), int(fields[2])))
    return found


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is `pgid`."""
    return [pid for pid, group in _live_processes() if group == pgid]


def spawn(launch: Launch, log_path: Path) -> ProcessRef:
    """Start `launch` detached, stdout/stderr appended to `log_path` (0600)."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        log.write(f"\n{START_MARKER} {launch.argv[0]} at {stamp}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            launch.argv,
            cwd=launch.cwd,
            env=launch.env,
            stdin=subprocess.PIPE if launch.stdin_data is not None else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if launch.discard_stdout else log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            umask=launch.umask,
            user=launch.run_as.uid if launch.run_as else None,
            group=launch.run_as.gid if launch.run_as else None,
            extra_groups=[] if launch.run_as else None,
        )
    if launch.stdin_data is not None and proc.stdin is not None:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(launch.stdin_data)
        proc.stdin.close()
    ticks = start_ticks(proc.pid)
    # A process that already exited (and was reaped by nobody) still has a stat entry; a missing
    # entry only happens if it vanished entirely, which `is_alive` will report as dead.
    return ProcessRef(pid=proc.pid, start_ticks=ticks if ticks is not None else -1)


def _group_is_ours(ref: ProcessRef) -> bool:
    """Whether process group `ref.pid` is still the one we started.

    Linux never hands out a pid that is still in use as a process group id, so if the leader
    is gone but members remain, they are ours. If the pid exists with another start time, the
    number was reused after our whole group had ended: not ours.
    """
    ticks = start_ticks(ref.pid)
    return ticks is None or ticks == ref.start_ticks


def stop_groups(targets: list[tuple[ProcessRef, signal.Signals]], timeout: float) -> list[int]:
    """Signal every group at once, wait up to `timeout` s, SIGKILL what is left.

    Returns the pids of processes that survived even SIGKILL (empty when all is well).
    """
    ours = [(ref, sig) for ref, sig in targets if _group_is_ours(ref)]
    for ref, sig in ours:
        _reap(ref.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(ref.pid, sig)
    pgids = [ref.pid for ref, _ in ours]
    if _wait_groups_gone(pgids, timeout):
        return []
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    _wait_groups_gone(pgids, 5.0)
    return [pid for pid, group in _live_processes() if group in pgids]


def _wait_groups_gone(pgids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        for pgid in pgids:
            _reap(pgid)
        if not any(group in pgids for _, group in _live_processes()):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)

"""What a benchmark reads off a running stack: service metrics, Envoy's counters, CPU per process.

Every probe is read-only and bounded (a few seconds at most); none of them needs a secret.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from stack.paths import StackPaths
from stack.ports import HOST
from stack.state import StackState

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def _get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text: str = response.read().decode()
    return text


def prometheus_samples(port: int, prefix: str | tuple[str, ...]) -> dict[str, float]:
    """Samples of a service's `/metrics` whose name starts with `prefix` (or one of them), keyed
    by name and
    labels as written (e.g. `tradingmesh_pricing_lp_ticks_total{lp="lp-alpha"}`)."""
    samples = {}
    for line in _get(f"http://{HOST}:{port}/metrics").splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1).startswith(prefix):
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def monitor_json(port: int, path: str) -> Any:
    """A JSON document from a local monitoring endpoint (e.g. NATS's `/varz`)."""
    return json.loads(_get(f"http://{HOST}:{port}{path}"))


def envoy_counters(admin_port: int, names: Iterable[str]) -> dict[str, int]:
    """Envoy admin `/stats` counters by exact name (absent ones are left out)."""
    wanted = set(names)
    pattern = "|".join(re.escape(name) for name in sorted(wanted))
    text = _get(f"http://{HOST}:{admin_port}/stats?filter=^({pattern})$")
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if name in wanted and value.strip().isdigit():
            found[name] = int(value)
    return found


def tcp_bytes_sent(port: int) -> dict[tuple[str, str], int] | None:
    """TCP payload bytes the kernel has sent on each established connection whose local port is
    `port` (a server's side), keyed by (local, peer) address: what really went on the wire, TLS
    records included, TCP/IP headers not. None if `ss` (iproute2) is not available."""
    try:
        listing = subprocess.run(
            ["ss", "-tinH", "state", "established", f"( sport = :{port} )"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    sent = {}
    connection: tuple[str, str] | None = None
    for line in listing.splitlines():
        if line and not line[0].isspace():
            fields = line.split()  # Recv-Q Send-Q Local Peer (no state column when filtered)
            connection = (fields[2], fields[3]) if len(fields) >= 4 else None
            continue
        match = re.search(r"\bbytes_sent:(\d+)", line)
        if connection is not None and match:
            sent[connection] = int(match.group(1))
            connection = None
    return sent


def cpu_seconds_by_tree(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each named process and its live descendants,
    and by the descendants that exited and were waited for by one of them.

    A component's processes are its root process and whatever it forked (PostgreSQL's backends,
    which each start a session of their own). A child's CPU time moves into its parent's
    `cutime`/`cstime` when the parent waits for it (the postmaster does for every backend), so
    a backend that exits between two readings is still counted. Not counted: a process that
    exited and was waited for by a process outside the tree (an orphan adopted by init).
    """
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()  # after the command name: state is [0]
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)  # field 4, ppid
        # utime, stime, cutime, cstime (fields 14-17)
        cpu[pid] = sum(int(v) for v in fields[11:15]) / _CLOCK_TICKS
    totals = {}
    for name, root in roots.items():
        total, todo = 0.0, [root]
        while todo:
            pid = todo.pop()
            total += cpu.get(pid, 0.0)
            todo.extend(children.get(pid, ()))
        totals[name] = total
    return totals


def component_pids(state: StackState, names: Iterable[str]) -> dict[str, int]:
    """The recorded pid of each named component that has one."""
    pids = {}
    for name in names:
        component = state.component(name)
        if component is not None and component.pid is not None:
            pids[name] = component.pid
    return pids


def _lp_store(state: StackState, lp: str, client_comp_id: str, suffix: str) -> Path | None:
    store = StackPaths(state.name, Path(state.state_dir)).lp_dir(lp) / "fix-store"
    return next(iter(store.glob(f"*-{lp.upper()}-{client_comp_id}.{suffix}")), None)


def fix_messages_sent(state: StackState, lp: str, client_comp_id: str) -> int | None:
    """How many FIX messages the LP simulator has sent to `client_comp_id` in this session:
    its next outgoing sequence number, minus one, from its QuickFIX file store (`*.seqnums`:
    "<next sender seq> : <next target seq>"). None if the store cannot be read."""
    path = _lp_store(state, lp, client_comp_id, "seqnums")
    if path is None:
        return None
    for _ in range(3):  # QuickFIX rewrites the file in place: retry a torn read
        try:
            sender, _, _ = path.read_text().partition(":")
            return int(sender.strip()) - 1
        except (OSError, ValueError):
            continue
    return None


def fix_store_size(state: StackState, lp: str, client_comp_id: str) -> int | None:
    """The size of the LP simulator's store of the messages it sent to `client_comp_id` (`*.body`,
    appended to with every message while QuickFIX persists messages). None if absent."""
    path = _lp_store(state, lp, client_comp_id, "body")
    try:
        return path.stat().st_size if path else None
    except OSError:
        return None


# In a market data message (snapshot or incremental refresh) each quote is a bid entry
# (MDEntryType 269=0) and an offer entry; nothing else the simulator sends has a 269 field.
_BID_ENTRY = b"\x01269=0\x01"


def quotes_sent_between(
    state: StackState, lp: str, client_comp_id: str, start: int, end: int
) -> int | None:
    """How many quotes (bid entries) the LP simulator sent to `client_comp_id` in the messages
    stored between byte offsets `start` and `end` of its `*.body` store (two sizes read from
    `fix_store_size`: message boundaries, since each message is written and flushed whole)."""
    path = _lp_store(state, lp, client_comp_id, "body")
    if path is None or end < start:
        return None
    with path.open("rb") as body:
        body.seek(start)
        return body.read(end - start).count(_BID_ENTRY)

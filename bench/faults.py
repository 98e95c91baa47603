"""Benchmark: the fault campaign (issue 18) — each component of the stack killed with SIGKILL (or
PostgreSQL frozen with SIGSTOP) and brought back in turn, under a steady order load, each fault
followed by a reconciliation of what the platform stored and published against what its
clients were told.

The load (bench/faults_load.py): market orders of --quantity EURUSD at --rate orders/s in all,
from --traders traders of their own (made and funded for the run, bench/orders_traders.py), half
of them in the standard group (market execution, netting) and half in pro-stp (STP, hedging,
commission: hedges go to the LP simulators), each order retried with the same client_order_id
after UNAVAILABLE / DEADLINE_EXCEEDED (and the other statuses a client retries on) until it is
answered; every client's final answer is recorded.

The faults, in order (--faults, comma-separated `component[:kill|:pause]`; default: every
service instance the stack runs, as its state lists them — with replicas, each instance, leader
and follower alike — then nats, redis, postgres killed, postgres paused, envoy, the first LP
simulator). A kill is SIGKILL to the component's process tree (its process group and every
descendant: PostgreSQL's backends each have a group of their own); --down seconds later
`tradingmesh up` starts what is not running and waits for health. A pause is SIGSTOP to the
same processes for --pause seconds, then SIGCONT and the same `up`. Then
--settle seconds of load, the load paused (its outstanding orders answered), and the
reconciliation (bench/faults_check.py), repeated until events still on their way have arrived
(at most --reconcile-timeout s). A first row reconciles the warm-up, before any fault.

Per fault, a table row: seconds until the stack was healthy again (from the kill), the seconds
clients saw failures (from the kill to the last failed attempt or failed answer), the orders
sent, failed attempts (RPC statuses) and answers that were not a success, the worst time from
an order's first send to its answer, and the reconciliation: lost (acknowledged orders missing,
set back or REJECTED later, events not published or not applied, trades not booked), doubled
(trades or fills beyond the orders, messages twice in a stream, orders nobody asked for),
unbalanced (balances against their ledger, bookings against their trades, positions against
their trades), and, of the lost, the acknowledged orders REJECTED later (issue 18: our own
restart must not cost a client an order). Every count is cumulative over the run (the platform
as a whole at that moment); examples of each finding are in the JSON.

By default it starts a dedicated stack on free ports (bench/stack.py; edge limits raised as in
bench.orders), stopped and deleted at the end also on Ctrl-C or an error; `--stack NAME` uses a
running stack (its components are killed). Prints the table and writes JSON (default
bench/results/faults.json) with the machine and the load average at the start and the end.

    .venv/bin/python -m bench.faults [--rate 10] [--faults oms,nats] [--down 2] [--settle 5]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import importlib
import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from typing import Literal

import psycopg

from bench.faults_check import Access
from bench.faults_check import Reconciliation
from bench.faults_check import reconcile
from bench.faults_load import LoadTrader
from bench.faults_load import OrderLoad
from bench.faults_load import OrderRecord
from bench.faults_load import error_counts
from bench.machine import describe
from bench.machine import load_average
from bench.orders import BENCH_EDGE_LIMITS
from bench.orders_traders import make_traders
from bench.orders_traders import sign_in
from bench.stack import bench_stack
from stack.orchestrator import StackConfig
from stack.orchestrator import is_running
from stack.orchestrator import status
from stack.orchestrator import up
from stack.paths import StackPaths
from stack.ports import HOST
from stack.ports import LP_SIMULATORS
from stack.ports import Ports
from stack.state import ComponentState
from stack.state import StackState
from stack.state import load

Action = Literal["kill", "pause"]

# Components that are not service instances: the infrastructure, the outside world's stand-ins,
# the edge and monitoring. Everything else in a stack's state is a service instance.
NOT_SERVICES = frozenset(
    {
        "openbao",
        "postgres",
        "postgres-replica",
        "redis",
        "nats",
        "smtp",
        "envoy",
        "prometheus",
        "postgres-exporter",
        "redis-exporter",
        *LP_SIMULATORS,
    }
)
OK_STATUSES = frozenset({"FILLED", "NEW", "PENDING", "ACCEPTED", "WORKING", "PARTIALLY_FILLED"})


@dataclass(frozen=True)
class Fault:
    component: str
    action: Action = "kill"

    @property
    def label(self) -> str:
        return f"{self.component} {'SIGSTOP' if self.action == 'pause' else 'SIGKILL'}"

    @classmethod
    def parse(cls, text: str) -> Fault:
        name, _, action = text.strip().partition(":")
        if action not in ("", "kill", "pause"):
            raise ValueError(f"{text!r}: the action is kill or pause")
        return cls(name, "pause" if action == "pause" else "kill")


def default_faults(state: StackState) -> list[Fault]:
    """Every service instance the stack runs (in its state's order), then NATS, Redis,
    PostgreSQL killed and paused, Envoy and the first LP simulator."""
    services = [Fault(c.name) for c in state.components if c.name not in NOT_SERVICES]
    infrastructure = [
        Fault("nats"),
        Fault("redis"),
        Fault("postgres"),
        Fault("postgres", "pause"),
        Fault("envoy"),
        Fault(LP_SIMULATORS[0]),
    ]
    return services + infrastructure


@dataclass(frozen=True)
class Options:
    rate: float = 10.0
    traders: int = 6
    deposit: str = "100000.00"
    quantity: str = "0.01"
    warmup: float = 5.0  # seconds of load before the first fault (and its reconciliation)
    before: float = 2.0  # seconds of load before each fault
    down: float = 2.0  # seconds a killed component stays down before `up`
    pause: float = 10.0  # seconds PostgreSQL (or any paused component) stays frozen
    settle: float = 5.0  # seconds of load after the stack is healthy again
    reconcile_timeout: float = 30.0
    ready_timeout: float = 90.0
    up_budget: float = 180.0
    deadline: float = 5.0  # per attempt


# ---- faults -----------------------------------------------------------------------------------


def _entry(state: StackState, name: str) -> ComponentState:
    current = load(StackPaths.for_name(state.name).state_file)
    entry = current.component(name) if current else None
    if entry is None or entry.pid is None or not is_running(entry):
        raise SystemExit(f"component {name!r} is not running in stack {state.name!r}")
    return entry


def _processes() -> list[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every live process."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()  # after the name: state, ppid, pgrp, ...
        if fields[0] not in ("Z", "X"):
            found.append((int(entry.name), int(fields[1]), int(fields[2])))
    return found


def process_tree(leader: int) -> list[int]:
    """The component's processes: its process group and every descendant, the leader first.
    PostgreSQL's children each call setsid(), so signalling the postmaster's group alone
    would leave every backend running."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, parent, _ in table:
        children.setdefault(parent, []).append(pid)
    tree = [leader]
    tree += [pid for pid, _, group in table if group == leader and pid != leader]
    index = 0
    while index < len(tree):
        tree += [c for c in children.get(tree[index], []) if c not in tree]
        index += 1
    return tree


def _signal_tree(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _socket_inodes(pids: Sequence[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(fd.path)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    return inodes


def _local_ports(inodes: set[str]) -> set[int]:
    """The local TCP ports of these sockets (/proc/net/tcp, tcp6)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


# Elected jobs whose lock key is a hash of their name (services/platform/leader.py `lock_key`,
# where the stack has it), and the risk service's margin watcher (a hash of its own).
ELECTED_JOBS = ("oms-expiry", "oms-rollover", "oms-stp", "pricing-candles", "pricing-feed")


@functools.cache
def _known_locks() -> dict[int, str]:
    known: dict[int, str] = {}
    with contextlib.suppress(ImportError, AttributeError):
        watcher = importlib.import_module("services.risk.watcher")
        known[int(watcher.LOCK_KEY)] = "risk-margin-watcher"
    with contextlib.suppress(ImportError, AttributeError):
        leader = importlib.import_module("services.platform.leader")
        known |= {int(leader.lock_key(job)): job for job in ELECTED_JOBS}
    return known


def _lock_name(key: int) -> str:
    """An advisory lock's key as the services name it: a known job, eight ASCII bytes (e.g.
    "oms-opau"), else the number."""
    if key in _known_locks():
        return _known_locks()[key]
    raw = (key & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "big").lstrip(b"\0")
    if raw and all(0x20 < byte < 0x7F for byte in raw):
        return raw.decode("ascii")
    return str(key)


def leader_locks(access: Access, pids: Sequence[int]) -> list[str]:
    """The advisory locks (the services' elected jobs, `Database.leadership`) held by
    connections of these processes: what the instance leads. Empty if it leads nothing, or
    if PostgreSQL cannot be asked."""
    ports = _local_ports(_socket_inodes(pids))
    if not ports:
        return []
    try:
        with psycopg.connect(access.postgres, connect_timeout=5) as connection:
            rows = connection.execute(
                "SELECT (l.classid::bigint << 32) | l.objid::bigint, a.client_port"
                " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            ).fetchall()
    except psycopg.Error:
        return []
    return sorted({_lock_name(int(key)) for key, port in rows if port in ports})


def _wait_gone(entry: ComponentState, tree: Sequence[int], timeout: float) -> None:
    """Until the component and every process of its tree are gone, zombies included: a new
    postmaster refuses to start while the pid in its lock file exists ("lock file
    postmaster.pid already exists"), and a killed process that is not our child stays a zombie
    until init reaps it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = is_running(entry)  # reaps it, if it is our child
        if not running and not any(Path(f"/proc/{pid}").exists() for pid in tree):
            return
        time.sleep(0.05)


def _bring_back(state: StackState, options: Options) -> str:
    """`up` (starts what is not running, waits for health); the error, if it failed."""
    problems = []
    for attempt in (1, 2, 3):
        try:
            up(StackConfig(name=state.name, budget=options.up_budget))
            break
        except Exception as error:  # reported in the row; another `up` may still repair it
            print(f"  up failed (attempt {attempt}): {error}")
            problems.append(f"{type(error).__name__}: {error}")
            time.sleep(2.0)
    return "; ".join(problems)


def inflict(state: StackState, fault: Fault, options: Options, access: Access) -> dict[str, Any]:
    """The fault and the repair; times in seconds from the fault."""
    entry = _entry(state, fault.component)
    assert entry.pid is not None
    tree = process_tree(entry.pid)
    leads = leader_locks(access, tree) if fault.component not in NOT_SERVICES else []
    started = time.monotonic()
    if fault.action == "kill":
        _signal_tree(tree, signal.SIGKILL)
        _wait_gone(entry, tree, 30)
        time.sleep(options.down)
    else:
        _signal_tree(tree, signal.SIGSTOP)
        try:
            time.sleep(options.pause)
        finally:
            _signal_tree(tree, signal.SIGCONT)
    back = time.monotonic()
    problem = _bring_back(state, options)
    healthy = time.monotonic()
    now = status(state.name)
    sick = [c.name for c in now.components if not c.healthy] if now else ["(no state)"]
    return {
        "leader_of": leads,
        "processes_signalled": len(tree),
        "down_seconds": round(back - started, 1),
        "healthy_after_seconds": round(healthy - started, 1),
        "up_error": problem,
        "unhealthy_after": sick,
    }


# ---- the clients' view of one window ----------------------------------------------------------


def _failed(record: OrderRecord) -> bool:
    return record.answered and record.status not in OK_STATUSES


def client_view(
    records: Sequence[OrderRecord], start: float, end: float, deadline: float
) -> dict[str, Any]:
    """What clients saw from `start` to `end` (epoch seconds): orders first sent in it, failed
    attempts, answers that were not a success, the worst time to an answer (of orders sent from
    one deadline before `start`, which the fault also caught), and how long failures went on
    after `start`."""
    sent = [r for r in records if start <= r.first_sent < end]
    caught = [r for r in records if start - deadline <= r.first_sent < end]
    outcomes = Counter(
        (f"{r.status} {r.reason}".strip() if r.answered else "unanswered") for r in sent
    )
    failures = [at for r in records for at, _ in r.errors if start <= at < end]
    failures += [
        r.answered_at
        for r in caught
        if _failed(r) and r.answered_at is not None and r.answered_at >= start
    ]
    latencies = [r.latency for r in caught if r.latency is not None]
    final_errors = [
        f"{r.client_order_id}: {r.status} {r.reason}".strip()
        for r in caught
        if r.status.startswith("RPC ")
    ]
    return {
        "orders_sent": len(sent),
        "final_rpc_errors": final_errors[:10],
        "outcomes": dict(outcomes),
        "failed_attempts": error_counts(records, start, end),
        "failed_answers": sum(1 for r in sent if _failed(r)),
        "worst_latency_seconds": round(max(latencies), 2) if latencies else None,
        "clients_failing_seconds": round(max(failures) - start, 1) if failures else 0.0,
    }


# ---- the campaign -----------------------------------------------------------------------------


def _row(
    label: str, fault: dict[str, Any], clients: dict[str, Any], found: Reconciliation
) -> dict[str, Any]:
    return {
        "fault": label,
        **fault,
        "clients": clients,
        "reconciliation": found.to_json(),
    }


def _wait_trading(load: OrderLoad, accounts: Sequence[str], timeout: float) -> float:
    """Seconds until every account had an order answered with a success status."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        good = {r.account_id for r in load.snapshot() if r.answered and r.status in OK_STATUSES}
        if good >= set(accounts):
            return round(time.monotonic() - started, 1)
        time.sleep(0.5)
    raise SystemExit(f"not every account could trade within {timeout:g} s")


def _checkpoint(
    load: OrderLoad,
    access: Access,
    accounts: Sequence[str],
    since: datetime.datetime,
    options: Options,
) -> tuple[list[OrderRecord], Reconciliation, float]:
    """Pauses the load (outstanding orders answered), reconciles, and resumes; the records,
    the reconciliation, and when the load was paused (epoch seconds)."""
    paused = time.time()
    left = load.pause(options.deadline * 6)
    if left:
        print(f"  {left} orders still unanswered when the load paused")
    records = load.snapshot()
    found = reconcile(access, records, accounts, since, options.reconcile_timeout)
    load.resume()
    return records, found, paused


def run_campaign(state: StackState, faults: Sequence[Fault], options: Options) -> dict[str, Any]:
    """Makes the traders, runs the load and the faults, and returns the summary (rows and all);
    the caller prints or asserts."""
    run_id = uuid.uuid4().hex[:8]
    envoy = f"{HOST}:{Ports(state.base_port).envoy}"
    stp = options.traders // 2
    groups = ["standard"] * (options.traders - stp) + ["pro-stp"] * stp
    print(f"making {options.traders} traders ({options.traders - stp} standard, {stp} pro-stp)")
    traders: list[LoadTrader] = []
    tokens: list[str] = []
    for group in sorted(set(groups)):
        made = make_traders(state, groups.count(group), group, options.deposit)
        traders += [LoadTrader(t.username, t.password, t.account_id, group) for t in made]
        tokens += [a.token for a in sign_in(envoy, made)]
    accounts = [t.account_id for t in traders]
    access = Access.of(state)
    since = datetime.datetime.now(datetime.UTC)
    load = OrderLoad(
        envoy,
        traders,
        rate=options.rate,
        run_id=run_id,
        quantity=options.quantity,
        deadline=options.deadline,
    )
    rows: list[dict[str, Any]] = []
    aborted = ""
    load.start(tokens)
    try:
        ready = _wait_trading(load, accounts, options.ready_timeout)
        print(f"every account trading after {ready} s; {options.warmup:g} s of warm-up")
        start = time.time()
        time.sleep(options.warmup)
        records, found, paused = _checkpoint(load, access, accounts, since, options)
        clients = client_view(records, start, paused, options.deadline)
        rows.append(_row("none (warm-up)", {}, clients, found))
        print(format_row(rows[-1]))
        for fault in faults:
            time.sleep(options.before)
            print(fault.label)
            start = time.time()
            done = inflict(state, fault, options, access)
            time.sleep(options.settle)
            try:
                records, found, paused = _checkpoint(load, access, accounts, since, options)
            except Exception as error:  # the stack did not come back: the campaign ends here
                aborted = f"after {fault.label}: {type(error).__name__}: {error}"
                print(f"  campaign stopped {aborted}")
                break
            clients = client_view(records, start, paused, options.deadline)
            rows.append(_row(fault.label, done, clients, found))
            print(format_row(rows[-1]))
    finally:
        unanswered = load.stop(options.deadline * 6)
    return {
        "run_id": run_id,
        "accounts": accounts,
        "groups": dict(Counter(groups)),
        "orders_sent": len(load.records),
        "ticks_skipped_all_accounts_busy": load.skipped,
        "unanswered_at_end": unanswered,
        "stopped_early": aborted,
        "rows": rows,
    }


# ---- the report -------------------------------------------------------------------------------

COLUMNS = (
    "fault",
    "healthy s",
    "failing s",
    "orders",
    "failed attempts",
    "failed answers",
    "worst s",
    "lost",
    "doubled",
    "unbalanced",
    "acked->rejected",
    "findings",
)


def _cells(row: dict[str, Any]) -> list[str]:
    clients, found = row["clients"], row["reconciliation"]
    attempts = ", ".join(f"{k} {v}" for k, v in sorted(clients["failed_attempts"].items()))
    findings = found["findings"]
    worst = clients["worst_latency_seconds"]
    leads = row.get("leader_of")
    return [
        row["fault"] + (f" (leader: {', '.join(leads)})" if leads else ""),
        "" if "healthy_after_seconds" not in row else f"{row['healthy_after_seconds']:g}",
        f"{clients['clients_failing_seconds']:g}",
        str(clients["orders_sent"]),
        attempts or "0",
        str(clients["failed_answers"]),
        "?" if worst is None else f"{worst:g}",
        str(found["lost"]),
        str(found["doubled"]),
        str(found["unbalanced"]),
        str(findings.get("acked_then_rejected", {}).get("count", 0)),
        ", ".join(f"{k} {v['count']}" for k, v in findings.items()) or "none",
    ]


def format_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    cells = [list(COLUMNS), *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells
    ]


def format_row(row: dict[str, Any]) -> str:
    return "  " + " | ".join(f"{k}: {v}" for k, v in zip(COLUMNS, _cells(row), strict=True))


def verdict(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """The run's totals at its last reconciliation (cumulative)."""
    last = rows[-1]["reconciliation"] if rows else {}
    return {
        "lost": int(last.get("lost", 0)),
        "doubled": int(last.get("doubled", 0)),
        "unbalanced": int(last.get("unbalanced", 0)),
        "acked_then_rejected": int(
            last.get("findings", {}).get("acked_then_rejected", {}).get("count", 0)
        ),
        "unhealthy_after_a_fault": sum(1 for r in rows if r.get("unhealthy_after")),
    }


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Options()
    parser.add_argument("--stack", help="use this running stack (its components are killed)")
    parser.add_argument(
        "--replicas", type=int, default=1, help="instances of every service of its own stack"
    )
    parser.add_argument("--faults", help="comma-separated component[:kill|:pause] (default: all)")
    parser.add_argument("--rate", type=float, default=defaults.rate, help="orders/s in all")
    parser.add_argument("--traders", type=int, default=defaults.traders)
    parser.add_argument("--deposit", default=defaults.deposit)
    parser.add_argument("--quantity", default=defaults.quantity, help="lots per order")
    parser.add_argument("--warmup", type=float, default=defaults.warmup)
    parser.add_argument("--before", type=float, default=defaults.before, help="s before a fault")
    parser.add_argument("--down", type=float, default=defaults.down, help="s killed before up")
    parser.add_argument("--pause", type=float, default=defaults.pause, help="s of SIGSTOP")
    parser.add_argument("--settle", type=float, default=defaults.settle, help="s after health")
    parser.add_argument("--reconcile-timeout", type=float, default=defaults.reconcile_timeout)
    parser.add_argument("--deadline", type=float, default=defaults.deadline, help="s per attempt")
    parser.add_argument("--out", type=Path, default=Path("bench/results/faults.json"))
    args = parser.parse_args()
    if args.traders < 2:
        parser.error("need at least two traders (one per group)")
    try:
        chosen = [Fault.parse(f) for f in args.faults.split(",") if f] if args.faults else None
    except ValueError as error:
        parser.error(str(error))
    options = Options(
        rate=args.rate,
        traders=args.traders,
        deposit=args.deposit,
        quantity=args.quantity,
        warmup=args.warmup,
        before=args.before,
        down=args.down,
        pause=args.pause,
        settle=args.settle,
        reconcile_timeout=args.reconcile_timeout,
        deadline=args.deadline,
    )
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    summary: dict[str, Any] = {
        "benchmark": "faults",
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": describe(load_average_at_start=load_average()),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    with bench_stack(
        args.stack,
        budget=300,
        prefix="bench-faults",
        edge_limits=BENCH_EDGE_LIMITS,
        replicas=args.replicas,
    ) as bench:
        faults = chosen if chosen is not None else default_faults(bench.state)
        summary["stack"] = {"name": bench.state.name, "started_by_benchmark": bench.started_here}
        summary["faults"] = [f.label for f in faults]
        print("faults: " + ", ".join(f.label for f in faults))
        summary |= run_campaign(bench.state, faults, options)
        summary["machine"]["load_average_at_end"] = load_average()
    summary["verdict"] = verdict(summary["rows"])
    print()
    print("\n".join(format_table(summary["rows"])))
    if summary["stopped_early"]:
        print(f"STOPPED EARLY {summary['stopped_early']}")
    print(
        f"orders sent {summary['orders_sent']}, unanswered at the end "
        f"{summary['unanswered_at_end']}; totals at the last reconciliation: {summary['verdict']}"
    )
    print(
        f"load average: {summary['machine']['load_average_at_start']} at start, "
        f"{summary['machine']['load_average_at_end']} at end; {os.cpu_count()} cpus"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit("interrupted (a stack this run started has been stopped)") from None

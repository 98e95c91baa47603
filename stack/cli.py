"""`tradingmesh`: run the whole platform locally (ADR 0004).

tradingmesh up [--name dev] [--base-port 17000] [--replicas 1] [--detach] [--no-services]
               [--production-edge]
tradingmesh status [--name dev] [--json]
tradingmesh down [--name dev] [--purge]
tradingmesh logs [--name dev] [component | fix | FIX session]
tradingmesh certs rotate [--name dev]

`logs` with no argument prints the last lines of every component's log and FIX session log;
`logs oms` prints a component's log; `logs fix` the last lines of every FIX session log (one per
session and side: pricing's and the OMS's initiators, the LP simulators' acceptors; every
message in and out, passwords redacted, and every logout, reject and resend with its reason);
`logs TRADINGMESH-LP-ALPHA` (or `FIX.4.4-TRADINGMESH-LP-ALPHA`) one session's whole log.
`certs rotate` renews, during a run, every certificate the stack wrote to files (Envoy's, the
infrastructure's, the LP simulators', the operator's) from the platform's CA, and makes each
process reload it (ADR 0018); the services renew their own.

The edge speaks TLS 1.3; `up` also lets it take plaintext (h2c, HTTP/1.1) on the same port, the
development switch TM_EDGE_PLAINTEXT=1, and says so. `up --production-edge` (or
TM_EDGE_PLAINTEXT=0) runs the production configuration: TLS 1.3 only (ADR 0018).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from stack.components.envoy import PLAINTEXT_SWITCH
from stack.components.envoy import parse_plaintext_switch
from stack.components.web_static import web_dist
from stack.health import ComponentFailedError
from stack.orchestrator import StackConfig
from stack.orchestrator import StackError
from stack.orchestrator import down
from stack.orchestrator import is_running
from stack.orchestrator import rotate_certificates
from stack.orchestrator import status
from stack.orchestrator import up
from stack.paths import REPO
from stack.paths import StackNameError
from stack.paths import StackPaths
from stack.state import StackState

log = logging.getLogger("stack")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tradingmesh", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def with_name(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
        command.add_argument("--name", default="dev", help="stack name (default: dev)")
        return command

    start = with_name(commands.add_parser("up", help="start the stack (only what is missing)"))
    start.add_argument(
        "--base-port",
        type=int,
        default=None,
        help="first port of the stack's block of 100 (default: the stack's last one, or 17000)",
    )
    start.add_argument(
        "--replicas",
        type=int,
        default=None,
        help="instances of each service (default: the stack's last count, or 1; ADR 0017)",
    )
    start.add_argument(
        "--detach", action="store_true", help="return once healthy, leave it running"
    )
    start.add_argument("--no-services", action="store_true", help="infrastructure and Envoy only")
    start.add_argument("--log-level", default="INFO", help="TM_LOG_LEVEL for the services")
    start.add_argument(
        "--production-edge",
        action="store_true",
        help="the edge takes TLS 1.3 only, no plaintext (default: plaintext too, for"
        f" development; or {PLAINTEXT_SWITCH}=0)",
    )

    show = with_name(commands.add_parser("status", help="what runs, re-checked now"))
    show.add_argument("--json", action="store_true", help="print stack.json with live health")

    stop = with_name(commands.add_parser("down", help="stop every process of the stack"))
    stop.add_argument("--purge", action="store_true", help="also delete its data and logs")

    certs = with_name(commands.add_parser("certs", help="the stack's TLS certificates"))
    certs.add_argument("action", choices=["rotate"], help="rotate: renew them now, in place")
    logs = with_name(commands.add_parser("logs", help="print a component's or FIX session's log"))
    logs.add_argument(
        "component",
        nargs="?",
        help="e.g. postgres, oms, envoy; `fix` for every FIX session log, or one FIX session,"
        " e.g. TRADINGMESH-LP-ALPHA (default: all)",
    )
    return parser


def _table(state: StackState) -> str:
    rows = [("COMPONENT", "PID", "HEALTHY", "ADDRESS")]
    for c in state.components:
        pid = "-" if c.pid is None else str(c.pid)
        if c.pid is not None and not is_running(c):
            pid += " (exited)"
        rows.append((c.name, pid, "yes" if c.healthy else "NO", c.address))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows
    )


def _replica_line(state: StackState) -> str:
    """The read replica's replication, as `status` read it from the primary."""
    replica = state.replica
    assert replica is not None
    if not replica.streaming:
        return f"replica {replica.address}: NOT streaming from the primary"
    lag = "?" if replica.lag_bytes is None else f"{replica.lag_bytes} bytes"
    seconds = (
        "idle (nothing to replay)"
        if replica.replay_lag_seconds is None
        else f"{replica.replay_lag_seconds * 1000:.1f} ms replay lag"
    )
    return f"replica {replica.address}: streaming, {lag} behind, {seconds}"


def _web_note(state: StackState) -> str:
    """Whether Envoy, just started by this `up`, found a built terminal to serve."""
    if (web_dist(REPO) / "index.html").is_file():
        return "(sign in with the demo login)"
    return "(not built: run scripts/build-web, then restart the stack)"


def _edge_lines(state: StackState) -> list[str]:
    """The edge's endpoints, and whether plaintext is on and how to turn it off."""
    grpc, http = state.endpoints.grpc, state.endpoints.http
    if not state.endpoints.plaintext:
        return [
            f"  gRPC         {grpc}  (TLS 1.3 only, with --cacert below)",
            f"  HTTP         {http}  (REST/JSON and gRPC-web; TLS 1.3 only, HSTS)",
            "  edge         production configuration: no plaintext",
        ]
    return [
        f"  gRPC         {grpc}  (TLS 1.3 with --cacert below; h2c also accepted)",
        f"  HTTP         {http}  (REST/JSON and gRPC-web; http:// also works)",
        f"  edge         PLAINTEXT IS ON (development switch {PLAINTEXT_SWITCH}=1): h2c and"
        " http:// unencrypted beside TLS 1.3;",
        "               `tradingmesh up --production-edge` (or TM_EDGE_PLAINTEXT=0) for TLS only",
    ]


def _summary(state: StackState, seconds: float) -> str:
    paths = StackPaths.for_name(state.name)
    demo = state.demo
    login = (
        f"{demo.username} / {demo.password} (account {demo.account_id})"
        if demo
        else "(none recorded: see the seed lines above)"
    )
    operator = (
        f"{state.operator.username} / {state.operator.password}"
        if state.operator
        else "(none recorded: see the seed lines above)"
    )
    return "\n".join(
        [
            f"tradingmesh stack {state.name!r} is up, healthy in {seconds:.1f} s",
            "",
            _table(state),
            "",
            *_edge_lines(state),
            f"  CA file      {state.endpoints.ca_file}",
            f"  Envoy admin  {state.endpoints.envoy_admin}",
            f"  Web terminal {state.endpoints.web}  {_web_note(state)}",
            f"  Prometheus   {state.endpoints.prometheus}  (rules: monitoring/prometheus/rules)",
            f"  Vault        {state.vault.address}  (root token: {state.vault.root_token_file})",
            f"  demo login   {login}",
            f"  operator     {operator}  (staff: admin, dealer, backoffice)",
            f"  state        {paths.state_file}",
        ]
    )


class _StopRequestedError(Exception):
    """SIGTERM or SIGINT while `up` runs in the foreground."""


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise _StopRequestedError(signal.Signals(signum).name)


def _foreground(name: str) -> None:
    """Wait for Ctrl-C / SIGTERM, telling once when a component stops on its own.

    Returns if the whole stack was stopped from elsewhere (`tradingmesh down`).
    """
    reported: set[str] = set()
    while True:
        time.sleep(2.0)
        current = status(name)
        components = current.components if current else ()
        if not any(is_running(c) for c in components):
            log.info("the stack was stopped from elsewhere")
            return
        for c in components:
            if not c.healthy and c.name not in reported:
                reported.add(c.name)
                log.warning("%s is not healthy (`tradingmesh logs %s`)", c.name, c.name)


def _edge_plaintext(production_edge: bool, env: Mapping[str, str] = os.environ) -> bool:
    """The development switch: off with --production-edge, else TM_EDGE_PLAINTEXT, else on."""
    if production_edge:
        return False
    switch = parse_plaintext_switch(env.get(PLAINTEXT_SWITCH))
    return True if switch is None else switch


def cmd_up(args: argparse.Namespace) -> int:
    plaintext = _edge_plaintext(args.production_edge)  # ValueError: main() says it
    config = StackConfig(
        name=args.name,
        base_port=args.base_port,
        replicas=args.replicas,
        services=not args.no_services,
        log_level=args.log_level,
        edge_plaintext=plaintext,
    )
    if not args.detach:
        signal.signal(signal.SIGTERM, _raise_stop)
        signal.signal(signal.SIGINT, _raise_stop)
    started = time.monotonic()
    try:
        state = up(config)
        print(_summary(state, time.monotonic() - started), flush=True)
        if args.detach:
            return 0
        print("\nRunning in the foreground: Ctrl-C stops everything.", flush=True)
        _foreground(args.name)
        return 0
    except _StopRequestedError as stop:
        log.info("%s: stopping the stack", stop)
        return 0
    except (StackError, ComponentFailedError, RuntimeError) as error:
        log.error("up failed: %s", error)
        if args.detach:
            log.error(
                "anything already started keeps running: `tradingmesh status --name %s`, "
                "`tradingmesh logs --name %s <component>`, `tradingmesh down --name %s`",
                args.name,
                args.name,
                args.name,
            )
        return 1
    finally:
        if not args.detach:
            # Ignore further signals so a second Ctrl-C cannot interrupt the teardown.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            stopped = down(args.name)
            log.info("stopped: %s", ", ".join(stopped) or "nothing was running")


def cmd_status(args: argparse.Namespace) -> int:
    state = status(args.name)
    if state is None:
        print(f"no stack named {args.name!r} (nothing started yet)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(state.to_json(), indent=2))
    else:
        print(_table(state))
        if state.replica is not None:
            print(_replica_line(state))
    return 0 if state.components and all(c.healthy for c in state.components) else 3


def cmd_down(args: argparse.Namespace) -> int:
    stopped = down(args.name, purge=args.purge)
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    if args.purge:
        print(f"deleted {StackPaths.for_name(args.name).root}")
    return 0


def _fix_session_logs(paths: StackPaths) -> dict[str, Path]:
    """Every FIX session log by session name, e.g. FIX.4.4-TRADINGMESH-LP-ALPHA."""
    return {p.stem: p for p in sorted(paths.fix_logs.glob("*.log"))}


def _tails(logs: dict[str, Path], lines: int) -> None:
    for name, path in logs.items():
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        print(f"==> {name} ({path}) <==")
        print("\n".join(tail), end="\n\n")


def cmd_certs(args: argparse.Namespace) -> int:
    try:
        renewed = rotate_certificates(args.name)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"renewed: operator, {', '.join(renewed) or 'no running component'}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    paths = StackPaths.for_name(args.name)
    components = {p.stem: p for p in sorted(paths.logs.glob("*.log"))}
    sessions = _fix_session_logs(paths)
    if args.component == "fix":
        if not sessions:
            print(f"no FIX session log yet in {paths.fix_logs}", file=sys.stderr)
            return 1
        _tails(sessions, 20)
        return 0
    if args.component:
        path = (
            components.get(args.component)
            or sessions.get(args.component)
            or sessions.get(f"FIX.4.4-{args.component}")
        )
        if path is None:
            print(
                f"no log for {args.component!r}; components: {', '.join(components)}; FIX"
                f" sessions: {', '.join(sessions) or '(none yet)'} (or `fix` for all of them)",
                file=sys.stderr,
            )
            return 1
        sys.stdout.write(path.read_text(errors="replace"))
        return 0
    _tails(components, 10)
    _tails({f"fix/{name}": path for name, path in sessions.items()}, 10)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    handlers = {
        "up": cmd_up,
        "status": cmd_status,
        "down": cmd_down,
        "logs": cmd_logs,
        "certs": cmd_certs,
    }
    try:
        return handlers[args.command](args)
    except (StackError, StackNameError, ValueError) as error:
        log.error("%s", error)
        return 1
    except BrokenPipeError:
        # `tradingmesh logs | head`: the reader left; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

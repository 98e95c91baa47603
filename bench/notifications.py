"""Benchmark: notifications per second end to end — domain events in, each notification stored
and its email delivered to the stack's SMTP sink (a real SMTP server) — on the real stack.

What is sent: --count `oms.trade.executed` events (one fill per envelope, as the OMS publishes a
market order's fill) for --accounts accounts made for the run through the account service (so
the notification service knows their users' addresses from the account events; each user
switches fill emails on, an opt-in, through Envoy like a client would), published to
JetStream as fast as one client publishes them (a burst). The notification service consumes
them in batches (ADR 0009), writes each batch's notifications and email deliveries with one
statement, and its sender delivers the emails over SMTP (one connection per claimed batch).

Measured from the first publish: when every notification was stored and when every email was
SENT (its delivery record) and received by the sink; the rates (events per second) to both; the
latency of each notification from its event's time to its row (stored) and to its email
(delivered), p50/p90/p99/max from the rows' own timestamps; CPU seconds of the notification
service, the SMTP sink and PostgreSQL in the window (/proc, process trees), per notification;
and the load average.

By default it starts a dedicated stack (free ports) and deletes it at the end; `--stack NAME`
uses a running one. Prints a table and writes JSON (default bench/results/notifications.json).

    .venv/bin/python -m bench.notifications [--count 2000] [--accounts 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import nats
import psycopg
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from bench.machine import describe
from bench.machine import load_average
from bench.orders_traders import make_traders
from bench.orders_traders import sign_in
from bench.stack import Bench
from bench.stack import bench_stack
from services.platform.bus import MSG_ID_HEADER
from services.platform.envelope import Envelope
from services.platform.infra_tls import client_context
from simulators.smtp.control import SinkClient
from stack import secrets as stack_secrets
from stack.provision import admin_url
from stack.vault import VaultAdmin
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.events_pb2 import EventMetadata
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.common.v1.types_pb2 import ActorKind
from tradingmesh.notification.v1 import notification_pb2 as notification_pb
from tradingmesh.notification.v1 import notification_service_pb2 as notification_api
from tradingmesh.notification.v1 import notification_service_pb2_grpc as notification_grpc
from tradingmesh.oms.v1 import oms_events_pb2
from tradingmesh.oms.v1 import oms_pb2

SUBJECT = "oms.trade.executed"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _secrets(bench: Bench) -> stack_secrets.StackSecrets:
    vault = VaultAdmin(
        bench.state.vault.address, Path(bench.state.vault.root_token_file).read_text().strip()
    )
    known = stack_secrets.read(vault)
    if known is None:
        raise SystemExit("the stack's secrets are not in its Vault")
    return known


def _database(bench: Bench, known: stack_secrets.StackSecrets) -> psycopg.Connection[Any]:
    url = admin_url(known.postgres_admin, bench.ports.postgres, bench.state.endpoints.ca_file)
    return psycopg.connect(
        url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True
    )


def _tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its descendants alive now (and their reaped children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15]) / CLOCK_TICKS  # utime stime cutime cstime
        todo += children.get(current, [])
    return total


def _cpu(bench: Bench, names: tuple[str, ...]) -> dict[str, float]:
    pids = {c.name: c.pid for c in bench.state.components if c.name in names and c.pid}
    return {name: _tree_cpu_seconds(pid) for name, pid in pids.items() if pid is not None}


def _fill(account_id: str, at: datetime) -> oms_events_pb2.TradeExecuted:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return oms_events_pb2.TradeExecuted(
        metadata=EventMetadata(
            event_id=str(uuid.uuid4()),
            occurred_at=stamp,
            producer="bench",
            actor=Actor(kind=ActorKind.ACTOR_KIND_SYSTEM, id="bench"),
        ),
        trade=oms_pb2.Trade(
            id=str(uuid.uuid4()),
            order_id=str(uuid.uuid4()),
            client_order_id=f"bench-{uuid.uuid4().hex[:12]}",
            account_id=account_id,
            symbol="EURUSD",
            side=types_pb2.SIDE_BUY,
            quantity="0.01",
            price="1.08524",
            commission="0",
            realized_pnl="0",
            position_id=str(uuid.uuid4()),
            position_effect=trading_pb2.POSITION_EFFECT_OPEN,
            fill_time=stamp,
        ),
        currency="USD",
    )


async def publish(
    bench: Bench, known: stack_secrets.StackSecrets, accounts: list[str], count: int
) -> float:
    """Publishes `count` fills round-robin over `accounts`; returns the publishing seconds."""
    client = await nats.connect(
        f"nats://127.0.0.1:{bench.ports.nats}",
        user=known.nats.username,
        password=known.nats.password.reveal(),
        tls=client_context(bench.state.endpoints.ca_file),
    )
    try:
        js = client.jetstream()
        started = time.monotonic()
        pending = []
        for index in range(count):
            envelope = Envelope()
            envelope.add(SUBJECT, _fill(accounts[index % len(accounts)], datetime.now(UTC)))
            sealed = envelope.seal()
            pending.append(
                js.publish(
                    sealed.subject, sealed.payload, headers={MSG_ID_HEADER: sealed.envelope_id}
                )
            )
            if len(pending) >= 200:  # acknowledged by JetStream in groups, not one at a time
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        return time.monotonic() - started
    finally:
        await client.close()


def _counts(db: psycopg.Connection[Any], accounts: list[str]) -> tuple[int, int, int]:
    row = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE d.status = 'SENT'),"
        " count(*) FILTER (WHERE d.status IN ('DEAD', 'SKIPPED'))"
        " FROM notification.notifications n JOIN notification.deliveries d"
        " ON d.notification_id = n.id"
        " WHERE n.account_id = ANY(%s::uuid[]) AND n.kind = 'ORDER_FILLED'",
        (accounts,),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def _latencies(db: psycopg.Connection[Any], accounts: list[str]) -> dict[str, dict[str, float]]:
    """From the event's time (the notification's created_at) to its row (the delivery's
    created_at, now() of the consumer's transaction) and to its email (sent_at), in ms."""
    figures: dict[str, dict[str, float]] = {}
    for name, column in (("stored", "d.created_at"), ("delivered", "d.sent_at")):
        row = db.execute(
            "SELECT percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY ms), max(ms)"
            f" FROM (SELECT extract(epoch FROM {column} - n.created_at) * 1000 AS ms"
            " FROM notification.notifications n JOIN notification.deliveries d"
            " ON d.notification_id = n.id"
            " WHERE n.account_id = ANY(%s::uuid[]) AND n.kind = 'ORDER_FILLED') t",
            (accounts,),
        ).fetchone()
        assert row is not None
        p50, p90, p99 = row[0]
        figures[name] = {
            "p50": round(float(p50), 1),
            "p90": round(float(p90), 1),
            "p99": round(float(p99), 1),
            "max": round(float(row[1]), 1),
        }
    return figures


def switch_fill_emails_on(bench: Bench, tokens: list[str]) -> None:
    """Each user opts in to the emails of their fills (off by default, ADR 0011)."""
    on = notification_pb.NotificationPreferences(
        kinds=[
            notification_pb.NotificationKindPreference(
                kind=notification_pb.NOTIFICATION_KIND_ORDER_FILLED, email_enabled=True
            )
        ]
    )
    with grpc.insecure_channel(bench.envoy) as channel:
        stub = notification_grpc.NotificationServiceStub(channel)
        for token in tokens:
            stub.UpdateNotificationPreferences(
                notification_api.UpdateNotificationPreferencesRequest(
                    preferences=on, update_mask=FieldMask(paths=["kinds"])
                ),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=30,
            )


def run(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    known = _secrets(bench)
    print(f"making {args.accounts} accounts")
    traders = make_traders(bench.state, args.accounts, "standard", "1000.00")
    accounts = [t.account_id for t in traders]
    switch_fill_emails_on(bench, [a.token for a in sign_in(bench.envoy, traders)])
    sink = SinkClient(bench.ports.smtp_control)
    components = ("notification", "smtp", "postgres", "nats")
    with _database(bench, known) as db:
        # The accounts' own notifications (their deposits) are sent before the run starts.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            (waiting,) = db.execute(
                "SELECT count(*) FROM notification.deliveries WHERE status IN ('PENDING','SENDING')"
            ).fetchone() or (0,)
            (known_accounts,) = db.execute(
                "SELECT count(*) FROM notification.accounts WHERE id = ANY(%s::uuid[])",
                (accounts,),
            ).fetchone() or (0,)
            if waiting == 0 and known_accounts == len(accounts):
                break
            time.sleep(0.5)
        received_before = int(sink.state()["received"])
        cpu_before = _cpu(bench, components)
        load_start = load_average()
        started = time.monotonic()
        publishing = asyncio.run(publish(bench, known, accounts, args.count))
        stored_at = delivered_at = None
        counts = (0, 0, 0)
        deadline = started + args.timeout
        while time.monotonic() < deadline:
            counts = _counts(db, accounts)
            now = time.monotonic()
            if stored_at is None and counts[0] >= args.count:
                stored_at = now - started
            if counts[1] + counts[2] >= args.count:
                delivered_at = now - started
                break
            time.sleep(0.1)
        cpu_after = _cpu(bench, components)
        load_end = load_average()
        latencies = _latencies(db, accounts)
    received = int(sink.state()["received"]) - received_before
    stored, sent, failed = counts
    cpu = {name: round(cpu_after[name] - cpu_before.get(name, 0.0), 2) for name in cpu_after}
    return {
        "count": args.count,
        "accounts": args.accounts,
        "publish_seconds": round(publishing, 2),
        "stored": stored,
        "sent": sent,
        "dead_or_skipped": failed,
        "received_by_sink": received,
        "all_stored_seconds": round(stored_at, 2) if stored_at is not None else None,
        "all_delivered_seconds": round(delivered_at, 2) if delivered_at is not None else None,
        "stored_per_second": round(args.count / stored_at, 1) if stored_at else None,
        "delivered_per_second": round(args.count / delivered_at, 1) if delivered_at else None,
        "latency_ms": latencies,
        "cpu_seconds": cpu,
        "cpu_ms_per_notification": {
            name: round(seconds * 1000 / max(stored, 1), 2) for name, seconds in cpu.items()
        },
        "load_average_start": load_start,
        "load_average_end": load_end,
    }


def table(result: dict[str, Any]) -> list[tuple[str, str]]:
    stored, delivered = result["latency_ms"]["stored"], result["latency_ms"]["delivered"]
    rows = [
        ("figure", "value"),
        ("events published (fills)", f"{result['count']} in {result['publish_seconds']} s"),
        ("notifications stored / emails SENT", f"{result['stored']} / {result['sent']}"),
        ("emails received by the SMTP sink", str(result["received_by_sink"])),
        ("DEAD or SKIPPED", str(result["dead_or_skipped"])),
        ("all stored after", f"{result['all_stored_seconds']} s"),
        ("all delivered after", f"{result['all_delivered_seconds']} s"),
        ("notifications stored per second", str(result["stored_per_second"])),
        ("notifications delivered per second (end to end)", str(result["delivered_per_second"])),
        (
            "event -> stored, ms p50/p90/p99/max",
            f"{stored['p50']} / {stored['p90']} / {stored['p99']} / {stored['max']}",
        ),
        (
            "event -> email sent, ms p50/p90/p99/max",
            f"{delivered['p50']} / {delivered['p90']} / {delivered['p99']} / {delivered['max']}",
        ),
    ]
    rows += [
        (f"CPU {name}, ms per notification", str(value))
        for name, value in result["cpu_ms_per_notification"].items()
    ]
    rows.append(
        (
            "load average (1, 5, 15 min) start / end",
            f"{result['load_average_start']} / {result['load_average_end']}",
        )
    )
    return rows


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(row[0]) for row in rows)
    for index, (name, value) in enumerate(rows):
        print(f"{name.ljust(width)}  {value}")
        if index == 0:
            print(f"{'-' * width}  {'-' * max(len(v) for _, v in rows)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="use this running stack instead of starting one")
    parser.add_argument("--count", type=int, default=2000, help="fills to publish")
    parser.add_argument("--accounts", type=int, default=20, help="accounts they are spread over")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for all")
    parser.add_argument("--out", type=Path, default=Path("bench/results/notifications.json"))
    args = parser.parse_args()
    summary: dict[str, Any] = {
        "benchmark": "notifications",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": describe(load_average_at_start=load_average()),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    with bench_stack(args.stack, budget=300, prefix="bench-notify", edge_limits={}) as bench:
        summary["stack"] = {"name": bench.state.name, "started_by_benchmark": bench.started_here}
        summary["result"] = result = run(bench, args)
    print_table(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()

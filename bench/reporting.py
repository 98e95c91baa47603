"""Benchmark: reporting on the read replica (issue #15, ADR 0012).

- a statement (GetStatement) of an account with 100,000 fills (target ≤ 1 s);
- the CSV export (ExportTrades) of an account with 1,000,000 fills (target ≥ 50,000 rows/s,
  memory flat: the reporting process's RSS is sampled during the export).

Both through Envoy over gRPC, signed in as the stack's broker operator (staff may read any
account). The fills are seeded straight into the bench's own stack with SQL (bulk INSERT ...
SELECT generate_series, as the superuser with `session_replication_role = replica`, which skips
the triggers: the ledger's journal check, the foreign keys), so the history is made in seconds,
not by placing orders; the statement account's ledger is consistent (running balance_after,
every fill's commission and every close's P&L), the export account has fills only. The replica
must replay it all before measuring: the benchmark waits until it has.

    .venv/bin/python -m bench.reporting [--stack NAME] [--statement-trades 100000]
        [--export-trades 1000000] [--runs 5] [--out bench/results/reporting.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
import uuid
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import psycopg
from psycopg.conninfo import make_conninfo

from bench.stack import Bench
from bench.stack import bench_stack
from services.platform.infra_tls import libpq_params
from stack import secrets as stack_secrets
from stack.vault import VaultAdmin
from tradingmesh.account.v1 import auth_service_pb2
from tradingmesh.account.v1 import auth_service_pb2_grpc
from tradingmesh.common.v1 import types_pb2
from tradingmesh.reporting.v1 import reporting_service_pb2 as api
from tradingmesh.reporting.v1 import reporting_service_pb2_grpc as api_grpc

STATEMENT_TARGET_S = 1.0
EXPORT_TARGET_ROWS_S = 50_000
STANDARD_GROUP = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://tradingmesh.local/group/standard"))
START = "2026-01-05 00:00:00+00"


def _admin(bench: Bench, port: int) -> psycopg.Connection[Any]:
    vault = VaultAdmin(
        bench.state.vault.address, Path(bench.state.vault.root_token_file).read_text().strip()
    )
    known = stack_secrets.read(vault)
    assert known is not None
    return psycopg.connect(
        make_conninfo("", **libpq_params(bench.state.endpoints.ca_file)),
        host="127.0.0.1",
        port=port,
        dbname="tradingmesh",
        user=known.postgres_admin.username,
        password=known.postgres_admin.password.reveal(),
        autocommit=True,
    )


def _new_account(db: psycopg.Connection[Any], number: str) -> str:
    user_id, account_id = str(uuid.uuid4()), str(uuid.uuid4())
    db.execute(
        """INSERT INTO account.users (id, username, email, display_name, password_hash, roles,
               kyc_status, status)
           VALUES (%s, %s, %s, 'Bench', 'x', ARRAY['trader'], 'APPROVED', 'ACTIVE')""",
        (user_id, f"bench-{number}", f"bench-{number}@example.test"),
    )
    db.execute(
        """INSERT INTO account.trading_accounts (id, account_number, user_id, group_id, currency,
               position_mode, status, created_at)
           VALUES (%s, %s, %s, %s, 'USD', 'HEDGING', 'ACTIVE', %s)""",
        (account_id, number, user_id, STANDARD_GROUP, START),
    )
    db.execute(
        """INSERT INTO oms.accounts (account_id, user_id, group_id, currency, status,
               position_mode, version)
           VALUES (%s, %s, %s, 'USD', 'ACTIVE', 'HEDGING', 1)""",
        (account_id, user_id, STANDARD_GROUP),
    )
    return account_id


def seed_statement_account(db: psycopg.Connection[Any], trades: int) -> str:
    """`trades` fills: trades/2 positions of 0.10 EURUSD, each opened (BUY) and closed (SELL)
    a minute apart, commission 0.70 per fill and the close's P&L booked; a deposit first."""
    account = _new_account(db, f"9{uuid.uuid4().int % 10**8:08d}")
    positions = trades // 2
    params = {"a": uuid.UUID(account), "n": positions, "start": START}
    with db.transaction():
        db.execute("SET LOCAL session_replication_role = replica")
        db.execute(
            """INSERT INTO oms.positions (id, account_id, symbol, netting, side, status, quantity,
                   open_price, realized_pnl, commission, open_order_id, open_time, update_time,
                   close_time, version)
               SELECT md5(%(a)s || 'p' || i)::uuid, %(a)s, 'EURUSD', false, 'BUY', 'CLOSED', 0,
                      1.1 + (i %% 100) * 0.0001, 0, 1.40, md5(%(a)s || 'o' || i)::uuid,
                      %(start)s::timestamptz + i * interval '2 minutes',
                      %(start)s::timestamptz + i * interval '2 minutes' + interval '1 minute',
                      %(start)s::timestamptz + i * interval '2 minutes' + interval '1 minute', 2
                 FROM generate_series(1, %(n)s) i""",
            params,
        )
        db.execute(
            """INSERT INTO oms.orders (id, account_id, client_order_id, request_fingerprint, symbol,
                   side, type, time_in_force, status, quantity, filled_quantity,
                   average_fill_price, execution_mode, commission, origin, created_at, updated_at,
                   version)
               SELECT md5(%(a)s || k || i)::uuid, %(a)s, 'b-' || k || i, repeat('0', 64),
                      'EURUSD', CASE k WHEN 'o' THEN 'BUY' ELSE 'SELL' END, 'MARKET', 'IOC',
                      'FILLED', 0.1, 0.1, 1.1, 'MARKET', 0.70, 'CLIENT',
                      %(start)s::timestamptz + i * interval '2 minutes'
                          + CASE k WHEN 'o' THEN interval '0' ELSE interval '1 minute' END,
                      %(start)s::timestamptz + i * interval '2 minutes'
                          + CASE k WHEN 'o' THEN interval '0' ELSE interval '1 minute' END, 3
                 FROM generate_series(1, %(n)s) i, (VALUES ('o'), ('c')) AS kinds(k)""",
            params,
        )
        db.execute(
            """INSERT INTO oms.trades (id, order_id, client_order_id, account_id, symbol, side,
                   quantity, price, commission, realized_pnl, currency, position_id,
                   position_effect, origin, fill_time)
               SELECT md5(%(a)s || 't' || k || i)::uuid, md5(%(a)s || k || i)::uuid,
                      'b-' || k || i, %(a)s, 'EURUSD',
                      CASE k WHEN 'o' THEN 'BUY' ELSE 'SELL' END, 0.1,
                      1.1 + (i %% 100) * 0.0001
                          + CASE k WHEN 'o' THEN 0 ELSE (i %% 7 - 3) * 0.0001 END,
                      0.70, CASE k WHEN 'o' THEN 0 ELSE (i %% 7 - 3) * 1.00 END, 'USD',
                      md5(%(a)s || 'p' || i)::uuid, CASE k WHEN 'o' THEN 'OPEN' ELSE 'CLOSE' END,
                      'CLIENT',
                      %(start)s::timestamptz + i * interval '2 minutes'
                          + CASE k WHEN 'o' THEN interval '0' ELSE interval '1 minute' END
                 FROM generate_series(1, %(n)s) i, (VALUES ('o'), ('c')) AS kinds(k)""",
            params,
        )
        # The ledger: the deposit, then per fill its commission and per close its P&L, with
        # the running balance.
        db.execute(
            """INSERT INTO account.ledger_entries (id, journal_id, account_id, sequence, reason,
                   amount, balance_after, currency, reference_type, reference_id, actor_kind,
                   actor_id, description, trade_id, position_id, created_at)
               SELECT gen_random_uuid(), gen_random_uuid(), %(a)s,
                      row_number() OVER w, reason, amount,
                      sum(amount) OVER w, 'USD', 'bench', %(a)s || ref, 'SYSTEM', 'bench', '',
                      trade, position, at
                 FROM (
                   SELECT 'DEPOSIT' AS reason, 1000000.00 AS amount, 'deposit' AS ref,
                          NULL::uuid AS trade, NULL::uuid AS position,
                          %(start)s::timestamptz - interval '1 hour' AS at, 0 AS ord
                   UNION ALL
                   SELECT 'COMMISSION', -0.70, 'c' || k || i, md5(%(a)s || 't' || k || i)::uuid,
                          md5(%(a)s || 'p' || i)::uuid,
                          %(start)s::timestamptz + i * interval '2 minutes'
                              + CASE k WHEN 'o' THEN interval '0' ELSE interval '1 minute' END,
                          1
                     FROM generate_series(1, %(n)s) i, (VALUES ('o'), ('c')) AS kinds(k)
                   UNION ALL
                   SELECT 'REALIZED_PNL', (i %% 7 - 3) * 1.00, 'p' || i,
                          md5(%(a)s || 'tc' || i)::uuid, md5(%(a)s || 'p' || i)::uuid,
                          %(start)s::timestamptz + i * interval '2 minutes' + interval '1 minute',
                          2
                     FROM generate_series(1, %(n)s) i WHERE i %% 7 <> 3
                 ) movements
               WINDOW w AS (ORDER BY at, ord, ref)""",
            params,
        )
    return account


def seed_export_account(db: psycopg.Connection[Any], trades: int) -> str:
    """`trades` fills over 1,000 orders and positions (a fill's order and position exist; the
    export reads fills only)."""
    account = _new_account(db, f"8{uuid.uuid4().int % 10**8:08d}")
    params = {"a": uuid.UUID(account), "n": trades, "start": START}
    with db.transaction():
        db.execute("SET LOCAL session_replication_role = replica")
        db.execute(
            """INSERT INTO oms.positions (id, account_id, symbol, netting, side, status, quantity,
                   open_price, open_order_id, open_time, update_time, version)
               SELECT md5(%(a)s || 'p' || i)::uuid, %(a)s, 'EURUSD', false, 'BUY', 'OPEN', 1,
                      1.1, md5(%(a)s || 'o' || i)::uuid, %(start)s, %(start)s, 1
                 FROM generate_series(0, 999) i""",
            params,
        )
        db.execute(
            """INSERT INTO oms.orders (id, account_id, client_order_id, request_fingerprint, symbol,
                   side, type, time_in_force, status, quantity, filled_quantity, origin,
                   created_at, updated_at, version)
               SELECT md5(%(a)s || 'o' || i)::uuid, %(a)s, 'x-' || i, repeat('0', 64), 'EURUSD',
                      'BUY', 'MARKET', 'IOC', 'FILLED', 1000, 1000, 'CLIENT', %(start)s,
                      %(start)s, 2
                 FROM generate_series(0, 999) i""",
            params,
        )
        db.execute(
            """INSERT INTO oms.trades (id, order_id, client_order_id, account_id, symbol, side,
                   quantity, price, commission, realized_pnl, currency, position_id,
                   position_effect, origin, fill_time)
               SELECT gen_random_uuid(), md5(%(a)s || 'o' || (i %% 1000))::uuid,
                      'x-' || (i %% 1000),
                      %(a)s, 'EURUSD', 'BUY', 0.01, 1.1 + (i %% 1000) * 0.00001, 0.07, 0, 'USD',
                      md5(%(a)s || 'p' || (i %% 1000))::uuid, 'INCREASE', 'CLIENT',
                      %(start)s::timestamptz + i * interval '10 milliseconds'
                 FROM generate_series(1, %(n)s) i""",
            params,
        )
    return account


def wait_for_replica(primary: psycopg.Connection[Any], replica: psycopg.Connection[Any]) -> float:
    started = time.monotonic()
    row = primary.execute("SELECT pg_current_wal_lsn()").fetchone()
    assert row is not None
    target = row[0]
    while True:
        done = replica.execute(
            "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), %s) >= 0", (target,)
        ).fetchone()
        if done and done[0]:
            return time.monotonic() - started
        time.sleep(0.2)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure_statement(
    stub: api_grpc.ReportingServiceStub, md: Any, account: str, runs: int
) -> dict[str, Any]:
    request = api.GetStatementRequest(account_id=account, time_range=types_pb2.TimeRange())
    stub.GetStatement(request, metadata=md, timeout=60)  # warm-up
    seconds = []
    statement = None
    for _ in range(runs):
        started = time.perf_counter()
        statement = stub.GetStatement(request, metadata=md, timeout=60).statement
        seconds.append(time.perf_counter() - started)
    assert statement is not None
    return {
        "runs_s": [round(s, 3) for s in seconds],
        "median_s": round(statistics.median(seconds), 3),
        "closed_trades_listed": len(statement.closed_trades),
        "truncated": statement.truncated,
        "closing_balance": statement.closing_balance,
        "target_s": STATEMENT_TARGET_S,
        "met": statistics.median(seconds) <= STATEMENT_TARGET_S,
    }


def measure_export(
    stub: api_grpc.ReportingServiceStub, md: Any, account: str, reporting_pid: int
) -> dict[str, Any]:
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(_rss_kib(reporting_pid))
            time.sleep(0.1)

    before = _rss_kib(reporting_pid)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rows = 0
    size = 0
    chunks = 0
    started = time.perf_counter()
    try:
        for chunk in stub.ExportTrades(
            api.ExportTradesRequest(account_id=account, time_range=types_pb2.TimeRange()),
            metadata=md,
            timeout=600,
        ):
            data = chunk.chunk.data
            rows += data.count(b"\r\n")
            size += len(data)
            chunks += 1
    finally:
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    rows -= 1  # the header
    rate = rows / seconds
    return {
        "rows": rows,
        "bytes": size,
        "chunks": chunks,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rate),
        "reporting_rss_kib": {
            "before": before,
            "peak_during": max(samples, default=before),
            "after": _rss_kib(reporting_pid),
        },
        "target_rows_per_s": EXPORT_TARGET_ROWS_S,
        "met": rate >= EXPORT_TARGET_ROWS_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="use this running stack instead of starting one")
    parser.add_argument("--statement-trades", type=int, default=100_000)
    parser.add_argument("--export-trades", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/reporting.json"))
    args = parser.parse_args()
    load_start = os.getloadavg()
    with bench_stack(args.stack, 300, prefix="bench-reporting", edge_limits={}) as bench:
        with _admin(bench, bench.ports.postgres) as primary:
            started = time.monotonic()
            statement_account = seed_statement_account(primary, args.statement_trades)
            export_account = seed_export_account(primary, args.export_trades)
            # The statistics a live database would have (autovacuum would make them later).
            primary.execute("ANALYZE oms.trades, oms.orders, oms.positions, account.ledger_entries")
            seeded = time.monotonic() - started
            print(
                f"seeded {args.statement_trades:,} + {args.export_trades:,} fills in {seeded:.1f} s"
            )
            with _admin(bench, bench.ports.postgres_replica) as replica:
                caught_up = wait_for_replica(primary, replica)
            print(f"the replica caught up {caught_up:.1f} s later")
        operator = bench.state.operator
        assert operator is not None, "the stack recorded no operator login"
        reporting = bench.state.component("reporting")
        assert reporting is not None
        assert reporting.pid is not None
        credentials = grpc.ssl_channel_credentials(Path(bench.state.endpoints.ca_file).read_bytes())
        with grpc.secure_channel(bench.state.endpoints.grpc, credentials) as channel:
            token = (
                auth_service_pb2_grpc.AuthServiceStub(channel)
                .Login(
                    auth_service_pb2.LoginRequest(
                        username=operator.username, password=operator.password
                    ),
                    timeout=20,
                )
                .access_token
            )
            md = (("authorization", f"Bearer {token}"),)
            stub = api_grpc.ReportingServiceStub(channel)
            statement = measure_statement(stub, md, statement_account, args.runs)
            export = measure_export(stub, md, export_account, reporting.pid)
    load_end = os.getloadavg()
    summary = {
        "benchmark": "reporting",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m_start": round(load_start[0], 2),
            "load_average_1m_end": round(load_end[0], 2),
        },
        "seed": {
            "statement_trades": args.statement_trades,
            "export_trades": args.export_trades,
            "seconds": round(seeded, 1),
            "replica_catch_up_s": round(caught_up, 1),
        },
        "statement": statement,
        "export": export,
    }
    rss = export["reporting_rss_kib"]
    rows = [
        ("measure", "result", "target"),
        (
            f"GetStatement, {args.statement_trades:,} fills (median of {args.runs})",
            f"{statement['median_s']:.3f} s",
            f"<= {STATEMENT_TARGET_S} s {'met' if statement['met'] else 'NOT met'}",
        ),
        (
            f"ExportTrades, {export['rows']:,} rows",
            f"{export['rows_per_s']:,} rows/s ({export['seconds']} s)",
            f">= {EXPORT_TARGET_ROWS_S:,}/s {'met' if export['met'] else 'NOT met'}",
        ),
        (
            "reporting RSS before / peak / after (KiB)",
            f"{rss['before']:,} / {rss['peak_during']:,} / {rss['after']:,}",
            "flat",
        ),
        (
            "load average (1 min) start / end",
            f"{load_start[0]:.2f} / {load_end[0]:.2f}",
            "",
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

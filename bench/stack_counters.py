"""The cumulative counters of a running stack that an order's cost is computed from (the groups
are described in bench/order_costs.py): CPU per component from /proc, SQL statements and
transactions per database role from pg_stat_statements and pg_stat_database, messages per
JetStream stream and per NATS client from the NATS monitoring port.

PostgreSQL is read as its superuser over the unix socket in its data directory (trusted there,
stack/components/postgres.py), on one connection kept for the run; the superuser's own
statements, i.e. these reads, are left out of the figures. pg_stat_statements must have been
loaded when PostgreSQL started (`shared_preload_libraries`, as `tradingmesh up` starts it);
a stack started before that reports no SQL figures, and says why.

Every reading is bounded (a few seconds at most); what cannot be read is left out of the
counters and explained in `unavailable`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextlib import suppress
from pathlib import Path
from typing import Any
from typing import Final

import psycopg

from bench import probes
from bench.order_costs import CPU_MS
from bench.order_costs import DATABASE_TRANSACTIONS
from bench.order_costs import NATS_CLIENTS
from bench.order_costs import NATS_QUOTES
from bench.order_costs import NATS_SERVER
from bench.order_costs import NATS_STREAMS
from bench.order_costs import SQL_EVICTIONS
from bench.order_costs import Counters
from bench.order_costs import sql_by_role
from stack.components.postgres import DATABASE
from stack.paths import StackPaths
from stack.ports import Ports
from stack.state import StackState

__all__ = ["StackCounters", "stack_counters"]

# services/platform/bus.py STREAMS: the stream pricing publishes every quote to.
QUOTE_STREAM: Final = "PRICING_QUOTES"
_UNNAMED: Final = "(unnamed)"

_STATEMENTS: Final = """
SELECT r.rolname, s.query, s.calls
FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
WHERE s.userid <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
"""
_EVICTIONS: Final = "SELECT dealloc FROM pg_stat_statements_info"
_DATABASE: Final = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s"


class StackCounters:
    """Reads the counters of one stack; `unavailable` says what could not be read and why."""

    def __init__(self, state: StackState) -> None:
        self.ports = Ports(state.base_port)
        # Every component with a process of its own: the whole stack's CPU.
        self.pids = probes.component_pids(state, [c.name for c in state.components])
        self.unavailable: dict[str, str] = {}
        self._socket_dir = StackPaths(state.name, Path(state.state_dir)).postgres_data
        self._sql: psycopg.Connection[tuple[Any, ...]] | None = None
        self._statements = True

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]] | None:
        if self._sql is None or self._sql.closed:
            try:
                self._sql = psycopg.connect(
                    host=str(self._socket_dir),
                    port=self.ports.postgres,
                    user="postgres",
                    dbname="postgres",
                    connect_timeout=5,
                    autocommit=True,
                    application_name="tradingmesh-bench",
                )
            except psycopg.Error as error:
                self.unavailable["sql"] = f"cannot connect to PostgreSQL: {error}".strip()
                return None
        return self._sql

    def close(self) -> None:
        if self._sql is not None:
            with suppress(psycopg.Error):
                self._sql.close()

    def read(self, cpu_first: bool) -> Counters:
        """Every counter, CPU first or last: read CPU last at the start of a window and first
        at its end, so that these reads' own work (SQL, HTTP) stays out of the CPU figures."""
        counters: Counters = {}
        if cpu_first:
            counters.update(self.cpu())
        counters.update(self.sql())
        counters.update(self.nats())
        if not cpu_first:
            counters.update(self.cpu())
        return counters

    def cpu(self) -> Counters:
        seconds = probes.cpu_seconds_by_tree(self.pids)
        return {CPU_MS: {name: 1000 * value for name, value in seconds.items()}}

    def sql(self) -> Counters:
        connection = self._connection()
        if connection is None:
            return {}
        counters: Counters = {}
        try:
            row = connection.execute(_DATABASE, (DATABASE,)).fetchone()
            if row is not None:
                counters[DATABASE_TRANSACTIONS] = {DATABASE: float(row[0])}
        except psycopg.Error as error:
            self.unavailable["database_transactions"] = str(error).strip()
        if not self._statements:
            return counters
        try:
            rows = connection.execute(_STATEMENTS).fetchall()
            (evicted,) = connection.execute(_EVICTIONS).fetchone() or (0,)
        except psycopg.Error as error:
            # Not loaded at PostgreSQL's start (a stack started before the dev stack loaded it),
            # or the extension is missing: no statement figures for this run.
            self._statements = False
            self.unavailable["sql_statements"] = (
                f"{str(error).strip()} (pg_stat_statements is loaded when PostgreSQL starts: "
                "restart the stack's PostgreSQL with this version of stack/)"
            )
            return counters
        counters.update(sql_by_role((str(r), str(q), float(c)) for r, q, c in rows))
        counters[SQL_EVICTIONS] = {"pg_stat_statements": float(evicted)}
        return counters

    def nats(self) -> Counters:
        port = self.ports.nats_monitor
        try:
            jsz = probes.monitor_json(port, "/jsz?streams=true")
            varz = probes.monitor_json(port, "/varz")
            connz = probes.monitor_json(port, "/connz?state=all&limit=4096")
        except (OSError, ValueError) as error:
            self.unavailable["nats"] = str(error)
            return {}
        streams: dict[str, float] = {}
        for account in jsz.get("account_details") or ():
            for stream in account.get("stream_detail") or ():
                # The last sequence number counts every message stored, also those a stream
                # keeps only the last of per subject (the quotes).
                streams[stream["name"]] = float(stream["state"]["last_seq"])
        quotes = {QUOTE_STREAM: streams.pop(QUOTE_STREAM)} if QUOTE_STREAM in streams else {}
        # Open and closed connections: a client's messages stay counted after it disconnects
        # (as long as the server remembers the closed connection).
        clients: dict[str, float] = {}
        for connection in connz.get("connections") or ():
            name = connection.get("name") or _UNNAMED
            clients[name] = clients.get(name, 0) + float(connection.get("in_msgs", 0))
        return {
            NATS_STREAMS: streams,
            NATS_QUOTES: quotes,
            NATS_SERVER: {
                "in_msgs": float(varz["in_msgs"]),
                "out_msgs": float(varz["out_msgs"]),
            },
            NATS_CLIENTS: clients,
        }


@contextmanager
def stack_counters(state: StackState) -> Iterator[StackCounters]:
    counters = StackCounters(state)
    try:
        yield counters
    finally:
        counters.close()

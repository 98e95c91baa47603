"""What an order costs the whole stack, without I/O: the differences of the stack's cumulative
counters over a window (bench.stack_counters reads them), net of what the idle stack does in the
same time, per FILLED order (shown by bench.order_costs_report).

Counters are grouped: each group maps a key (a component, a database role, a stream, a NATS
client) to a cumulative figure. Groups:

- `cpu_ms`: CPU milliseconds (user + system) per component's process tree;
- `sql_statements`: statements each database role sent (pg_stat_statements `calls`, top-level,
  every statement including BEGIN/COMMIT/ROLLBACK/SAVEPOINT);
- `sql_transaction_control`: of those, the transaction control statements;
- `sql_transactions`: of those, the ones that end a transaction (COMMIT, ROLLBACK; not ROLLBACK TO
  SAVEPOINT): the role's explicit transactions;
- `database_transactions`: pg_stat_database commits + rollbacks of the platform's database (also
  counts statements run outside an explicit transaction; each backend reports within about a
  second, so a window's figure can be off by about a second's worth);
- `sql_evictions`: pg_stat_statements entries evicted (its `dealloc`): when not 0, the statement
  figures of the window are too low;
- `nats_streams`: messages stored in each JetStream stream (its last sequence number), the quote
  stream apart in `nats_quotes`;
- `nats_server`: messages the NATS server received from its clients and delivered to them
  (`/varz` in_msgs, out_msgs);
- `nats_clients`: messages each NATS client (connection name) sent to the server.

Derived from the differences: `nats_received` (`quotes`: the quotes pricing published, `other`:
every other message the server received — events, JetStream API calls, acknowledgements, pull
requests).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from typing import Final

Counters = dict[str, dict[str, float]]

CPU_MS: Final = "cpu_ms"
SQL_STATEMENTS: Final = "sql_statements"
SQL_TRANSACTION_CONTROL: Final = "sql_transaction_control"
SQL_TRANSACTIONS: Final = "sql_transactions"
DATABASE_TRANSACTIONS: Final = "database_transactions"
SQL_EVICTIONS: Final = "sql_evictions"
NATS_STREAMS: Final = "nats_streams"
NATS_QUOTES: Final = "nats_quotes"
NATS_SERVER: Final = "nats_server"
NATS_CLIENTS: Final = "nats_clients"
NATS_RECEIVED: Final = "nats_received"
LOAD_CLIENTS_CPU_MS: Final = "load_clients_cpu_ms"  # the benchmark's own, never in a total

# Groups whose keys add up to a meaningful whole (in_msgs + out_msgs does not).
TOTALLED: Final = frozenset(
    {
        CPU_MS,
        SQL_STATEMENTS,
        SQL_TRANSACTION_CONTROL,
        SQL_TRANSACTIONS,
        DATABASE_TRANSACTIONS,
        NATS_STREAMS,
        NATS_CLIENTS,
        NATS_RECEIVED,
    }
)
TOTAL: Final = "total"

_TRANSACTION_ENDS: Final = frozenset({"COMMIT", "END", "ROLLBACK", "ABORT"})
_TRANSACTION_CONTROL: Final = _TRANSACTION_ENDS | {"BEGIN", "START", "SAVEPOINT", "RELEASE"}


def statement_kind(query: str) -> str:
    """ "end" for a statement that ends a transaction (COMMIT, ROLLBACK), "control" for the other
    transaction control statements (BEGIN, SAVEPOINT, RELEASE, ROLLBACK TO SAVEPOINT), "work" for
    everything else."""
    words = query.split(None, 2)
    first = words[0].upper().rstrip(";") if words else ""
    if first not in _TRANSACTION_CONTROL:
        return "work"
    # ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name: the transaction goes on.
    rest = [w.upper().rstrip(";") for w in query.split()[1:3]]
    if first == "ROLLBACK" and "TO" in rest:
        return "control"
    return "end" if first in _TRANSACTION_ENDS else "control"


def sql_by_role(rows: Iterable[tuple[str, str, float]]) -> Counters:
    """The SQL groups from pg_stat_statements rows (role, query text, calls)."""
    statements: dict[str, float] = {}
    control: dict[str, float] = {}
    ends: dict[str, float] = {}
    for role, query, calls in rows:
        statements[role] = statements.get(role, 0) + calls
        kind = statement_kind(query)
        control.setdefault(role, 0)
        ends.setdefault(role, 0)
        if kind != "work":
            control[role] += calls
        if kind == "end":
            ends[role] += calls
    return {SQL_STATEMENTS: statements, SQL_TRANSACTION_CONTROL: control, SQL_TRANSACTIONS: ends}


def delta(before: Mapping[str, Mapping[str, float]], after: Counters) -> Counters:
    """after - before for every group read at both ends; a key new at the end counts from 0 (a
    new role, stream or client); a key gone at the end (a process that exited) is left out."""
    return {
        group: {key: value - before[group].get(key, 0) for key, value in values.items()}
        for group, values in after.items()
        if group in before
    }


def with_derived(change: Counters) -> Counters:
    """The differences with `nats_received` added: the server's received messages split into
    the quotes pricing published and the rest."""
    server, quotes = change.get(NATS_SERVER), change.get(NATS_QUOTES)
    if server is None or "in_msgs" not in server or quotes is None:
        return change
    published = sum(quotes.values())
    return {
        **change,
        NATS_RECEIVED: {"quotes": published, "other": server["in_msgs"] - published},
    }


def net_of_idle(change: Counters, seconds: float, idle: Counters, idle_seconds: float) -> Counters:
    """A window's differences minus what the idle stack did in as long (its differences over
    `idle_seconds`, scaled to `seconds`). The result can be below zero where the window did
    less of the idle work than the idle window (e.g. fewer quotes): shown as measured."""
    if seconds <= 0 or idle_seconds <= 0:
        raise ValueError(f"windows of {seconds} s and {idle_seconds} s")
    scale = seconds / idle_seconds
    return {
        group: {
            key: value - scale * idle.get(group, {}).get(key, 0) for key, value in values.items()
        }
        for group, values in change.items()
        if group in idle or group == LOAD_CLIENTS_CPU_MS
    }


def per_order(change: Counters, orders: int, digits: int = 3) -> Counters | None:
    """Each figure divided by `orders`, with a `total` for the groups that add up; None when
    no order counts."""
    if orders <= 0:
        return None
    result: Counters = {}
    for group, values in change.items():
        shares = {key: round(value / orders, digits) for key, value in sorted(values.items())}
        if group in TOTALLED:
            shares[TOTAL] = round(sum(values.values()) / orders, digits)
        result[group] = shares
    return result


def per_second(change: Counters, seconds: float, digits: int = 2) -> Counters:
    return {
        group: {key: round(value / seconds, digits) for key, value in sorted(values.items())}
        for group, values in change.items()
    }


def with_totals(change: Counters) -> Counters:
    """The differences with a `total` in each group that adds up (for per_second views)."""
    return {
        group: {**values, TOTAL: sum(values.values())} if group in TOTALLED else dict(values)
        for group, values in change.items()
    }

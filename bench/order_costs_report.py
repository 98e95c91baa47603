"""How bench.orders shows what an order costs: three rows per orders phase in the main table
(CPU, SQL, NATS per FILLED order, judged against issue 14's budget), and a breakdown with one
column per orders phase (per component, database role, stream and NATS client).

Every figure is written "net (gross)": gross is everything the stack did in the phase's window
per FILLED order; net subtracts what the idle stack did in as long (bench.order_costs).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Final

from bench.order_costs import CPU_MS
from bench.order_costs import DATABASE_TRANSACTIONS
from bench.order_costs import LOAD_CLIENTS_CPU_MS
from bench.order_costs import NATS_CLIENTS
from bench.order_costs import NATS_RECEIVED
from bench.order_costs import NATS_STREAMS
from bench.order_costs import SQL_EVICTIONS
from bench.order_costs import SQL_STATEMENTS
from bench.order_costs import SQL_TRANSACTION_CONTROL
from bench.order_costs import SQL_TRANSACTIONS
from bench.order_costs import TOTAL
from bench.order_costs import TOTALLED
from bench.order_costs import Counters

# Issue 14's budget per FILLED market order across the stack, judged on the net figures: the
# idle stack's own work (prices above all) is not the order's cost.
TARGET_CPU_MS_PER_ORDER: Final = 5.0
TARGET_STATEMENTS_PER_ORDER: Final = 12.0
TARGET_TRANSACTIONS_PER_ORDER: Final = 3.0

# The breakdown's sections: (group, title).
_SECTIONS: Final = (
    (CPU_MS, "CPU ms"),
    (LOAD_CLIENTS_CPU_MS, "CPU ms, the benchmark's own (not in the total)"),
    (SQL_STATEMENTS, "SQL statements"),
    (SQL_TRANSACTION_CONTROL, "SQL statements that are BEGIN/COMMIT/.."),
    (SQL_TRANSACTIONS, "SQL transactions (COMMIT, ROLLBACK)"),
    (DATABASE_TRANSACTIONS, "pg_stat_database transactions (implicit too)"),
    (NATS_STREAMS, "NATS messages stored in stream"),
    (NATS_RECEIVED, "NATS messages received"),
    (NATS_CLIENTS, "NATS messages sent by"),
)
_SHOWN: Final = 0.005  # a key whose figures all round to 0.00 is left out of the breakdown

Row = tuple[str, str, str, str]


def figure(value: float | None) -> str:
    """Three significant digits or so; "?" for what was not measured."""
    if value is None:
        return "?"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _pair(net: Mapping[str, float], gross: Mapping[str, float], key: str) -> str:
    """ "net (gross)" of one key."""
    return f"{figure(net.get(key))} ({figure(gross.get(key))})"


def _verdict(value: float | None, target: float) -> str:
    return "" if value is None else ("met" if value <= target else "NOT met")


def _costs(phase: Mapping[str, Any]) -> tuple[Counters, Counters] | None:
    """(net, gross) per FILLED order; None if no order FILLED (or not an orders phase)."""
    cost = phase.get("per_filled_order")
    if cost is None or cost["gross"] is None:
        return None
    return cost["net_of_idle"] or {}, cost["gross"]


def cost_rows(phase: Mapping[str, Any]) -> list[Row]:
    """An orders phase's rows in the main table: CPU, SQL and NATS per FILLED order."""
    if phase.get("per_filled_order") is None:
        return []
    costs = _costs(phase)
    if costs is None:
        return [("  per FILLED order", "no order FILLED in the window", "", "")]
    net, gross = costs
    filled = phase["per_filled_order"]["filled"]
    cpu = net.get(CPU_MS, {})
    rows: list[Row] = [
        (
            f"  CPU ms per FILLED order (of {filled:,}), stack: net of idle (gross)",
            _pair(cpu, gross.get(CPU_MS, {}), TOTAL),
            f"<= {TARGET_CPU_MS_PER_ORDER:g} net",
            _verdict(cpu.get(TOTAL), TARGET_CPU_MS_PER_ORDER),
        )
    ]
    if SQL_STATEMENTS in gross:
        statements, transactions = net.get(SQL_STATEMENTS, {}), net.get(SQL_TRANSACTIONS, {})
        evicted = any(phase.get("counters", {}).get(SQL_EVICTIONS, {}).values())
        rows.append(
            (
                "  SQL statements / transactions per order: net (gross)"
                + (" - TOO LOW, entries evicted" if evicted else ""),
                f"{_pair(statements, gross[SQL_STATEMENTS], TOTAL)} / "
                f"{_pair(transactions, gross[SQL_TRANSACTIONS], TOTAL)}",
                f"<= {TARGET_STATEMENTS_PER_ORDER:g} / <= {TARGET_TRANSACTIONS_PER_ORDER:g} net",
                f"{_verdict(statements.get(TOTAL), TARGET_STATEMENTS_PER_ORDER)} / "
                f"{_verdict(transactions.get(TOTAL), TARGET_TRANSACTIONS_PER_ORDER)}",
            )
        )
    else:
        rows.append(("  SQL per order", "not measured (counters_unavailable in the JSON)", "", ""))
    if NATS_STREAMS in gross:
        received, received_net = gross.get(NATS_RECEIVED, {}), net.get(NATS_RECEIVED, {})
        rows.append(
            (
                "  NATS per order, net (gross): stored in streams / other messages / quotes",
                f"{_pair(net.get(NATS_STREAMS, {}), gross[NATS_STREAMS], TOTAL)} / "
                f"{_pair(received_net, received, 'other')} / "
                f"{_pair(received_net, received, 'quotes')}",
                "",
                "",
            )
        )
    else:
        rows.append(("  NATS per order", "not measured (counters_unavailable in the JSON)", "", ""))
    return rows


def echo_cost_rows(phase: Mapping[str, Any]) -> list[Row]:
    """An echo phase's CPU per answered call, net of idle: the fixed cost of one request
    through the edge (Envoy, and the Python service that answers it), which every order pays
    once at the edge and, inside, again per hop (the OMS's risk check)."""
    cost = phase.get("per_answered_call")
    if cost is None or not cost["net_of_idle"]:
        return []
    cpu = cost["net_of_idle"].get(CPU_MS, {})
    parts = [
        f"{name} {figure(value)}"
        for name, value in sorted(cpu.items(), key=lambda item: -item[1])
        if name != TOTAL and value >= 0.05
    ]
    return [
        (
            "  CPU ms per echo call, net of idle: total; largest",
            f"{figure(cpu.get(TOTAL))}; " + ", ".join(parts[:3]),
            "",
            "",
        )
    ]


def idle_row(idle: Mapping[str, Any]) -> Row:
    """The idle stack per second: what the net figures subtract."""
    rate: Counters = idle["per_second"]
    parts = [f"CPU {figure(rate.get(CPU_MS, {}).get(TOTAL))} ms"]
    if SQL_STATEMENTS in rate:
        parts.append(
            f"{figure(rate[SQL_STATEMENTS].get(TOTAL))} statements, "
            f"{figure(rate[SQL_TRANSACTIONS].get(TOTAL))} transactions"
        )
    if NATS_RECEIVED in rate:
        parts.append(
            f"{figure(rate[NATS_RECEIVED].get('quotes'))} quotes, "
            f"{figure(rate[NATS_RECEIVED].get('other'))} other NATS messages"
        )
    return (
        f"idle stack ({idle['window_seconds']:g} s, no calls), per second",
        "; ".join(parts),
        "",
        "",
    )


def breakdown(
    phases: Sequence[Mapping[str, Any]], labels: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the breakdown: one column per orders phase in which an order
    FILLED (`labels`: each phase's name), one row per component, role, stream or client (the
    largest first, those that round to 0.00 everywhere left out), and each group's total."""
    columns = [
        (label, costs)
        for phase, label in zip(phases, labels, strict=True)
        if (costs := _costs(phase))
    ]
    header = ["per FILLED order: net of idle (gross)", *(label for label, _ in columns)]
    rows: list[list[str]] = []
    for group, title in _SECTIONS:
        present = [
            (net.get(group, {}), gross[group]) for _, (net, gross) in columns if group in gross
        ]
        if not present:
            continue
        largest: dict[str, float] = {}
        for net, gross in present:
            for key in gross.keys() - {TOTAL}:
                value = max(abs(gross[key]), abs(net.get(key, 0)))
                largest[key] = max(largest.get(key, 0), value)
        keys = sorted((k for k, v in largest.items() if v >= _SHOWN), key=lambda k: -largest[k])
        if group in TOTALLED and len(keys) > 1:  # the total of one key is that key
            keys.append(TOTAL)
        for key in keys:
            cells = [
                _pair(net.get(group, {}), gross[group], key) if group in gross else "?"
                for _, (net, gross) in columns
            ]
            rows.append([f"{title}: {key}", *cells])
    return header, rows


def format_matrix(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Lines of a table: the first column left-aligned, the others right-aligned."""
    every = [header, *rows]
    widths = [max(len(row[i]) for row in every) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in every
    ]

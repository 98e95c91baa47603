"""How bench.orders shows an order's cost: rows per phase judged on the net figures, the idle
row, and the breakdown with one column per orders phase (bench.order_costs_report)."""

from __future__ import annotations

from typing import Any

from bench.order_costs import CPU_MS
from bench.order_costs import LOAD_CLIENTS_CPU_MS
from bench.order_costs import NATS_RECEIVED
from bench.order_costs import NATS_SERVER
from bench.order_costs import NATS_STREAMS
from bench.order_costs import SQL_EVICTIONS
from bench.order_costs import SQL_STATEMENTS
from bench.order_costs import SQL_TRANSACTION_CONTROL
from bench.order_costs import SQL_TRANSACTIONS
from bench.order_costs import TOTAL
from bench.order_costs import Counters
from bench.order_costs_report import breakdown
from bench.order_costs_report import cost_rows
from bench.order_costs_report import echo_cost_rows
from bench.order_costs_report import figure
from bench.order_costs_report import format_matrix
from bench.order_costs_report import idle_row


def _phase(gross: Counters | None, net: Counters | None, evicted: float = 0) -> dict[str, Any]:
    return {
        "kind": "orders",
        "counters": {SQL_EVICTIONS: {"pg_stat_statements": evicted}},
        "per_filled_order": {"filled": 300, "gross": gross, "net_of_idle": net},
    }


def _costs() -> tuple[Counters, Counters]:
    gross = {
        CPU_MS: {"oms": 19.0, "risk": 10.0, "pricing": 8.0, TOTAL: 37.0},
        LOAD_CLIENTS_CPU_MS: {"load clients": 3.0},
        SQL_STATEMENTS: {"oms": 28.0, "risk": 13.0, TOTAL: 41.0},
        SQL_TRANSACTION_CONTROL: {"oms": 6.0, "risk": 6.0, TOTAL: 12.0},
        SQL_TRANSACTIONS: {"oms": 3.0, "risk": 3.0, TOTAL: 6.0},
        NATS_STREAMS: {"OMS": 6.0, "RISK": 1.0, TOTAL: 7.0},
        NATS_SERVER: {"in_msgs": 49.0, "out_msgs": 80.0},
        NATS_RECEIVED: {"quotes": 9.0, "other": 40.0, TOTAL: 49.0},
    }
    net = {
        CPU_MS: {"oms": 18.0, "risk": 9.0, "pricing": 0.5, TOTAL: 27.5},
        LOAD_CLIENTS_CPU_MS: {"load clients": 3.0},
        SQL_STATEMENTS: {"oms": 27.5, "risk": 13.0, TOTAL: 40.5},
        SQL_TRANSACTION_CONTROL: {"oms": 6.0, "risk": 6.0, TOTAL: 12.0},
        SQL_TRANSACTIONS: {"oms": 3.0, "risk": 2.5, TOTAL: 5.5},
        NATS_STREAMS: {"OMS": 6.0, "RISK": 1.0, TOTAL: 7.0},
        NATS_SERVER: {"in_msgs": 30.1, "out_msgs": 50.0},
        NATS_RECEIVED: {"quotes": 0.1, "other": 30.0, TOTAL: 30.1},
    }
    return gross, net


def test_figures_keep_about_three_digits() -> None:
    assert [figure(v) for v in (None, 0.004, 3.14159, 27.46, 1234.5, -0.9)] == [
        "?",
        "0.00",
        "3.14",
        "27.5",
        "1,234",
        "-0.90",
    ]


def test_the_rows_show_net_and_gross_and_judge_the_net_figures() -> None:
    gross, net = _costs()

    rows = cost_rows(_phase(gross, net))

    assert rows == [
        (
            "  CPU ms per FILLED order (of 300), stack: net of idle (gross)",
            "27.5 (37.0)",
            "<= 5 net",
            "NOT met",
        ),
        (
            "  SQL statements / transactions per order: net (gross)",
            "40.5 (41.0) / 5.50 (6.00)",
            "<= 12 / <= 3 net",
            "NOT met / NOT met",
        ),
        (
            "  NATS per order, net (gross): stored in streams / other messages / quotes",
            "7.00 (7.00) / 30.0 (40.0) / 0.10 (9.00)",
            "",
            "",
        ),
    ]


def test_a_cheap_order_meets_the_budget() -> None:
    cheap = {
        CPU_MS: {"oms": 3.0, TOTAL: 4.5},
        SQL_STATEMENTS: {"oms": 10.0, TOTAL: 12.0},
        SQL_TRANSACTIONS: {"oms": 1.0, TOTAL: 3.0},
    }

    rows = cost_rows(_phase(cheap, cheap))

    assert [row[3] for row in rows[:2]] == ["met", "met / met"]


def test_evicted_statement_entries_are_flagged() -> None:
    gross, net = _costs()

    flagged = cost_rows(_phase(gross, net, evicted=3))[1][0]

    assert flagged.endswith("TOO LOW, entries evicted")
    assert "evicted" not in cost_rows(_phase(gross, net))[1][0]


def test_what_was_not_measured_is_said_and_not_judged() -> None:
    rows = cost_rows(_phase({CPU_MS: {"oms": 20.0, TOTAL: 20.0}}, None))

    assert rows == [
        (
            "  CPU ms per FILLED order (of 300), stack: net of idle (gross)",
            "? (20.0)",
            "<= 5 net",
            "",
        ),
        ("  SQL per order", "not measured (counters_unavailable in the JSON)", "", ""),
        ("  NATS per order", "not measured (counters_unavailable in the JSON)", "", ""),
    ]


def test_a_phase_without_a_filled_order_says_so() -> None:
    assert cost_rows(_phase(None, None)) == [
        ("  per FILLED order", "no order FILLED in the window", "", "")
    ]


def test_an_echo_phase_has_no_cost_rows() -> None:
    assert cost_rows({"kind": "echo"}) == []


def test_the_idle_row_shows_the_rates_subtracted() -> None:
    idle = {
        "window_seconds": 10.0,
        "per_second": {
            CPU_MS: {"pricing": 250.0, TOTAL: 400.0},
            SQL_STATEMENTS: {"risk": 2.0, TOTAL: 3.0},
            SQL_TRANSACTIONS: {"risk": 1.0, TOTAL: 1.0},
            NATS_RECEIVED: {"quotes": 120.0, "other": 30.0, TOTAL: 150.0},
        },
    }

    row = idle_row(idle)

    assert row == (
        "idle stack (10 s, no calls), per second",
        "CPU 400 ms; 3.00 statements, 1.00 transactions; 120 quotes, 30.0 other NATS messages",
        "",
        "",
    )


def test_the_breakdown_has_a_column_per_phase_largest_keys_first_and_totals() -> None:
    gross, net = _costs()
    slow = {CPU_MS: {"oms": 40.0, "risk": 12.0, "redis": 0.001, TOTAL: 52.001}}
    phases = [_phase(gross, net), _phase(slow, slow), _phase(None, None)]

    header, rows = breakdown(phases, ["orders at 10/s", "orders at 30/s", "orders full"])

    assert header == ["per FILLED order: net of idle (gross)", "orders at 10/s", "orders at 30/s"]
    cpu = [row for row in rows if row[0].startswith("CPU ms: ")]
    assert cpu == [
        ["CPU ms: oms", "18.0 (19.0)", "40.0 (40.0)"],
        ["CPU ms: risk", "9.00 (10.0)", "12.0 (12.0)"],
        ["CPU ms: pricing", "0.50 (8.00)", "? (?)"],
        ["CPU ms: total", "27.5 (37.0)", "52.0 (52.0)"],
    ]  # redis rounds to 0.00 everywhere: left out
    assert ["SQL statements: oms", "27.5 (28.0)", "?"] in rows
    assert ["NATS messages received: quotes", "0.10 (9.00)", "?"] in rows
    # in_msgs + out_msgs adds up to nothing: no total, and the server figures are not a section.
    assert not any(row[0].startswith("NATS messages sent by") for row in rows)
    assert not any("in_msgs" in row[0] for row in rows)


def test_the_matrix_aligns_names_left_and_figures_right() -> None:
    lines = format_matrix(["name", "a"], [["oms", "1.00 (2.00)"], ["total", "10.0 (20.0)"]])

    assert lines == ["name             a", "oms    1.00 (2.00)", "total  10.0 (20.0)"]


def test_an_echo_phase_shows_its_cpu_per_call_with_the_largest_components() -> None:
    net = {CPU_MS: {"oms": 1.67, "envoy": 1.07, "postgres": 0.02, "nats": 0.1, TOTAL: 2.86}}
    phase = {"kind": "echo", "per_answered_call": {"filled": 300, "gross": net, "net_of_idle": net}}

    assert echo_cost_rows(phase) == [
        (
            "  CPU ms per echo call, net of idle: total; largest",
            "2.86; oms 1.67, envoy 1.07, nats 0.10",
            "",
            "",
        )
    ]
    assert echo_cost_rows({"kind": "echo"}) == []

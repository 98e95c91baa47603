"""What an order costs the stack (bench.order_costs): differences of cumulative counters, net of
the idle stack, per FILLED order."""

from __future__ import annotations

import pytest

from bench.order_costs import CPU_MS
from bench.order_costs import LOAD_CLIENTS_CPU_MS
from bench.order_costs import NATS_CLIENTS
from bench.order_costs import NATS_QUOTES
from bench.order_costs import NATS_RECEIVED
from bench.order_costs import NATS_SERVER
from bench.order_costs import NATS_STREAMS
from bench.order_costs import SQL_STATEMENTS
from bench.order_costs import SQL_TRANSACTION_CONTROL
from bench.order_costs import SQL_TRANSACTIONS
from bench.order_costs import TOTAL
from bench.order_costs import Counters
from bench.order_costs import delta
from bench.order_costs import net_of_idle
from bench.order_costs import per_order
from bench.order_costs import per_second
from bench.order_costs import sql_by_role
from bench.order_costs import statement_kind
from bench.order_costs import with_derived
from bench.order_costs import with_totals


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("BEGIN", "control"),
        ("BEGIN READ ONLY", "control"),
        ("begin isolation level serializable", "control"),
        ("START TRANSACTION", "control"),
        ("SAVEPOINT sa_savepoint_1", "control"),
        ("RELEASE SAVEPOINT sa_savepoint_1", "control"),
        ("ROLLBACK TO SAVEPOINT sa_savepoint_1", "control"),
        ("ROLLBACK WORK TO sp", "control"),
        ("COMMIT", "end"),
        ("commit;", "end"),
        ("END", "end"),
        ("ROLLBACK", "end"),
        ("ABORT", "end"),
        ("INSERT INTO oms.outbox (id) VALUES ($1)", "work"),
        ("SELECT $1", "work"),
        ("  UPDATE oms.orders SET status = $1", "work"),
        ("", "work"),
    ],
)
def test_statements_are_sorted_into_work_transaction_control_and_transaction_ends(
    query: str, kind: str
) -> None:
    assert statement_kind(query) == kind


def test_sql_figures_are_summed_per_role() -> None:
    rows = [
        ("oms", "BEGIN", 10.0),
        ("oms", "INSERT INTO oms.orders VALUES ($1)", 10.0),
        ("oms", "INSERT INTO oms.orders VALUES ($1)", 2.0),  # the same text in another database
        ("oms", "COMMIT", 9.0),
        ("oms", "ROLLBACK", 1.0),
        ("risk", "SELECT $1", 4.0),
    ]

    groups = sql_by_role(rows)

    assert groups[SQL_STATEMENTS] == {"oms": 32.0, "risk": 4.0}
    assert groups[SQL_TRANSACTION_CONTROL] == {"oms": 20.0, "risk": 0.0}
    assert groups[SQL_TRANSACTIONS] == {"oms": 10.0, "risk": 0.0}


def test_the_difference_counts_new_keys_from_zero_and_leaves_out_vanished_ones() -> None:
    before: Counters = {CPU_MS: {"oms": 1000.0, "gone": 50.0}, NATS_STREAMS: {"OMS": 7.0}}
    after: Counters = {
        CPU_MS: {"oms": 1450.0},
        NATS_STREAMS: {"OMS": 19.0, "RISK": 3.0},
        SQL_STATEMENTS: {"oms": 99.0},  # not read at the start: not a difference
    }

    change = delta(before, after)

    assert change == {CPU_MS: {"oms": 450.0}, NATS_STREAMS: {"OMS": 12.0, "RISK": 3.0}}


def test_quotes_are_separated_from_the_other_messages_nats_received() -> None:
    change: Counters = {
        NATS_SERVER: {"in_msgs": 1300.0, "out_msgs": 900.0},
        NATS_QUOTES: {"PRICING_QUOTES": 1000.0},
    }

    derived = with_derived(change)

    assert derived[NATS_RECEIVED] == {"quotes": 1000.0, "other": 300.0}
    assert derived[NATS_SERVER] == change[NATS_SERVER]


def test_without_the_server_figures_nothing_is_derived() -> None:
    change: Counters = {NATS_QUOTES: {"PRICING_QUOTES": 10.0}}

    assert with_derived(change) == change


def test_the_idle_stack_is_subtracted_scaled_to_the_window() -> None:
    phase: Counters = {
        CPU_MS: {"oms": 3000.0, "pricing": 900.0},
        SQL_STATEMENTS: {"oms": 4500.0},
        LOAD_CLIENTS_CPU_MS: {"load clients": 700.0},
    }
    # 20 s idle: pricing 1,000 ms (50 ms/s), oms 200 ms (10 ms/s), 100 statements (5/s).
    idle: Counters = {CPU_MS: {"oms": 200.0, "pricing": 1000.0}, SQL_STATEMENTS: {"oms": 100.0}}

    net = net_of_idle(phase, 10.0, idle, 20.0)

    assert net[CPU_MS] == {"oms": 2900.0, "pricing": 400.0}
    assert net[SQL_STATEMENTS] == {"oms": 4450.0}
    # The benchmark's own clients do nothing while idle: kept as they are.
    assert net[LOAD_CLIENTS_CPU_MS] == {"load clients": 700.0}


def test_a_group_the_idle_window_did_not_read_has_no_net_figure() -> None:
    net = net_of_idle({SQL_STATEMENTS: {"oms": 10.0}}, 10.0, {CPU_MS: {"oms": 1.0}}, 10.0)

    assert net == {}


def test_a_net_figure_below_zero_is_shown_as_measured() -> None:
    net = net_of_idle({CPU_MS: {"pricing": 900.0}}, 10.0, {CPU_MS: {"pricing": 1000.0}}, 10.0)

    assert net[CPU_MS] == {"pricing": -100.0}


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(ValueError, match="windows"):
        net_of_idle({}, 10.0, {}, 0.0)


def test_figures_per_order_have_a_total_where_the_keys_add_up() -> None:
    change: Counters = {
        CPU_MS: {"oms": 1830.0, "risk": 970.0},
        NATS_SERVER: {"in_msgs": 500.0, "out_msgs": 700.0},
        NATS_CLIENTS: {"tradingmesh-oms": 300.0},
    }

    costs = per_order(change, 100)

    assert costs is not None
    assert costs[CPU_MS] == {"oms": 18.3, "risk": 9.7, TOTAL: 28.0}
    assert costs[NATS_SERVER] == {"in_msgs": 5.0, "out_msgs": 7.0}  # no total: in + out means
    assert costs[NATS_CLIENTS] == {"tradingmesh-oms": 3.0, TOTAL: 3.0}


def test_without_a_filled_order_there_is_no_cost_per_order() -> None:
    assert per_order({CPU_MS: {"oms": 10.0}}, 0) is None


def test_rates_per_second() -> None:
    rates = per_second(with_totals({CPU_MS: {"oms": 500.0, "nats": 100.0}}), 10.0)

    assert rates == {CPU_MS: {"nats": 10.0, "oms": 50.0, TOTAL: 60.0}}

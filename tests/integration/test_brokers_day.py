"""The broker's day against the real stack (ADR 0010): a rollover charges each open position its
swap once (`oms.swap_charges`, the position's swap, an audit record, `oms.position.swap_charged`),
the account service books it as SWAP once, the balance moves by it, and the risk service takes
each account's daily snapshot; a rollover whose OMS is killed mid-run (SIGKILL, with part of
its transactions committed) charges every position exactly once after the restart.

The test stacks start rollovers only by RunRollover (`tests/conftest.py`: TM_OMS_ROLLOVER_AUTO=0,
one account per transaction). Each test rolls over its own trading day, in the future, so that
every position it opened is before the rollover's instant. Amounts are computed by hand in the
comments; the group charges no commission and adds no markup, so the balance moves by the swaps
alone while the positions stay open.
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import Any

import grpc
import psycopg
import pytest

from simulators.lp.control import ControlClient
from stack.ports import LP_SIMULATORS
from tests.integration.support.components import kill_oms
from tests.integration.support.components import start_oms
from tests.integration.support.orders import DEPOSIT
from tests.integration.support.orders import Oms
from tests.integration.support.orders import Trader
from tests.integration.support.orders import live_quote
from tests.integration.support.orders import new_group
from tests.integration.support.orders import new_trader
from tests.integration.support.orders import place_filled
from tests.integration.support.orders import refusal
from tests.integration.support.orders import verified_chain
from tests.integration.support.postgres import blocked_by
from tests.integration.support.rollover import D
from tests.integration.support.rollover import admin
from tests.integration.support.rollover import as_staff
from tests.integration.support.rollover import balance
from tests.integration.support.rollover import completed
from tests.integration.support.rollover import run_rollover
from tests.integration.support.rollover import swap_entries
from tests.integration.support.waiting import eventually
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_admin_service_pb2
from tradingmesh.oms.v1 import position_service_pb2

WEDNESDAY = "2030-01-02"  # triple swap
THURSDAY = "2030-01-03"
FRIDAY = "2030-01-04"


@pytest.fixture(scope="module")
def group(oms: Oms) -> str:
    """A market-execution netting group with its own swap terms for EURUSD and GBPUSD."""
    group_id = new_group(oms, types_pb2.EXECUTION_MODE_MARKET)
    for symbol, long_rate, short_rate in (("EURUSD", "-6.5", "1.2"), ("GBPUSD", "-4.1", "1.2")):
        stored = (
            admin(oms)
            .SetSwapRates(
                order_admin_service_pb2.SetSwapRatesRequest(
                    swap_rates=oms_pb2.SwapRates(
                        symbol=symbol,
                        group_id=group_id,
                        type=oms_pb2.SWAP_TYPE_POINTS,
                        long_rate=long_rate,
                        short_rate=short_rate,
                        triple_swap_day=oms_pb2.ROLLOVER_WEEKDAY_WEDNESDAY,
                    ),
                    reason="the group's financing",
                ),
                metadata=as_staff(oms, "dealer"),
            )
            .swap_rates
        )
        assert (stored.long_rate, stored.short_rate) == (long_rate, short_rate)
    return group_id


def charges(oms: Oms, position_ids: list[str], trading_date: str) -> dict[str, list[Any]]:
    """Per position, its charges of the day: (charge id, amount, nights)."""
    rows = oms.rows(
        "SELECT position_id::text, id::text, amount, nights FROM oms.swap_charges"
        " WHERE position_id = ANY(%s::uuid[]) AND trading_date = %s",
        position_ids,
        trading_date,
    )
    found: dict[str, list[Any]] = {p: [] for p in position_ids}
    for position_id, charge_id, amount, nights in rows:
        found[position_id].append((charge_id, D(amount), nights))
    return found


def booked_once(oms: Oms, account_id: str, charge_id: str, amount: Decimal) -> bool:
    return swap_entries(oms, account_id) == {charge_id: amount}


def snapshot(oms: Oms, account_id: str, trading_date: str) -> dict[str, Any] | None:
    rows = oms.rows(
        "SELECT currency, balance, equity, margin, free_margin, floating_pnl"
        " FROM risk.daily_snapshots WHERE account_id = %s AND trading_date = %s",
        account_id,
        trading_date,
    )
    if not rows:
        return None
    keys = ("currency", "balance", "equity", "margin", "free_margin", "floating_pnl")
    return dict(zip(keys, rows[0], strict=True))


def opened(oms: Oms, trader: Trader, symbol: str, side: int, quantity: str) -> str:
    """Fills a market order that opens the account's (netting) position in `symbol`; its id."""
    place_filled(oms, trader, symbol=symbol, side=side, quantity=quantity)
    (position,) = oms.positions.ListPositions(
        position_service_pb2.ListPositionsRequest(account_id=trader.account_id, symbol=symbol),
        metadata=trader.md,
    ).positions
    assert D(position.quantity) == D(quantity)
    return position.id


def quoted_at(oms: Oms, trader: Trader, symbol: str, bid: str) -> bool:
    return live_quote(oms, trader, symbol).bid == bid


def as_reporting(oms: Oms, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """A query as the reporting service's own database role."""
    _, url = oms.running.database_urls("reporting")
    dsn = url.render_as_string(hide_password=False).replace("+psycopg", "", 1)
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def position_of(oms: Oms, trader: Trader, position_id: str) -> oms_pb2.Position:
    return oms.positions.GetPosition(
        position_service_pb2.GetPositionRequest(
            account_id=trader.account_id, position_id=position_id
        ),
        metadata=trader.md,
    ).position


def test_an_open_position_is_charged_once_booked_as_swap_and_snapshotted(
    oms: Oms, group: str
) -> None:
    trader = new_trader(oms, group)
    long_eur = opened(oms, trader, "EURUSD", types_pb2.SIDE_BUY, "0.10")
    short_gbp = opened(oms, trader, "GBPUSD", types_pb2.SIDE_SELL, "0.20")
    positions = [long_eur, short_gbp]

    rollover = completed(oms, WEDNESDAY)
    again = run_rollover(oms, WEDNESDAY)  # asking again charges nothing more

    # Wednesday charges three nights:
    # EURUSD long 0.10 x 100000 x -6.5 x 0.00001 x 3 = -1.95 USD
    # GBPUSD short 0.20 x 100000 x 1.2 x 0.00001 x 3 = 0.72 USD
    expected = {long_eur: D("-1.95"), short_gbp: D("0.72")}
    found = charges(oms, positions, WEDNESDAY)
    assert {p: [(a, n) for _, a, n in c] for p, c in found.items()} == {
        p: [(amount, 3)] for p, amount in expected.items()
    }
    assert rollover.weekday == oms_pb2.ROLLOVER_WEEKDAY_WEDNESDAY
    assert rollover.positions_charged >= 2
    assert again.positions_charged == rollover.positions_charged
    for position_id, amount in expected.items():
        assert D(position_of(oms, trader, position_id).swap) == amount

    # The ledger books each charge once, as SWAP, and the balance moves by their sum:
    # 10000.00 - 1.95 + 0.72 = 9998.77.
    charge_ids = {c[0][0]: c[0][1] for c in found.values()}
    eventually(lambda: swap_entries(oms, trader.account_id) == charge_ids, 30, "the swaps booked")
    assert balance(oms, trader.account_id) == D(DEPOSIT) - D("1.23") == D("9998.77")

    # Each charge has its audit record in the account's chain, which still verifies.
    swap_records = [r for r in verified_chain(oms, trader.account_id) if r.event == "SWAP_CHARGED"]
    assert sorted(r.entity_id for r in swap_records) == sorted(positions)

    # The risk service's snapshot of the day: the balance after the swaps, its figures exact.
    taken = eventually(
        lambda: snapshot(oms, trader.account_id, WEDNESDAY), 30, "the daily snapshot"
    )
    assert taken["currency"] == "USD"
    assert taken["balance"] == D("9998.77")
    assert taken["equity"] == taken["balance"] + taken["floating_pnl"]
    assert taken["free_margin"] == taken["equity"] - taken["margin"]
    assert taken["margin"] > 0
    # Reporting reads the snapshots (equity curves) with its own role, by these column names.
    assert as_reporting(
        oms,
        "SELECT balance, equity, margin, free_margin, floating_pnl, currency, taken_at"
        " FROM risk.daily_snapshots WHERE account_id = %s AND trading_date = %s",
        trader.account_id,
        WEDNESDAY,
    )[0][:6] == (
        taken["balance"],
        taken["equity"],
        taken["margin"],
        taken["free_margin"],
        taken["floating_pnl"],
        "USD",
    )


def test_a_rollover_killed_mid_run_charges_each_position_exactly_once(oms: Oms, group: str) -> None:
    traders = sorted((new_trader(oms, group) for _ in range(3)), key=lambda t: t.account_id)
    positions = [opened(oms, t, "EURUSD", types_pb2.SIDE_BUY, "0.10") for t in traders]
    held = traders[-1]
    # The test holds the last account's row: the run charges the accounts before it (one per
    # transaction) and waits there; the OMS is killed while it waits.
    lock = psycopg.connect(oms.stack.database_url)
    try:
        lock.execute(
            "SELECT 1 FROM oms.accounts WHERE account_id = %s FOR UPDATE", (held.account_id,)
        )
        (holder,) = lock.execute("SELECT pg_backend_pid()").fetchone() or (0,)
        assert run_rollover(oms, THURSDAY).state == oms_pb2.ROLLOVER_STATE_RUNNING
        eventually(lambda: blocked_by(oms, "oms", holder), 60, "the rollover waits at the lock")
        before_kill = charges(oms, positions, THURSDAY)
        assert [len(before_kill[p]) for p in positions] == [1, 1, 0]
        kill_oms(oms)
    finally:
        lock.rollback()
        lock.close()
    (state,) = oms.rows("SELECT completed_at FROM oms.rollovers WHERE trading_date = %s", THURSDAY)
    assert state == (None,)
    assert [len(c) for c in charges(oms, positions, THURSDAY).values()] == [1, 1, 0]

    start_oms(oms, traders[0])  # the job resumes the running rollover by itself
    eventually(
        lambda: oms.rows(
            "SELECT 1 FROM oms.rollovers WHERE trading_date = %s AND completed_at IS NOT NULL",
            THURSDAY,
        ),
        60,
        "the resumed rollover completed",
    )

    # Thursday, one night: 0.10 x 100000 x -6.5 x 0.00001 = -0.65 USD, once per position.
    after = charges(oms, positions, THURSDAY)
    assert {p: [(a, n) for _, a, n in c] for p, c in after.items()} == {
        p: [(D("-0.65"), 1)] for p in positions
    }
    assert [after[p][0][0] for p in positions[:2]] == [before_kill[p][0][0] for p in positions[:2]]
    for trader, position_id in zip(traders, positions, strict=True):
        ((charge_id, _, _),) = after[position_id]
        eventually(
            partial(booked_once, oms, trader.account_id, charge_id, D("-0.65")),
            60,
            "each swap booked once",
        )
        assert balance(oms, trader.account_id) == D("9999.35")  # 10000.00 - 0.65
        assert D(position_of(oms, trader, position_id).swap) == D("-0.65")
        records = verified_chain(oms, trader.account_id)
        assert [r.entity_id for r in records if r.event == "SWAP_CHARGED"] == [position_id]
        taken = eventually(
            partial(snapshot, oms, trader.account_id, THURSDAY), 60, "the daily snapshot"
        )
        assert taken["balance"] == D("9999.35")


def test_swap_terms_and_rollovers_are_for_staff_and_weekends_have_none(
    oms: Oms, group: str
) -> None:
    listed = (
        admin(oms)
        .ListSwapRates(
            order_admin_service_pb2.ListSwapRatesRequest(symbol="EURUSD"),
            metadata=as_staff(oms, "backoffice"),
        )
        .swap_rates
    )
    by_group = {(r.group_id, r.long_rate, r.short_rate) for r in listed}
    assert ("", "-6.5", "1.2") in by_group  # the demo instrument's terms (stack/seed.py)
    assert (group, "-6.5", "1.2") in by_group
    trader = new_trader(oms, group)
    run = order_admin_service_pb2.RunRolloverRequest(trading_date="2030-01-05")  # a Saturday
    for who in (as_staff(oms, "dealer"), trader.md):
        code, reason, _ = refusal(partial(admin(oms).RunRollover, run, metadata=who))
        assert (code, reason) == (
            grpc.StatusCode.PERMISSION_DENIED,
            ErrorReason.ERROR_REASON_PERMISSION_DENIED,
        )
    code, reason, _ = refusal(lambda: admin(oms).RunRollover(run, metadata=as_staff(oms, "admin")))
    assert (code, reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ErrorReason.ERROR_REASON_VALIDATION_FAILED,
    )
    unknown = order_admin_service_pb2.SetSwapRatesRequest(
        swap_rates=oms_pb2.SwapRates(
            symbol="NOSUCH",
            type=oms_pb2.SWAP_TYPE_PERCENT,
            long_rate="1",
            short_rate="1",
            triple_swap_day=oms_pb2.ROLLOVER_WEEKDAY_FRIDAY,
        ),
        reason="a typo",
    )
    code, reason, _ = refusal(
        lambda: admin(oms).SetSwapRates(unknown, metadata=as_staff(oms, "admin"))
    )
    assert (code, reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ErrorReason.ERROR_REASON_UNKNOWN_INSTRUMENT,
    )


def test_a_percent_swap_and_a_converted_swap_use_the_groups_live_prices(oms: Oms) -> None:
    group_id = new_group(oms, types_pb2.EXECUTION_MODE_MARKET)
    for symbol, kind, long_rate in (
        ("USDJPY", oms_pb2.SWAP_TYPE_POINTS, "11.5"),
        ("XAUUSD", oms_pb2.SWAP_TYPE_PERCENT, "-5.5"),
    ):
        admin(oms).SetSwapRates(
            order_admin_service_pb2.SetSwapRatesRequest(
                swap_rates=oms_pb2.SwapRates(
                    symbol=symbol,
                    group_id=group_id,
                    type=kind,
                    long_rate=long_rate,
                    short_rate="0",
                    triple_swap_day=oms_pb2.ROLLOVER_WEEKDAY_WEDNESDAY,
                ),
                reason="percent and conversion",
            ),
            metadata=as_staff(oms, "admin"),
        )
    lps = [ControlClient(oms.ports.lp_control(lp)) for lp in LP_SIMULATORS]
    pins = {"USDJPY": ("150.000", "150.020"), "XAUUSD": ("2000.00", "2000.40")}
    try:
        for symbol, (bid, ask) in pins.items():
            for lp in lps:
                lp.pin(symbol, bid, ask)
        trader = new_trader(oms, group_id)
        for symbol, (bid, _) in pins.items():
            eventually(partial(quoted_at, oms, trader, symbol, bid), 30, f"{symbol} pinned")
        usdjpy = opened(oms, trader, "USDJPY", types_pb2.SIDE_BUY, "0.10")
        gold = opened(oms, trader, "XAUUSD", types_pb2.SIDE_BUY, "0.10")
        completed(oms, FRIDAY)
    finally:
        for lp in lps:
            lp.unpin()

    # Friday, one night.
    # USDJPY long: 0.10 x 100000 x 11.5 x 0.001 = 115 JPY; / 150.010 (the mid) = 0.7666... USD
    # XAUUSD long at the bid: 0.10 x 100 x 2000.00 x -5.5 / 100 / 360 = -3.0555... USD
    found = charges(oms, [usdjpy, gold], FRIDAY)
    assert {p: [(a, n) for _, a, n in c] for p, c in found.items()} == {
        usdjpy: [(D("0.77"), 1)],
        gold: [(D("-3.06"), 1)],
    }
    eventually(lambda: len(swap_entries(oms, trader.account_id)) == 2, 30, "the swaps booked")
    assert sorted(swap_entries(oms, trader.account_id).values()) == [D("-3.06"), D("0.77")]
    assert balance(oms, trader.account_id) == D("9997.71")  # 10000.00 + 0.77 - 3.06

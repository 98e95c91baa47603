"""Benchmark: the margin watcher's full pass over every account with open positions.

Target (SPEC.md): a full pass over 100,000 accounts in <= 1 s.

What runs: `MarginWatcher.run_pass` over the accounts `_lead` would pass it (every account with
positions or a margin episode open), the code the risk service runs, on a `RiskState` built in
memory. A pass reads only that state; it writes to the database only for the accounts whose
margin state changes (their margin events, the new state and the outbox rows, one transaction
each). Here those writes go to a stand-in that counts the statements: the CPU to decide and build
the events is measured, a real commit's round trip is not (it is an await, during which the
event loop serves others). A stop-out the pass triggers is counted, not run (its task calls the
OMS; it is not part of the pass).

The state: --accounts accounts with --positions open positions each (hedging accounts, symbols
drawn from the first --symbols instruments of a catalogue of FX pairs and metals), in --groups
client groups (leverage 100, 50, 200, 500, ..., margin-call / stop-out levels 100/50, 80/40,
120/60, ...; the second group overrides XAUUSD's margin rate), account currencies drawn from
--currencies (a position in another quote currency converts at the mid of the group's price of
the joining pair, directly or inversely), every pair priced in every group (group markups), and
balances set so that about 2.5 % of the accounts are in margin call and 0.5 % below the stop-out
level. Before each pass the stored margin state of a random --crossing share of the accounts is
made stale, so that this pass decides (and writes) one margin event for each of them: a
realistic small share of accounts crossing a level between two passes.

Each pass is timed (wall and process CPU: on a shared machine the wall time also counts the
time the process waited for a core), and a task beside it records the longest time the event
loop was held without a yield (what a CheckOrder arriving during the pass waits at most). The
garbage of building the state is collected before the first pass, as a service's would be long
before; Python's collector stays on.
Prints a table and writes JSON (default bench/results/margin_watcher.json).

    .venv/bin/python -m bench.margin_watcher [--accounts 100000] [--positions 1] [--passes 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import statistics
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import ROUND_HALF_EVEN
from decimal import Decimal
from pathlib import Path
from typing import Any
from typing import Final
from typing import cast

from sqlalchemy.orm import Session as OrmSession

from bench.machine import cpu_model
from bench.machine import load_average
from services.platform import outbox
from services.platform.db import Database
from services.platform.schedule import Session
from services.risk.episodes import Episode
from services.risk.model import Account
from services.risk.model import Group
from services.risk.model import GroupInstrument
from services.risk.model import Instrument
from services.risk.model import Position
from services.risk.model import PositionMode
from services.risk.model import Quote
from services.risk.model import Side
from services.risk.state import RiskState
from services.risk.valuation import value_account
from services.risk.watcher import Closer
from services.risk.watcher import MarginWatcher
from services.risk.watcher import WatcherConfig
from tradingmesh.trading.margin import RiskStatus
from tradingmesh.trading.money import minor_unit

TARGET_ACCOUNTS: Final = 100_000
TARGET_PASS_MS: Final = 1000.0

D = Decimal
ALL_WEEK: Final = tuple(Session(day, 0, 1440) for day in range(1, 8))
# Price of one unit of each currency in USD (the mids the catalogue's pairs are built from).
USD_VALUE: Final[dict[str, Decimal]] = {
    "EUR": D("1.0850"),
    "GBP": D("1.2710"),
    "AUD": D("0.6630"),
    "NZD": D("0.6120"),
    "USD": D(1),
    "CAD": D("0.7350"),
    "CHF": D("1.1320"),
    "JPY": D("0.006660"),
    "XAU": D("2350.40"),
    "XAG": D("29.750"),
}
# Market convention: the currency earlier in this list is the base of a pair.
PRIORITY: Final = ("XAU", "XAG", "EUR", "GBP", "AUD", "NZD", "USD", "CAD", "CHF", "JPY")
# The instruments positions are drawn from, most traded first; the pairs that join other
# currencies are added (and priced) as needed for the conversions.
CATALOGUE: Final = (
    "EURUSD",
    "USDJPY",
    "GBPUSD",
    "XAUUSD",
    "AUDUSD",
    "USDCHF",
    "USDCAD",
    "EURGBP",
    "EURJPY",
    "GBPJPY",
    "NZDUSD",
    "EURCHF",
    "AUDJPY",
    "XAGUSD",
)
LEVERAGES: Final = (100, 50, 200, 500, 400, 25, 20, 10)
LEVELS: Final = ((D(100), D(50)), (D(80), D(40)), (D(120), D(60)))
QUANTITIES: Final = tuple(D(q) for q in ("0.01", "0.05", "0.10", "0.50", "1.00", "2.00"))
MARGIN_CALL_SHARE: Final = 0.025
STOP_OUT_SHARE: Final = 0.005


@dataclass(frozen=True)
class StateSpec:
    accounts: int = TARGET_ACCOUNTS
    positions: int = 1
    symbols: int = 8
    groups: int = 3
    currencies: tuple[str, ...] = ("USD", "EUR", "JPY")
    seed: int = 1


@dataclass
class Built:
    """A state and the margin state a watcher would hold for it after a pass."""

    state: RiskState
    episodes: dict[str, Episode]
    statuses: Counter[RiskStatus] = field(default_factory=Counter)
    positions: int = 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=TARGET_ACCOUNTS)
    parser.add_argument("--positions", type=int, default=1, help="open positions per account")
    parser.add_argument(
        "--symbols",
        type=int,
        default=8,
        help=f"instruments the positions are drawn from (1-{len(CATALOGUE)})",
    )
    parser.add_argument("--groups", type=int, default=3, help="client groups")
    parser.add_argument(
        "--currencies",
        default="USD,EUR,JPY",
        help="account currencies, comma-separated (" + ",".join(PRIORITY[2:]) + ")",
    )
    parser.add_argument(
        "--crossing",
        type=float,
        default=0.001,
        help="share of accounts whose margin state changes before each pass",
    )
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/results/margin_watcher.json"))
    args = parser.parse_args(argv)
    currencies = tuple(c.strip().upper() for c in args.currencies.split(",") if c.strip())
    if not currencies or any(c not in USD_VALUE or c in ("XAU", "XAG") for c in currencies):
        parser.error(f"--currencies: each one of {', '.join(PRIORITY[2:])}")
    if args.accounts < 1 or args.positions < 1 or args.groups < 1 or args.passes < 1:
        parser.error("--accounts, --positions, --groups and --passes are at least 1")
    if not 1 <= args.symbols <= len(CATALOGUE):
        parser.error(f"--symbols is 1 to {len(CATALOGUE)}")
    if not 0 <= args.crossing <= 1:
        parser.error("--crossing is a share, 0 to 1")
    args.spec = StateSpec(
        accounts=args.accounts,
        positions=args.positions,
        symbols=args.symbols,
        groups=args.groups,
        currencies=currencies,
        seed=args.seed,
    )
    return args


# ---- the state ---------------------------------------------------------------------------------


def pair_of(one: str, other: str) -> str:
    """The symbol joining two currencies, the higher-priority one as its base."""
    base, quote = sorted((one, other), key=PRIORITY.index)
    return base + quote


def _instrument(symbol: str) -> Instrument:
    base, quote = symbol[:3], symbol[3:]
    metal = base in ("XAU", "XAG")
    return Instrument(
        symbol=symbol,
        base_currency=base,
        quote_currency=quote,
        contract_size=D(100 if base == "XAU" else 5000 if base == "XAG" else 100_000),
        margin_rate=D("0.05") if metal else D("0.01"),
        sessions=ALL_WEEK,
        halted=False,
        version=1,
    )


def _places(symbol: str) -> int:
    return 3 if symbol.endswith("JPY") or symbol.startswith("XA") else 5


def _mid(symbol: str) -> Decimal:
    raw = USD_VALUE[symbol[:3]] / USD_VALUE[symbol[3:]]
    return raw.quantize(Decimal(1).scaleb(-_places(symbol)))


def build_state(spec: StateSpec, now: datetime) -> Built:
    """The state described in the module docstring, deterministic for a seed."""
    rng = random.Random(spec.seed)
    state = RiskState()
    used = CATALOGUE[: spec.symbols]
    symbols = list(used)
    for symbol in used:
        for currency in spec.currencies:
            if symbol[3:] != currency and (join := pair_of(symbol[3:], currency)) not in symbols:
                symbols.append(join)
    groups = [
        Group(
            id=f"00000000-0000-4000-8000-{number + 1:012d}",
            currency="USD",
            leverage=LEVERAGES[number % len(LEVERAGES)],
            margin_call_level=LEVELS[number % len(LEVELS)][0],
            stop_out_level=LEVELS[number % len(LEVELS)][1],
            version=1,
        )
        for number in range(spec.groups)
    ]
    for symbol in symbols:
        state.put_instrument(_instrument(symbol))
    for number, group in enumerate(groups):
        state.put_group(group)
        for symbol in symbols:
            rate = D("0.02") if number == 1 and symbol == "XAUUSD" else None
            state.put_group_instrument(GroupInstrument(group.id, symbol, True, None, None, rate, 1))
            point = Decimal(1).scaleb(-_places(symbol))
            mid = _mid(symbol)
            raw_bid, raw_ask = mid - point, mid + point
            markup = point * number
            state.put_quote(
                group.id,
                symbol,
                Quote(raw_bid - markup, raw_ask + markup, raw_bid, raw_ask, now, 1),
            )
    built = Built(state, {})
    for number in range(spec.accounts):
        _add_account(built, spec, groups, used, number, rng, now)
    return built


def _add_account(
    built: Built,
    spec: StateSpec,
    groups: list[Group],
    symbols: Sequence[str],
    number: int,
    rng: random.Random,
    now: datetime,
) -> None:
    state = built.state
    group = groups[rng.randrange(len(groups))]
    currency = rng.choice(spec.currencies)
    account = Account(
        id=f"00000000-0000-4000-a000-{number:012d}",
        user_id=f"00000000-0000-4000-b000-{number:012d}",
        group_id=group.id,
        currency=currency,
        position_mode=PositionMode.HEDGING,
        status="ACTIVE",
        version=1,
        balance=D(0),
        ledger_sequence=1,
    )
    for index in range(spec.positions):
        symbol = rng.choice(symbols)
        move = D(rng.randint(-150, 150)) / 10_000  # opened up to 1.5 % away from today's price
        places = Decimal(1).scaleb(-_places(symbol))
        state.put_position(
            Position(
                id=f"00000000-0000-4000-c000-{number * spec.positions + index:012d}",
                account_id=account.id,
                symbol=symbol,
                side=rng.choice((Side.BUY, Side.SELL)),
                quantity=rng.choice(QUANTITIES),
                open_price=(_mid(symbol) * (1 + move)).quantize(places),
                open_time=now - timedelta(minutes=rng.randint(1, 100_000)),
                version=1,
            )
        )
    built.positions += spec.positions
    # The balance that puts the account at a drawn margin level.
    valuation = value_account(state, account, now, None)
    assert valuation is not None
    assert valuation.complete
    figures = valuation.figures
    draw = rng.random()
    call, stop = group.margin_call_level, group.stop_out_level
    if draw < STOP_OUT_SHARE:
        level = stop * D(rng.randint(20, 95)) / 100
    elif draw < STOP_OUT_SHARE + MARGIN_CALL_SHARE:
        level = stop + (call - stop) * D(rng.randint(5, 95)) / 100
    else:
        level = call * D(rng.randint(150, 2000)) / 100
    balance = level / 100 * figures.used_margin - figures.unrealized_pnl
    minor = Decimal(1).scaleb(-minor_unit(currency))
    account = _with_balance(account, balance.quantize(minor, rounding=ROUND_HALF_EVEN))
    state.put_account(account)
    valuation = value_account(state, account, now, None)
    assert valuation is not None
    status = valuation.status
    built.statuses[status] += 1
    if status is RiskStatus.MARGIN_CALL:
        built.episodes[account.id] = Episode(status, 1, margin_call_event_id=_event_id(rng))
    elif status is RiskStatus.STOP_OUT:
        built.episodes[account.id] = Episode(status, 2, _event_id(rng), _event_id(rng))


def _event_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _with_balance(account: Account, balance: Decimal) -> Account:
    return Account(
        account.id,
        account.user_id,
        account.group_id,
        account.currency,
        account.position_mode,
        account.status,
        account.version,
        balance,
        account.ledger_sequence,
    )


def stale_episodes(
    built: Built, share: float, rng: random.Random
) -> tuple[dict[str, Episode], int]:
    """The watcher's margin states with a random `share` of accounts' made stale (each causes
    exactly one margin event in the next pass), and how many."""
    episodes = dict(built.episodes)
    accounts = list(built.state.accounts)
    chosen = rng.sample(accounts, round(share * len(accounts)))
    for account_id in chosen:
        held = episodes.get(account_id)
        if held is None:  # OK now: a margin call left open is resolved
            episodes[account_id] = Episode(RiskStatus.MARGIN_CALL, 1, _event_id(rng))
        elif held.status is RiskStatus.MARGIN_CALL:  # the margin call is new
            del episodes[account_id]
        else:  # a stop-out is triggered
            episodes[account_id] = Episode()
    return episodes, len(chosen)


# ---- the pass ------------------------------------------------------------------------------------


class _Session:
    def __init__(self, database: CountingDatabase) -> None:
        self.database = database
        self.info: dict[str, object] = {}

    async def execute(self, statement: object, parameters: object = None) -> None:
        self.database.statements += 1


class CountingDatabase:
    """Stands in for `Database` where the watcher writes margin events: counts, stores nothing."""

    def __init__(self) -> None:
        self.transactions = 0
        self.statements = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Session]:
        self.transactions += 1
        session = _Session(self)
        yield session
        # The envelope of the transaction's events: one row written at the commit.
        self.statements += len(outbox.pending(cast(OrmSession, session)))


class BenchWatcher(MarginWatcher):
    """The real watcher; a stop-out it would start is counted instead (it calls the OMS)."""

    def __init__(self, state: RiskState, database: CountingDatabase) -> None:
        super().__init__(
            cast(Database, database),
            state,
            cast(Closer, None),
            WatcherConfig(max_quote_age=timedelta(seconds=5)),
        )
        self.stop_outs_started: set[str] = set()

    def _ensure_stop_out(self, account_id: str) -> None:
        self.stop_outs_started.add(account_id)


@dataclass
class PassResult:
    accounts: int
    wall_ms: float
    cpu_ms: float
    longest_hold_ms: float
    yields: int
    transactions: int
    expected_events: int
    stop_outs_started: int


async def _watch_the_loop(gaps: list[float], stop: asyncio.Event) -> None:
    """Runs whenever the loop is free; records the time between two of its turns."""
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now


async def one_pass(
    built: Built, share: float, rng: random.Random, watcher: BenchWatcher | None = None
) -> PassResult:
    """One full pass, by `watcher` (kept from pass to pass, as the service keeps its own) or a
    new one."""
    database = CountingDatabase()
    if watcher is None:
        watcher = BenchWatcher(built.state, database)
    watcher.db = cast(Database, database)
    watcher.stop_outs_started.clear()
    watcher.episodes, expected = stale_episodes(built, share, rng)
    gaps: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_watch_the_loop(gaps, stop))
    await asyncio.sleep(0)  # the ticker runs once before the pass starts
    cpu, wall = time.process_time(), time.perf_counter()
    watched = watcher._watched()
    await watcher.run_pass(watched)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stop.set()
    await ticker
    return PassResult(
        accounts=len(watched),
        wall_ms=wall * 1000,
        cpu_ms=cpu * 1000,
        longest_hold_ms=max(gaps, default=0.0) * 1000,
        yields=len(gaps),
        transactions=database.transactions,
        expected_events=expected,
        stop_outs_started=len(watcher.stop_outs_started),
    )


# ---- report --------------------------------------------------------------------------------------


def table(results: list[PassResult], positions: int) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        ("pass", "wall ms", "cpu ms", "us/account", "us/position", "longest hold ms", "events")
    ]
    for number, result in enumerate(results, start=1):
        rows.append(
            (
                str(number),
                f"{result.wall_ms:,.1f}",
                f"{result.cpu_ms:,.1f}",
                f"{result.wall_ms * 1000 / result.accounts:.2f}",
                f"{result.wall_ms * 1000 / positions:.2f}",
                f"{result.longest_hold_ms:.2f}",
                f"{result.transactions}/{result.expected_events}",
            )
        )
    return rows


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    spec: StateSpec = args.spec
    load_at_start = load_average()
    print(
        f"building {spec.accounts:,} accounts x {spec.positions} positions, {spec.symbols}"
        f" symbols, {spec.groups} groups, currencies {','.join(spec.currencies)} ..."
    )
    started = time.perf_counter()
    built = build_state(spec, datetime.now(UTC))
    # The service loads its working set once at start; the garbage of building this one must
    # not be collected during the first pass (a full collection of this heap takes ~0.5 s).
    gc.collect()
    print(
        f"built in {time.perf_counter() - started:.1f} s: {len(built.state.instruments)} "
        f"instruments, {len(built.state.quotes)} prices; statuses "
        + ", ".join(f"{s.value} {n:,}" for s, n in sorted(built.statuses.items()))
    )
    rng = random.Random(spec.seed + 1)
    watcher = BenchWatcher(built.state, CountingDatabase())
    results = []
    for _ in range(args.passes):
        results.append(await one_pass(built, args.crossing, rng, watcher))
    print()
    print_table(table(results, built.positions))
    walls = [r.wall_ms for r in results]
    best, median = min(walls), statistics.median(walls)
    median_cpu = statistics.median(r.cpu_ms for r in results)
    # The target is for 100,000 accounts: scale a run of another size linearly.
    scaled = median * TARGET_ACCOUNTS / spec.accounts
    met = scaled <= TARGET_PASS_MS
    load_at_end = load_average()
    print(
        f"\nmedian pass {median:,.1f} ms (best {best:,.1f}, median CPU {median_cpu:,.1f}) for"
        f" {results[0].accounts:,} accounts,"
        f" {built.positions:,} positions; target <= {TARGET_PASS_MS:,.0f} ms per"
        f" {TARGET_ACCOUNTS:,} accounts: {'met' if met else 'NOT met'}"
        + ("" if spec.accounts == TARGET_ACCOUNTS else f" (scaled: {scaled:,.1f} ms)")
    )
    print(
        f"longest hold of the event loop: {max(r.longest_hold_ms for r in results):.2f} ms;"
        f" CPU {cpu_model()} x {os.cpu_count()}; load average {load_at_start} -> {load_at_end}"
    )
    return {
        "benchmark": "margin_watcher",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_model": cpu_model(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": load_at_end,
        },
        "spec": {
            "accounts": spec.accounts,
            "positions_per_account": spec.positions,
            "symbols": spec.symbols,
            "groups": spec.groups,
            "currencies": list(spec.currencies),
            "seed": spec.seed,
            "crossing_share": args.crossing,
            "instruments": len(built.state.instruments),
            "prices": len(built.state.quotes),
            "statuses": {s.value: n for s, n in built.statuses.items()},
        },
        "target": {"accounts": TARGET_ACCOUNTS, "pass_ms": TARGET_PASS_MS},
        "passes": [
            {
                **vars(r),
                "us_per_account": r.wall_ms * 1000 / r.accounts,
                "us_per_position": r.wall_ms * 1000 / built.positions,
            }
            for r in results
        ],
        "median_pass_ms": median,
        "median_pass_cpu_ms": median_cpu,
        "best_pass_ms": best,
        "median_pass_ms_per_100k_accounts": scaled,
        "longest_hold_ms": max(r.longest_hold_ms for r in results),
        "met": met,
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    summary = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

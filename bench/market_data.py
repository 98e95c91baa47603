"""Benchmark: market data — LP ticks/s through aggregation and markup, tick-to-client latency of
concurrent quote streams through Envoy, and bytes per quote on the wire.

Targets (SPEC.md): >= 20,000 LP ticks/s through aggregation and markup; >= 1,000 concurrent
quote streams with p99 tick-to-client <= 50 ms; bytes per quote reported (aim <= 32).

Phases, each bounded in time, in this order:
  engine   the pricing engine alone, in this process (services/pricing/engine.py): generated LP
           quotes (the simulators' own random walks) through aggregation and the seeded groups'
           markups, batched per FIX message as the gateway hands them over, on a simulated
           clock. Run before the stack starts, on the quietest machine this run gets.
  streams  --streams concurrent StreamQuotes calls through Envoy (h2c, or --tls), held by
           --clients processes over --connections HTTP/2 connections, as the demo user, with
           the LPs at their own rates (or --stream-lp-rate). Latency = client receive time -
           the tick's time_unix_ms (when pricing's engine made the price; the same machine
           clock; time_unix_ms is truncated to the millisecond, so up to 1 ms too high). Bytes
           per quote = TCP payload bytes from Envoy to the clients (the kernel's count per
           connection, `ss`) / ticks received; also Envoy's own HTTP/2 byte counter and the
           protobuf sizes.
  ticks    end to end, LP simulators -> FIX -> gateway -> engine: for each rate of --lp-rates,
           both simulators are set to it (updates/s per instrument) through their control
           ports; over the window it counts the LP quotes pricing processed (its metric
           tradingmesh_pricing_lp_ticks_total) against those offered (the rate set) and those
           the simulators really sent (the quotes in the messages their QuickFIX stores recorded
           as sent to pricing over the window); then it restores the rates and times how long
           pricing takes to work off its backlog (up to 90 s). The best step is the figure.
           A step that floods pricing leaves a backlog: the steps after it are measured
           saturated anyway (the rates go up), and streams are measured before this phase.

CPU per component (the process and its children) is reported for the ticks and streams windows,
with the load average: on two cores the simulators, pricing, Envoy and the stream clients share
the machine, with whatever else runs on it.

By default it starts a dedicated stack (name `bench-md-<pid>`, free ports) and stops and deletes
it at the end, also on Ctrl-C or an error. Opening 1,000 streams as one user would hit the edge's
per-user rate limit (a burst of 100, then 50/s), so that stack is started with the limits raised
(printed, and recorded in the JSON). `--stack NAME` uses a running stack as it is instead (its
limits apply: opening is retried on RESOURCE_EXHAUSTED). Prints a table and writes JSON (default
bench/results/market_data.json).

    .venv/bin/python -m bench.market_data [--streams 1000] [--seconds 20] [--stack NAME]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import signal
import statistics
import time
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any

import grpc

from bench import probes
from bench.client_pipes import end_process
from bench.client_pipes import receive
from bench.machine import load_1m
from bench.quote_streams import OpenReport
from bench.quote_streams import StreamPlan
from bench.quote_streams import StreamResult
from bench.quote_streams import run
from bench.stack import Bench
from bench.stack import bench_stack
from services.pricing.engine import GroupConfig
from services.pricing.engine import PricingEngine
from services.pricing.model import LpQuote
from services.pricing.model import Markup
from services.pricing.model import MarkupKind
from simulators.lp.catalogue import CATALOGUE
from simulators.lp.control import ControlClient
from simulators.lp.market import Market
from simulators.lp.market import Profile
from stack import seed
from stack.components.lpsim import PLATFORM_COMP_ID
from stack.components.lpsim import PROFILES
from stack.ports import HOST
from stack.ports import LP_SIMULATORS
from stack.ports import STREAM_WORKERS
from tradingmesh.account.v1 import auth_service_pb2 as auth_pb2
from tradingmesh.account.v1 import auth_service_pb2_grpc as auth_grpc

TARGET_TICKS_PER_SECOND = 20_000
TARGET_STREAMS = 1_000
TARGET_P99_MS = 50.0
AIM_BYTES_PER_QUOTE = 32.0

# The edge limits of the stack this benchmark starts (stack/components/envoy.py EdgeLimits):
# enough for one user to open thousands of streams within seconds.
BENCH_EDGE_LIMITS = {
    "TM_EDGE_RATE_LIMIT_USER": "5000,2500,1",
    "TM_EDGE_RATE_LIMIT_ADDRESS": "10000,5000,1",
}
# Components whose CPU time is reported for the end-to-end phases (the stream workers: those the
# stack runs, ADR 0008).
WATCHED = ("pricing", *STREAM_WORKERS, *LP_SIMULATORS, "envoy", "redis", "postgres", "nats")
PHASES = ("engine", "ticks", "streams")

LP_TICKS = "tradingmesh_pricing_lp_ticks_total"
PUBLISHED = "tradingmesh_pricing_prices_published_total"
LP_UP = "tradingmesh_pricing_lp_session_up"
TICK_ROWS_WRITTEN = "pricing_tick_rows_written_total"
TICK_ROWS_DROPPED = "pricing_tick_rows_dropped_total"
TICK_FLUSH_SECONDS = "pricing_tick_flush_seconds_sum"
DOWNSTREAM_TX = "http.edge.downstream_cx_tx_bytes_total"
UPSTREAM_RX = "cluster.pricing.upstream_cx_rx_bytes_total"
WORKERS_RX = "cluster.pricing_streams.upstream_cx_rx_bytes_total"  # the stream workers
ENVOY_COUNTERS = (DOWNSTREAM_TX, UPSTREAM_RX, WORKERS_RX)


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return math.nan
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


# ---- phase 1: the engine alone ----------------------------------------------------------------


def _engine_input(rounds: int) -> tuple[list[tuple[list[LpQuote], datetime]], int]:
    """LP quote batches as the gateway delivers them (one per FIX message: one LP, up to six
    instruments), from the simulators' own walks, on a simulated clock (1 ms per round)."""
    markets = {
        lp: Market(
            CATALOGUE,
            Profile(name=lp, seed=profile.seed, spread_factor=Decimal(profile.spread_factor)),
        )
        for lp, profile in PROFILES.items()
    }
    start = datetime.now(UTC)
    batches = []
    count = 0
    for round_number in range(rounds):
        at = start + timedelta(milliseconds=round_number)
        for lp, market in markets.items():
            quotes = []
            for symbol in market.symbols:
                quote = market.step(symbol)
                if quote is None:
                    continue  # the LP is quiet on it (a gap)
                quotes.append(
                    LpQuote(
                        lp=lp,
                        symbol=symbol,
                        bid=quote.bid,
                        ask=quote.ask,
                        bid_size=quote.bid_size,
                        ask_size=quote.ask_size,
                        quote_id=f"{lp}:1:{round_number}:{symbol}",
                        lp_time=at,
                        received_at=at,
                        sequence=round_number,
                    )
                )
            count += len(quotes)
            batches.append((quotes, at))
    return batches, count


def engine_phase(rounds: int, repeats: int) -> dict[str, Any]:
    digits = {row[0]: row[5] for row in seed.INSTRUMENTS}
    groups = [
        GroupConfig(name, {symbol: Markup(MarkupKind.POINTS, Decimal(markup)) for symbol in digits})
        for name, _, _, _, _, _, markup, _ in seed.GROUPS
    ]
    batches, quotes = _engine_input(rounds)
    runs = []
    for _ in range(repeats):
        engine = PricingEngine(digits, timedelta(seconds=2))
        engine.set_groups(groups, batches[0][1])
        prices = 0
        started = time.perf_counter()
        for batch, at in batches:
            prices += len(engine.on_quotes(batch, at).prices)
        seconds = time.perf_counter() - started
        runs.append({"seconds": round(seconds, 3), "ticks_per_second": round(quotes / seconds)})
    return {
        "lp_quotes": quotes,
        "batches": len(batches),
        "groups": [g.group_id for g in groups],
        "prices_emitted_per_run": prices,
        "runs": runs,
        "ticks_per_second": statistics.median(r["ticks_per_second"] for r in runs),
        "load_average_1m": load_1m(),
    }


# ---- the stack --------------------------------------------------------------------------------


def pricing_samples(bench: Bench) -> dict[str, float]:
    return probes.prometheus_samples(
        bench.ports.service_metrics("pricing"), ("tradingmesh_pricing_", "pricing_tick_")
    )


def _sum(samples: dict[str, float], name: str) -> float:
    return sum(value for key, value in samples.items() if key.split("{")[0] == name)


def _by_lp(samples: dict[str, float], name: str) -> dict[str, float]:
    return {lp: samples.get(f'{name}{{lp="{lp}"}}', 0.0) for lp in LP_SIMULATORS}


def wait_for_prices(bench: Bench, timeout: float = 90.0) -> None:
    """Until both LP sessions are logged on and pricing processes their quotes."""
    deadline = time.monotonic() + timeout
    before = None
    while time.monotonic() < deadline:
        samples = pricing_samples(bench)
        up_lps = _by_lp(samples, LP_UP)
        ticks = _sum(samples, LP_TICKS)
        if all(v == 1 for v in up_lps.values()) and before is not None and ticks > before:
            return
        before = ticks
        time.sleep(1.0)
    raise SystemExit(f"pricing did not receive prices from every LP within {timeout:.0f} s")


def _cpu_percent(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, int]:
    return {name: round(100 * (after[name] - before[name]) / seconds) for name in before}


# ---- phase 2: LP ticks end to end -------------------------------------------------------------


@dataclass(frozen=True)
class TickSample:
    at: float
    samples: dict[str, float]
    messages: dict[str, int | None]  # FIX messages each LP has sent to pricing so far
    store_sizes: dict[str, int | None]  # bytes in each LP's store of the messages sent to pricing
    cpu: dict[str, float]


def _tick_sample(bench: Bench, pids: dict[str, int]) -> TickSample:
    state = bench.state
    return TickSample(
        time.monotonic(),
        pricing_samples(bench),
        {lp: probes.fix_messages_sent(state, lp, PLATFORM_COMP_ID) for lp in LP_SIMULATORS},
        {lp: probes.fix_store_size(state, lp, PLATFORM_COMP_ID) for lp in LP_SIMULATORS},
        probes.cpu_seconds_by_tree(pids),
    )


def _sent(bench: Bench, first: TickSample, last: TickSample, elapsed: float) -> dict[str, Any]:
    """What the simulators really sent to pricing over the window, per second: FIX messages
    (from their sequence numbers) and quotes (bid entries in their stores of sent messages)."""
    messages: dict[str, float | None] = {}
    quotes: dict[str, float | None] = {}
    for lp in LP_SIMULATORS:
        before, after = first.messages[lp], last.messages[lp]
        messages[lp] = None if before is None or after is None else (after - before) / elapsed
        start, end = first.store_sizes[lp], last.store_sizes[lp]
        count = None
        if start is not None and end is not None:
            count = probes.quotes_sent_between(bench.state, lp, PLATFORM_COMP_ID, start, end)
        quotes[lp] = None if count is None else count / elapsed
    known = [v for v in quotes.values() if v is not None]
    return {
        "sent_fix_messages_per_second": {k: _round(v) for k, v in messages.items()},
        "sent_ticks_per_second_by_lp": {k: _round(v) for k, v in quotes.items()},
        "sent_ticks_per_second": round(sum(known)) if len(known) == len(quotes) else None,
    }


def _normal_rates(controls: dict[str, ControlClient]) -> dict[str, str]:
    return {lp: str(client.state()["updates_per_second"]) for lp, client in controls.items()}


def ticks_step(
    bench: Bench,
    rate: int,
    warmup: float,
    seconds: float,
    controls: dict[str, ControlClient],
    normal: dict[str, str],
) -> dict[str, Any]:
    """One LP rate: raise it, measure over the window, restore it, wait for pricing to catch up."""
    instruments = len(CATALOGUE)
    pids = probes.component_pids(bench.state, WATCHED)
    print(f"ticks: LP rate {rate}/s per instrument, {seconds:.0f} s window")
    try:
        for client in controls.values():
            client.set_rate(str(rate))
        time.sleep(warmup)
        first = _tick_sample(bench, pids)
        time.sleep(seconds)
        last = _tick_sample(bench, pids)
        load = load_1m()
    finally:
        for lp, client in controls.items():
            client.set_rate(normal[lp])
    elapsed = last.at - first.at

    def rate_of(name: str) -> float:
        return (_sum(last.samples, name) - _sum(first.samples, name)) / elapsed

    processed = {
        lp: (last_value - _by_lp(first.samples, LP_TICKS)[lp]) / elapsed
        for lp, last_value in _by_lp(last.samples, LP_TICKS).items()
    }
    sessions_up = _by_lp(last.samples, LP_UP)
    sent = _sent(bench, first, last, elapsed)
    drain = _drain(bench, sum((Decimal(r) for r in normal.values()), Decimal(0)) * instruments)
    cpu = _cpu_percent(first.cpu, last.cpu, elapsed)
    total = sum(processed.values())
    pricing_cpu = cpu.get("pricing", 0)
    return {
        "lp_rate_per_instrument": rate,
        "window_seconds": round(elapsed, 2),
        "offered_ticks_per_second": rate * instruments * len(LP_SIMULATORS),
        **sent,
        "processed_ticks_per_second_by_lp": {k: round(v) for k, v in processed.items()},
        "processed_ticks_per_second": round(total),
        "published_prices_per_second": round(
            (_sum(last.samples, PUBLISHED) - _sum(first.samples, PUBLISHED)) / elapsed
        ),
        # What one fully used core would give at this efficiency: an extrapolation, not a
        # measurement (the pricing process is one event loop plus QuickFIX's threads).
        "ticks_per_pricing_cpu_second": round(100 * total / pricing_cpu) if pricing_cpu else None,
        "tick_store": {
            "rows_written_per_second": round(rate_of(TICK_ROWS_WRITTEN)),
            "rows_dropped_per_second": round(rate_of(TICK_ROWS_DROPPED)),
            "copy_seconds_per_second": round(rate_of(TICK_FLUSH_SECONDS), 3),
        },
        "lp_sessions_up_at_end": {k: bool(v) for k, v in sessions_up.items()},
        "seconds_to_drain_after": drain,
        "cpu_percent": cpu,
        "load_average_1m": load,
    }


def ticks_phase(
    bench: Bench, rates: list[int], seconds: float, controls: dict[str, ControlClient]
) -> dict[str, Any]:
    normal = _normal_rates(controls)
    print(f"ticks: the LPs' own rates are {normal} updates/s per instrument")
    steps = [ticks_step(bench, rate, 3.0, seconds, controls, normal) for rate in rates]
    best = max(steps, key=lambda step: int(step["processed_ticks_per_second"]))
    return {
        "instruments_per_lp": len(CATALOGUE),
        "warmup_seconds": 3.0,
        "normal_lp_rates": normal,
        "steps": steps,
        "processed_ticks_per_second": best["processed_ticks_per_second"],
        "best_lp_rate_per_instrument": best["lp_rate_per_instrument"],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _drain(bench: Bench, normal_ticks_per_second: Decimal, timeout: float = 90.0) -> float | None:
    """Seconds until pricing is back to the normal tick rate (the backlog it built is worked
    off); None if not within `timeout`."""
    started = time.monotonic()
    previous = _sum(pricing_samples(bench), LP_TICKS)
    while time.monotonic() - started < timeout:
        time.sleep(1.0)
        current = _sum(pricing_samples(bench), LP_TICKS)
        if current - previous <= float(normal_ticks_per_second) * 1.5 + 20:
            return round(time.monotonic() - started, 1)
        previous = current
    return None


# ---- phase 3: quote streams through Envoy -----------------------------------------------------


def login(bench: Bench, ca_file: str | None) -> str:
    demo = bench.state.demo
    if demo is None:
        raise SystemExit("the stack has no demo user")
    target = f"{HOST}:{bench.ports.envoy}"
    if ca_file is None:
        channel = grpc.insecure_channel(target)
    else:
        channel = grpc.secure_channel(
            target, grpc.ssl_channel_credentials(Path(ca_file).read_bytes())
        )
    with channel:
        response = auth_grpc.AuthServiceStub(channel).Login(
            auth_pb2.LoginRequest(username=demo.username, password=demo.password), timeout=30
        )
    token: str = response.access_token
    return token


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def streams_phase(
    bench: Bench, args: argparse.Namespace, controls: dict[str, ControlClient]
) -> dict[str, Any]:
    demo = bench.state.demo
    assert demo is not None
    ca_file = bench.state.endpoints.ca_file if args.tls else None
    token = login(bench, ca_file)
    symbols = tuple(args.symbols.split(","))
    open_timeout = 30 + args.streams / 20
    normal = _normal_rates(controls)
    if args.stream_lp_rate is not None:
        for client in controls.values():
            client.set_rate(str(args.stream_lp_rate))
    context = multiprocessing.get_context("spawn")
    workers = []
    streams_per_client = _shares(args.streams, args.clients)
    connections = _shares(max(args.connections, args.clients), args.clients)
    print(
        f"streams: opening {args.streams} StreamQuotes ({len(symbols)} symbols each) through "
        f"Envoy {'TLS' if ca_file else 'h2c'}, {args.clients} client processes, "
        f"{sum(connections)} connections"
    )
    try:
        for index in range(args.clients):
            parent_end, child_end = context.Pipe()
            plan = StreamPlan(
                worker=index,
                target=f"{HOST}:{bench.ports.envoy}",
                ca_file=ca_file,
                token=token,
                account_id=demo.account_id,
                symbols=symbols,
                streams=streams_per_client[index],
                channels=connections[index],
                opens_per_second=args.open_rate / args.clients,
                open_timeout=open_timeout,
            )
            process = context.Process(target=run, args=(plan, child_end), daemon=True)
            process.start()
            child_end.close()
            workers.append((process, parent_end))
        opens: list[OpenReport] = [
            receive(connection, "open", open_timeout + 60, "stream client")
            for _, connection in workers
        ]
        opened = sum(o.opened for o in opens)
        print(f"streams: {opened} of {args.streams} open ({max(o.seconds for o in opens)} s)")
        pids = probes.component_pids(bench.state, WATCHED)
        start = time.time() + 1.0
        end = start + args.seconds
        for _, connection in workers:
            connection.send(("window", start, end))
        time.sleep(max(start - time.time(), 0))
        before = _edge_reading(bench, pids)
        time.sleep(max(end - time.time(), 0))
        after = _edge_reading(bench, pids)
        for _, connection in workers:
            connection.send(("stop",))
        load = load_1m()
        results: list[StreamResult] = [
            receive(connection, "result", 120, "stream client") for _, connection in workers
        ]
    finally:
        for process, connection in workers:
            connection.close()
            end_process(process)
        if args.stream_lp_rate is not None:
            for lp, client in controls.items():
                client.set_rate(normal[lp])
    return _stream_summary(
        args,
        symbols,
        opens,
        results,
        before,
        after,
        load,
        normal,
    )


@dataclass(frozen=True)
class EdgeReading:
    """Counters read at one edge of the streams' measurement window."""

    envoy: dict[str, int]
    tcp: dict[tuple[str, str], int] | None  # kernel bytes sent per client connection of Envoy
    cpu: dict[str, float]
    published: float


def _edge_reading(bench: Bench, pids: dict[str, int]) -> EdgeReading:
    return EdgeReading(
        probes.envoy_counters(bench.ports.envoy_admin, ENVOY_COUNTERS),
        probes.tcp_bytes_sent(bench.ports.envoy),
        probes.cpu_seconds_by_tree(pids),
        _sum(pricing_samples(bench), PUBLISHED),
    )


def _stream_summary(
    args: argparse.Namespace,
    symbols: tuple[str, ...],
    opens: list[OpenReport],
    results: list[StreamResult],
    before: EdgeReading,
    after: EdgeReading,
    load: float,
    normal_rates: dict[str, str],
) -> dict[str, Any]:
    latencies = sorted(v for r in results for v in r.latencies_ms)
    ticks = sum(r.ticks for r in results)
    responses = sum(r.responses for r in results)
    per_stream = [n for r in results for n in r.ticks_per_stream]
    errors: dict[str, int] = {}
    for report in opens:
        for code, n in report.errors.items():
            errors[code] = errors.get(code, 0) + n
    for result in results:
        for code, n in result.errors.items():
            errors[code] = errors.get(code, 0) + n

    def delta(name: str) -> int | None:
        if name in before.envoy and name in after.envoy:
            return after.envoy[name] - before.envoy[name]
        return None

    downstream, upstream = delta(DOWNSTREAM_TX), delta(UPSTREAM_RX)
    if upstream is not None:
        upstream += delta(WORKERS_RX) or 0
    tcp = None
    if before.tcp is not None and after.tcp is not None:
        tcp = sum(sent - before.tcp.get(key, 0) for key, sent in after.tcp.items())
    cpu_seconds = {name: after.cpu[name] - before.cpu[name] for name in before.cpu}
    cpu = _cpu_percent(before.cpu, after.cpu, args.seconds)
    cpu["stream clients"] = round(100 * sum(r.cpu_seconds for r in results) / args.seconds)
    # The stream tier: the pricing process and its stream workers (most of pricing's CPU at
    # the LPs' own rates is the fan-out when no worker runs).
    tier = ["pricing", *(name for name in STREAM_WORKERS if name in cpu_seconds)]
    tier_seconds = sum(cpu_seconds.get(name, 0.0) for name in tier)
    return {
        "streams_requested": args.streams,
        "symbols_per_stream": list(symbols),
        "client_processes": args.clients,
        "connections": max(args.connections, args.clients),
        "tls": args.tls,
        "lp_rate_per_instrument": (
            {lp: str(args.stream_lp_rate) for lp in normal_rates}
            if args.stream_lp_rate is not None
            else normal_rates
        ),
        "streams_opened": sum(o.opened for o in opens),
        "seconds_to_open": max(o.seconds for o in opens),
        "opens_retried_after_rate_limit": sum(o.retries for o in opens),
        "streams_receiving": sum(1 for n in per_stream if n > 0),
        "streams_broken": sum(r.broken for r in results),
        "errors": errors,
        "window_seconds": args.seconds,
        "published_prices_per_second": round(
            (after.published - before.published) / args.seconds, 1
        ),
        "ticks_received": ticks,
        "ticks_per_second": round(ticks / args.seconds),
        "ticks_per_stream_per_second": round(ticks / args.seconds / max(len(per_stream), 1), 2),
        "responses_received": responses,
        "ticks_per_response": round(ticks / responses, 2) if responses else None,
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50), 1),
            "p90": round(percentile(latencies, 0.90), 1),
            "p99": round(percentile(latencies, 0.99), 1),
            "max": round(latencies[-1], 1) if latencies else None,
        },
        "bytes": {
            # The kernel's TCP payload bytes from Envoy to the clients: the wire (TLS included
            # when used; TCP/IP headers not). Envoy's own counter: the HTTP/2 bytes it wrote.
            "tcp_payload_envoy_to_clients": tcp,
            "http2_envoy_to_clients": downstream,
            "http2_pricing_to_envoy": upstream,
            "per_quote_on_the_wire": _per(tcp, ticks),
            "per_quote_http2_envoy_to_clients": _per(downstream, ticks),
            "per_quote_http2_pricing_to_envoy": _per(upstream, ticks),  # workers included
            "quote_tick_message": _per(sum(r.tick_bytes for r in results), ticks),
            "response_message_per_quote": _per(sum(r.response_bytes for r in results), ticks),
        },
        "cpu_percent": cpu,
        "stream_workers": len(tier) - 1,
        # CPU of pricing and the stream workers per tick delivered (and per response written):
        # the cost of the fan-out, comparable between runs when the machine is busy.
        "stream_tier_cpu_us_per_tick": round(1e6 * tier_seconds / ticks, 2) if ticks else None,
        "stream_tier_cpu_us_per_response": (
            round(1e6 * tier_seconds / responses, 1) if responses else None
        ),
        "load_average_1m": load,
    }


def _per(total: int | None, count: int) -> float | None:
    return round(total / count, 1) if total is not None and count else None


# ---- the report -------------------------------------------------------------------------------


def _verdict(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "NOT met")


def table(summary: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    engine = summary.get("engine")
    if engine:
        rate = engine["ticks_per_second"]
        rows.append(
            (
                "LP ticks/s, engine alone (in process)",
                f"{rate:,.0f}",
                f">= {TARGET_TICKS_PER_SECOND:,}",
                _verdict(rate >= TARGET_TICKS_PER_SECOND),
            )
        )
    ticks = summary.get("ticks")
    if ticks:
        for step in ticks["steps"]:
            sent = step["sent_ticks_per_second"]
            rows.append(
                (
                    f"  LP rate {step['lp_rate_per_instrument']}/s: ticks/s offered / sent /"
                    " processed",
                    f"{step['offered_ticks_per_second']:,} / "
                    f"{'?' if sent is None else format(sent, ',')} / "
                    f"{step['processed_ticks_per_second']:,} "
                    f"(pricing {step['cpu_percent'].get('pricing', '?')}% cpu)",
                    "",
                    "",
                )
            )
        rate = ticks["processed_ticks_per_second"]
        best = next(
            step
            for step in ticks["steps"]
            if step["lp_rate_per_instrument"] == ticks["best_lp_rate_per_instrument"]
        )
        efficiency = best["ticks_per_pricing_cpu_second"]
        rows.append(
            (
                "  best step: ticks per pricing CPU-second",
                "?" if efficiency is None else f"{efficiency:,}",
                "",
                "",
            )
        )
        rows.append(
            (
                "LP ticks/s end to end, best (FIX -> engine)",
                f"{rate:,}",
                f">= {TARGET_TICKS_PER_SECOND:,}",
                _verdict(rate >= TARGET_TICKS_PER_SECOND),
            )
        )
    streams = summary.get("streams")
    if streams:
        receiving = streams["streams_receiving"]
        latency = streams["latency_ms"]
        p99 = latency["p99"]
        rows.append(
            (
                "concurrent streams open / receiving",
                f"{streams['streams_opened']:,} / {receiving:,}",
                f">= {TARGET_STREAMS:,}",
                _verdict(receiving >= TARGET_STREAMS),
            )
        )
        rows.append(
            ("  ticks/s delivered (all streams)", f"{streams['ticks_per_second']:,}", "", "")
        )
        rows.append(
            (
                f"  pricing + {streams['stream_workers']} stream workers: CPU us per tick",
                f"{streams['stream_tier_cpu_us_per_tick']}",
                "",
                "",
            )
        )
        rows.append(("tick-to-client p50 (ms)", f"{latency['p50']}", "", ""))
        rows.append(
            (
                "tick-to-client p99 (ms)",
                f"{p99}",
                f"<= {TARGET_P99_MS:g}",
                _verdict(not math.isnan(p99) and p99 <= TARGET_P99_MS),
            )
        )
        rows.append(("tick-to-client max (ms)", f"{latency['max']}", "", ""))
        wire = streams["bytes"]["per_quote_on_the_wire"]
        if wire is None:  # no `ss`: Envoy's count of the HTTP/2 bytes it wrote
            wire = streams["bytes"]["per_quote_http2_envoy_to_clients"]
        rows.append(
            (
                "bytes per quote on the wire (TCP, Envoy -> clients)",
                "?" if wire is None else f"{wire}",
                f"aim <= {AIM_BYTES_PER_QUOTE:g}",
                "" if wire is None else _verdict(wire <= AIM_BYTES_PER_QUOTE),
            )
        )
        sizes = streams["bytes"]
        rows.append(
            (
                "  per quote: HTTP/2 (Envoy) / response msg / QuoteTick",
                f"{sizes['per_quote_http2_envoy_to_clients']} / "
                f"{sizes['response_message_per_quote']} / {sizes['quote_tick_message']}",
                "",
                "",
            )
        )
    return rows


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    widths = [
        max(len(row[i]) for row in [("metric", "value", "target", "met?"), *rows]) for i in range(4)
    ]
    for row in [("metric", "value", "target", "met?"), *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="use this running stack instead of starting one")
    parser.add_argument(
        "--phases", default=",".join(PHASES), help="comma-separated subset of engine,ticks,streams"
    )
    parser.add_argument(
        "--engine-rounds", type=int, default=10_000, help="rounds of 2 LPs x 6 instruments"
    )
    parser.add_argument(
        "--lp-rates",
        default="250,500,1000,2000",
        help="ticks phase: LP updates/s per instrument, comma-separated, one step each",
    )
    parser.add_argument("--tick-seconds", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=TARGET_STREAMS)
    parser.add_argument("--seconds", type=float, default=20.0, help="streams phase window")
    parser.add_argument("--symbols", default=",".join(i.symbol for i in CATALOGUE))
    parser.add_argument("--clients", type=int, default=2, help="stream client processes")
    parser.add_argument("--connections", type=int, default=16, help="HTTP/2 connections in all")
    parser.add_argument("--open-rate", type=float, default=200.0, help="stream opens/s in all")
    parser.add_argument(
        "--stream-lp-rate",
        type=int,
        help="streams phase: LP updates/s per instrument (default: the stack's own)",
    )
    parser.add_argument("--tls", action="store_true", help="streams over TLS (default h2c)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/market_data.json"))
    args = parser.parse_args()
    phases = [p for p in args.phases.split(",") if p]
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in background

    summary: dict[str, Any] = {
        "benchmark": "market_data",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m_at_start": load_1m(),
        },
        "targets": {
            "lp_ticks_per_second": TARGET_TICKS_PER_SECOND,
            "concurrent_streams": TARGET_STREAMS,
            "p99_tick_to_client_ms": TARGET_P99_MS,
            "aim_bytes_per_quote": AIM_BYTES_PER_QUOTE,
        },
    }
    if "engine" in phases:
        print(f"engine: {args.engine_rounds:,} rounds of LP quotes, 3 runs")
        summary["engine"] = engine_phase(args.engine_rounds, 3)
    if "ticks" in phases or "streams" in phases:
        with bench_stack(
            args.stack, budget=300, prefix="bench-md", edge_limits=BENCH_EDGE_LIMITS
        ) as bench:
            summary["stack"] = {
                "name": bench.state.name,
                "started_by_benchmark": bench.started_here,
                "edge_rate_limits": bench.edge_limits,
            }
            wait_for_prices(bench)
            controls = {lp: ControlClient(bench.ports.lp_control(lp)) for lp in LP_SIMULATORS}
            # Streams first: the ticks phase overloads pricing on purpose, and the backlog it
            # leaves can take minutes to work off.
            if "streams" in phases:
                summary["streams"] = streams_phase(bench, args, controls)
            if "ticks" in phases:
                rates = [int(rate) for rate in args.lp_rates.split(",")]
                summary["ticks"] = ticks_phase(bench, rates, args.tick_seconds, controls)
    summary["machine"]["load_average_1m_at_end"] = load_1m()
    rows = table(summary)
    summary["table"] = [
        dict(zip(("metric", "value", "target", "met"), row, strict=True)) for row in rows
    ]
    print()
    print_table(rows)
    print(
        f"load average (1 min): {summary['machine']['load_average_1m_at_start']} at start, "
        f"{summary['machine']['load_average_1m_at_end']} at end; {os.cpu_count()} cpus"
    )
    for step in summary.get("ticks", {}).get("steps", []):
        print(f"cpu % at LP rate {step['lp_rate_per_instrument']}/s: {step['cpu_percent']}")
    if "streams" in summary:
        print(f"cpu % during streams: {summary['streams']['cpu_percent']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit("interrupted (a stack this run started has been stopped)") from None

"""Market data through the real stack: LP simulators over FIX → pricing → Redis → Envoy.

Where a test needs known prices, it pins the LP simulators' quotes through their control ports
and checks the price a client of a group sees to the point."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]
from grpc_health.v1 import health_pb2_grpc

from bench.probes import prometheus_samples
from simulators.lp.control import ControlClient
from simulators.lp.control import ControlError
from stack.components.envoy import STREAM_CLUSTER
from stack.operator_tls import service_channel
from stack.paths import StackPaths
from stack.ports import STREAM_WORKERS
from stack.ports import Ports
from stack.ports import stream_worker_count
from stack.ports import stream_workers
from stack.state import load
from tests.integration.conftest import RunningStack
from tests.integration.support.components import kill
from tests.integration.support.components import restore
from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.pricing import STANDARD_MARKUP_POINTS
from tests.integration.support.pricing import get_quote
from tests.integration.support.waiting import eventually
from tradingmesh.errors import details_of
from tradingmesh.pricing.v1 import pricing_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc as pricing_grpc


@pytest.fixture
def pricing(edge: Edge) -> Iterator[pricing_grpc.PricingServiceStub]:
    with edge.channel() as channel:
        yield pricing_grpc.PricingServiceStub(channel)


def test_a_quote_is_the_best_lp_prices_widened_by_the_groups_markup(
    pricing: pricing_grpc.PricingServiceStub, demo: tuple[str, str]
) -> None:
    quote = get_quote(pricing, demo)
    source = quote.provenance
    point = Decimal("0.00001")
    assert {source.bid_source.liquidity_provider_id, source.ask_source.liquidity_provider_id} <= {
        "lp-alpha",
        "lp-beta",
    }
    assert source.markup.value == str(STANDARD_MARKUP_POINTS)
    # 10 points: 5 off the bid, 5 onto the ask, exactly.
    assert Decimal(source.bid_source.raw_price) - Decimal(quote.bid) == 5 * point
    assert Decimal(quote.ask) - Decimal(source.ask_source.raw_price) == 5 * point
    assert Decimal(quote.ask) > Decimal(quote.bid)
    assert Decimal(quote.spread) == Decimal(quote.ask) - Decimal(quote.bid)
    assert not quote.stale


def test_instruments_and_quotes_of_the_group_are_listed(
    pricing: pricing_grpc.PricingServiceStub, demo: tuple[str, str]
) -> None:
    token, account = demo
    get_quote(pricing, demo)
    instruments = pricing.ListInstruments(
        pricing_service_pb2.ListInstrumentsRequest(account_id=account, page_size=4),
        metadata=bearer(token),
        timeout=10,
    )
    assert [i.symbol for i in instruments.instruments] == ["BTCUSD", "EURUSD", "GBPUSD", "US500"]
    rest = pricing.ListInstruments(
        pricing_service_pb2.ListInstrumentsRequest(
            account_id=account, page_size=4, page_token=instruments.next_page_token
        ),
        metadata=bearer(token),
        timeout=10,
    )
    assert [i.symbol for i in rest.instruments] == ["USDJPY", "XAUUSD"]
    assert rest.next_page_token == ""
    quotes = pricing.ListQuotes(
        pricing_service_pb2.ListQuotesRequest(account_id=account, symbols=["XAUUSD", "EURUSD"]),
        metadata=bearer(token),
        timeout=10,
    )
    assert [q.symbol for q in quotes.quotes] == ["EURUSD", "XAUUSD"]
    assert not any(q.HasField("provenance") for q in quotes.quotes)


def _refused(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    error: Any = raised.value
    return error.code(), error.details()


def test_bad_requests_get_clear_errors(
    pricing: pricing_grpc.PricingServiceStub, demo: tuple[str, str]
) -> None:
    token, account = demo

    def stream(symbols: list[str]) -> Any:
        responses = pricing.StreamQuotes(
            pricing_service_pb2.StreamQuotesRequest(account_id=account, symbols=symbols),
            metadata=bearer(token),
            timeout=10,
        )
        return next(iter(responses))

    code, message = _refused(
        lambda: pricing.GetQuote(
            pricing_service_pb2.GetQuoteRequest(symbol="NOPE", account_id=account),
            metadata=bearer(token),
            timeout=10,
        )
    )
    assert (code, message) == (grpc.StatusCode.NOT_FOUND, "unknown instrument: NOPE")
    code, _ = _refused(lambda: stream([]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = _refused(lambda: stream([f"SYM{i}" for i in range(10_000)]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, message = _refused(lambda: stream(["EURUSD", "NOPE", "NOPE2"]))
    assert code == grpc.StatusCode.NOT_FOUND
    assert message == "unknown instruments: NOPE, NOPE2"
    with pytest.raises(grpc.RpcError) as raised:
        stream(["NOPE"])
    # The unknown symbol under `symbol`, as in every service's UNKNOWN_INSTRUMENT (ADR 0002).
    assert details_of(raised.value).metadata["symbol"] == "NOPE"
    # Another user's (or no) account: NOT_FOUND, as for every account-scoped call.
    code, _ = _refused(
        lambda: pricing.GetQuote(
            pricing_service_pb2.GetQuoteRequest(
                symbol="EURUSD", account_id="00000000-0000-4000-8000-000000000000"
            ),
            metadata=bearer(token),
            timeout=10,
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND


def test_rest_errors_carry_the_reason_in_a_json_body(edge: Edge, demo: tuple[str, str]) -> None:
    token, account = demo
    connection = edge.https()
    connection.request(
        "GET",
        f"/v1/quotes/NOPE?account_id={account}",
        headers={"authorization": f"Bearer {token}"},
    )
    response = connection.getresponse()
    body = json.loads(response.read())
    assert response.status == 404
    assert body["code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert body["details"][0]["reason"] == "UNKNOWN_INSTRUMENT"


def test_a_stream_starts_with_a_snapshot_then_follows_prices(
    pricing: pricing_grpc.PricingServiceStub, demo: tuple[str, str]
) -> None:
    token, account = demo
    get_quote(pricing, demo)
    responses = pricing.StreamQuotes(
        pricing_service_pb2.StreamQuotesRequest(account_id=account, symbols=["EURUSD", "XAUUSD"]),
        metadata=bearer(token),
        timeout=20,
    )
    first = next(responses)
    assert {t.symbol for t in first.quotes} == {"EURUSD", "XAUUSD"}
    tick = next(t for t in first.quotes if t.symbol == "EURUSD")
    assert tick.price_scale == 5
    assert tick.ask_units > tick.bid_units
    later = next(responses)
    assert {t.symbol for t in later.quotes} <= {"EURUSD", "XAUUSD"}
    assert len({t.symbol for t in later.quotes}) == len(later.quotes)  # one tick per symbol
    responses.cancel()


def test_streams_cancelled_by_their_clients_leave_the_service_serving(
    running_stack: RunningStack,
    pricing: pricing_grpc.PricingServiceStub,
    demo: tuple[str, str],
) -> None:
    """A regression: reading the peer of a finished call crashed pricing (SIGSEGV in grpc). The
    streams are served by the stream workers (ADR 0008): none of them may die either."""
    token, account = demo
    get_quote(pricing, demo)
    state = load(StackPaths.for_name(running_stack.config.name).state_file)
    assert state is not None
    servers = [c for c in state.components if c.name == "pricing" or c.name in STREAM_WORKERS]
    assert len(servers) == 1 + stream_worker_count()
    for _ in range(30):
        responses = pricing.StreamQuotes(
            pricing_service_pb2.StreamQuotesRequest(account_id=account, symbols=["EURUSD"]),
            metadata=bearer(token),
            timeout=20,
        )
        next(responses)
        responses.cancel()
    time.sleep(1)
    assert get_quote(pricing, demo).bid
    for server in servers:
        assert server.pid is not None
        os.kill(server.pid, 0)  # still the same process: raises if it died


def _open_streams(state: Any, name: str) -> float:
    """The quote streams open in a pricing process now (its tradingmesh_pricing_quote_streams)."""
    ports = Ports(state.base_port)
    port = (
        ports.service_metrics("pricing") if name == "pricing" else ports.stream_worker_metrics(name)
    )
    samples = prometheus_samples(port, "tradingmesh_pricing_quote_streams")
    return samples.get("tradingmesh_pricing_quote_streams", 0.0)


def test_streams_are_served_by_the_stream_workers_spread_by_the_edge(
    running_stack: RunningStack,
    pricing: pricing_grpc.PricingServiceStub,
    demo: tuple[str, str],
) -> None:
    token, account = demo
    state = running_stack.state
    workers = stream_workers()  # as `up` read them
    get_quote(pricing, demo)
    # Right after start-up (this test run first) Envoy's balancer may still see a worker as
    # not healthy after its admin does (seen: every stream to one worker): two more rounds of
    # health checks once the admin sees them all healthy.
    eventually(
        lambda: all(_worker_health(state, w) == "healthy" for w in workers) or None,
        30,
        "Envoy counting every stream worker healthy",
    )
    checked = _stream_health_checks(state) + 2 * len(workers)
    eventually(lambda: _stream_health_checks(state) >= checked or None, 30, "two more rounds")
    request = pricing_service_pb2.StreamQuotesRequest(account_id=account, symbols=["EURUSD"])
    calls = []
    try:
        # One after the other, as clients come: each open on its worker (its snapshot has
        # arrived) before the next is placed. Opened all at once on a fresh edge, they would
        # all be placed before any counted as open on a worker (no upstream connection yet).
        for _ in range(2 * len(workers)):
            calls.append(pricing.StreamQuotes(request, metadata=bearer(token), timeout=60))
            next(calls[-1])
        counts = {name: _open_streams(state, name) for name in ("pricing", *workers)}
    finally:
        for call in calls:
            call.cancel()

    assert counts["pricing"] == 0
    assert sum(counts[w] for w in workers) >= len(calls)  # (others' streams may be open too)
    assert all(counts[w] >= 1 for w in workers)  # least request: none left idle


def _grpc_web_frames(response: Any, wanted: int) -> list[tuple[int, bytes]]:
    """The first `wanted` frames (flag, payload) of a gRPC-web response body, read as they come."""
    frames: list[tuple[int, bytes]] = []
    while len(frames) < wanted:
        header = response.read(5)
        assert len(header) == 5, "the stream ended early"
        payload = response.read(int.from_bytes(header[1:], "big"))
        frames.append((header[0], payload))
        if header[0] & 0x80:
            break  # the trailers: the stream is over
    return frames


def test_a_grpc_web_and_a_rest_client_follow_the_stream_through_the_edge(
    edge: Edge, pricing: pricing_grpc.PricingServiceStub, demo: tuple[str, str]
) -> None:
    token, account = demo
    get_quote(pricing, demo)
    message = pricing_service_pb2.StreamQuotesRequest(
        account_id=account, symbols=["EURUSD", "XAUUSD"]
    ).SerializeToString()
    web = edge.https()
    web.request(
        "POST",
        "/tradingmesh.pricing.v1.PricingService/StreamQuotes",
        body=b"\x00" + len(message).to_bytes(4, "big") + message,
        headers={
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "authorization": f"Bearer {token}",
        },
    )
    answer = web.getresponse()
    frames = _grpc_web_frames(answer, 2)
    web.close()
    rest = edge.https()
    rest.request(
        "GET",
        f"/v1/quotes:stream?account_id={account}&symbols=EURUSD",
        headers={"authorization": f"Bearer {token}"},
    )
    rest_answer = rest.getresponse()
    opening = rest_answer.read(40)
    rest.close()

    assert answer.status == 200
    assert answer.getheader("content-type") == "application/grpc-web+proto"
    assert [flag for flag, _ in frames] == [0, 0]  # two messages, no trailers: still streaming
    snapshot = pricing_service_pb2.StreamQuotesResponse.FromString(frames[0][1])
    assert {t.symbol for t in snapshot.quotes} == {"EURUSD", "XAUUSD"}
    later = pricing_service_pb2.StreamQuotesResponse.FromString(frames[1][1])
    assert {t.symbol for t in later.quotes} <= {"EURUSD", "XAUUSD"}
    assert rest_answer.status == 200
    assert opening.startswith(b'[{"quotes":[{"symbol":"EURUSD"')


def _stream_health_checks(state: Any) -> int:
    """The health checks of the stream workers that Envoy has seen pass."""
    name = f"cluster.{STREAM_CLUSTER}.health_check.success"
    port = Ports(state.base_port).envoy_admin
    url = f"http://127.0.0.1:{port}/stats?filter=^{name}$&format=json"
    with urllib.request.urlopen(url, timeout=5) as response:
        stats = json.loads(response.read())["stats"]
    (found,) = [s["value"] for s in stats if s.get("name") == name]
    return int(found)


def _worker_health(state: Any, worker: str) -> str:
    """Envoy's view of a stream worker: its health flags in the admin /clusters listing."""
    address = f"127.0.0.1:{Ports(state.base_port).stream_worker_grpc(worker)}"
    port = Ports(state.base_port).envoy_admin
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/clusters", timeout=5) as response:
        listing = response.read().decode()
    prefix = f"pricing_streams::{address}::health_flags::"
    (flags,) = [line[len(prefix) :] for line in listing.splitlines() if line.startswith(prefix)]
    return str(flags)


def test_a_killed_stream_worker_gets_no_new_streams_and_up_restarts_it(
    running_stack: RunningStack,
    pricing: pricing_grpc.PricingServiceStub,
    demo: tuple[str, str],
) -> None:
    token, account = demo
    state = running_stack.state
    assert stream_worker_count() >= 2, "the stack runs with one stream worker or none"
    get_quote(pricing, demo)
    kill(running_stack, STREAM_WORKERS[0])
    try:
        eventually(
            lambda: _worker_health(state, STREAM_WORKERS[0]) != "healthy",
            10,
            "Envoy saw the worker fail its health check",
        )
        request = pricing_service_pb2.StreamQuotesRequest(account_id=account, symbols=["EURUSD"])
        for _ in range(4):  # every new stream lands on a live worker
            call = pricing.StreamQuotes(request, metadata=bearer(token), timeout=20)
            assert next(call).quotes  # the snapshot
            call.cancel()
    finally:
        restore(running_stack)
    eventually(
        lambda: _worker_health(state, STREAM_WORKERS[0]) == "healthy",
        15,
        "the restarted worker is healthy at the edge again",
    )


# A slow reader's window: 4 KiB and no BDP probing, as a client on a slow link would have.
SLOW_READER = [("grpc.http2.lookahead_bytes", 4096), ("grpc.http2.bdp_probe", 0)]
# What may sit between pricing and a stalled reader: Envoy's 64 KiB upstream stream window and
# 32 KiB connection buffer, the reader's window, socket buffers (envoy/edge.yaml.tmpl).
BACKLOG_BOUND = 256 * 1024
FLOOD_RATE = "100"  # updates/s per instrument at each LP during the slow-reader test
ALL_SYMBOLS = ["BTCUSD", "EURUSD", "GBPUSD", "US500", "USDJPY", "XAUUSD"]


def test_a_slow_reader_gets_a_bounded_backlog_then_the_latest_price_not_every_old_one(
    edge: Edge, lps: dict[str, ControlClient], demo: tuple[str, str]
) -> None:
    token, account = demo
    request = pricing_service_pb2.StreamQuotesRequest(account_id=account, symbols=ALL_SYMBOLS)
    fast: list[tuple[float, int, int]] = []  # per response to the fast reader: when, bytes, ticks

    def read_fast(responses: Any) -> None:
        with contextlib.suppress(grpc.RpcError):  # cancelled at the end
            for response in responses:
                fast.append((time.monotonic(), response.ByteSize(), len(response.quotes)))

    def since(start: float, end: float = float("inf")) -> tuple[int, int]:
        """(bytes, ticks) the fast reader got between `start` and `end`."""
        got = [(size, ticks) for at, size, ticks in list(fast) if start <= at < end]
        return sum(g[0] for g in got), sum(g[1] for g in got)

    rates = {lp: control.state()["updates_per_second"] for lp, control in lps.items()}
    with edge.channel() as fast_channel, edge.channel(SLOW_READER) as slow_channel:
        fast_stream = pricing_grpc.PricingServiceStub(fast_channel).StreamQuotes(
            request, metadata=bearer(token), timeout=300
        )
        slow = pricing_grpc.PricingServiceStub(slow_channel).StreamQuotes(
            request, metadata=bearer(token), timeout=300
        )
        threading.Thread(target=read_fast, args=(fast_stream,), daemon=True).start()
        try:
            next(slow)  # the snapshot
            for control in lps.values():
                # Faster than pricing can follow on a busy 2-core machine would leave a backlog
                # of FIX messages that every later test waits behind; this is enough to fill
                # the slow reader's window many times over.
                control.set_rate(FLOOD_RATE)
            # Stop reading until pricing has sent a fast reader twice what the transport may
            # hold: a stream that queued every change would owe the slow reader all of it.
            paused = time.monotonic()
            while since(paused)[0] < 2 * BACKLOG_BOUND:
                assert time.monotonic() - paused < 180, f"prices too slow: {since(paused)}"
                time.sleep(0.5)
            reading = time.monotonic()
            _, during_pause = since(paused, reading)
            backlog_bytes = backlog_ticks = 0
            while True:
                response = next(slow)
                newest = max((q.time_unix_ms for q in response.quotes), default=0)
                if newest > (time.time() - 1) * 1000:
                    break  # a price from the last second: the reader has caught up
                backlog_bytes += response.ByteSize()
                backlog_ticks += len(response.quotes)
            caught_up = time.monotonic() - reading
        finally:
            for lp, control in lps.items():
                control.set_rate(rates[lp])
            fast_stream.cancel()
            slow.cancel()
            drained(lps, pricing_grpc.PricingServiceStub(fast_channel), demo)
    assert backlog_bytes <= BACKLOG_BOUND
    assert backlog_ticks < during_pause * 3 / 4  # pricing conflated: it skipped old prices
    assert caught_up < 2


def drained(
    lps: dict[str, ControlClient],
    pricing: pricing_grpc.PricingServiceStub,
    demo: tuple[str, str],
) -> None:
    """Waits until pricing has worked off what the LPs sent during a flood: a price pinned at
    every LP now must show (FIX messages are processed in order)."""
    for control in lps.values():
        control.pin(SYMBOL, "1.23450", "1.23460")
    try:
        quote_from(pricing, demo, ("1.23450", "1.23460"), timeout=180)
    finally:
        for control in lps.values():
            control.unpin()


def _lp_health(state: Any, lp: str) -> int:
    with service_channel(state, "pricing") as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=f"tradingmesh.pricing.lp.{lp}"), timeout=5
        )
    status: int = response.status
    return status


def test_a_stopped_lp_stops_counting_prices_go_on_and_its_session_comes_back(
    running_stack: RunningStack,
    pricing: pricing_grpc.PricingServiceStub,
    demo: tuple[str, str],
) -> None:
    state = running_stack.state
    eventually(
        lambda: _lp_health(state, "lp-alpha") == health_pb2.HealthCheckResponse.SERVING,
        30,
        "lp-alpha's session logged on",
    )
    kill(running_stack, "lp-alpha")  # as it runs now: an earlier test may have restarted it
    try:
        stopped = time.monotonic()
        eventually(
            lambda: _lp_health(state, "lp-alpha") == health_pb2.HealthCheckResponse.NOT_SERVING,
            10,
            "pricing saw lp-alpha's session drop",
        )

        def only_beta() -> bool:
            quote = get_quote(pricing, demo)
            sources = quote.provenance
            return (
                sources.bid_source.liquidity_provider_id == "lp-beta"
                and sources.ask_source.liquidity_provider_id == "lp-beta"
                and quote.quote_time.ToDatetime().timestamp() > time.time() - 2
            )

        eventually(only_beta, 10, "prices from lp-beta alone, still live")
        assert time.monotonic() - stopped < 10
    finally:
        # `up` restarts what is missing: the simulator, then QuickFIX reconnects to it.
        restore(running_stack)
    eventually(
        lambda: _lp_health(state, "lp-alpha") == health_pb2.HealthCheckResponse.SERVING,
        30,
        "lp-alpha's session logged on again",
    )
    # Logged on is not enough: its prices must count again (they once did not, after a resend).
    alpha = ControlClient(Ports(state.base_port).lp_control("lp-alpha"))
    # Crossed with lp-beta and one point wide: the tightest LP quote, so the price is alpha's.
    alpha.pin("EURUSD", "2.00000", "2.00001")
    try:

        def alpha_counts() -> bool:
            sources = get_quote(pricing, demo).provenance
            return sources.bid_source.liquidity_provider_id == "lp-alpha"

        eventually(alpha_counts, 10, "lp-alpha's prices count again")
    finally:
        alpha.unpin()


def test_candles_are_built_from_the_live_prices(
    pricing: pricing_grpc.PricingServiceStub, demo: tuple[str, str]
) -> None:
    token, account = demo
    get_quote(pricing, demo)
    request = pricing_service_pb2.GetCandlesRequest(
        symbol="EURUSD", timeframe=pricing_pb2.TIMEFRAME_M1, account_id=account
    )
    candles = eventually(  # ticks are written in batches, then folded into candles every second
        lambda: pricing.GetCandles(request, metadata=bearer(token), timeout=10).candles,
        30,
        "an M1 candle of the live prices",
        every=0.5,
    )
    newest = candles[0]
    assert not newest.complete  # the current minute's candle is open
    low, high = Decimal(newest.low), Decimal(newest.high)
    assert low <= Decimal(newest.open) <= high
    assert low <= Decimal(newest.close) <= high
    assert newest.tick_volume >= 1
    times = [c.open_time.ToDatetime() for c in candles]
    assert times == sorted(times, reverse=True)


# -- aggregation with known prices: the LP simulators' quotes pinned through their control ports

SYMBOL = "EURUSD"


def quote_from(
    pricing: pricing_grpc.PricingServiceStub,
    demo: tuple[str, str],
    raw: tuple[str, str],
    timeout: float = 15,
) -> pricing_pb2.Quote:
    """The demo group's quote once it is made of the raw (bid, ask) the LPs were pinned to."""

    def made_of_raw() -> pricing_pb2.Quote | None:
        quote = get_quote(pricing, demo, SYMBOL)
        sources = quote.provenance
        made_of = (sources.bid_source.raw_price, sources.ask_source.raw_price)
        return quote if made_of == raw else None

    return eventually(made_of_raw, timeout, f"a price made of {raw}", every=0.1)


@pytest.mark.parametrize(
    ("alpha", "beta", "bid_lp", "ask_lp"),
    [
        # lp-beta bids higher, lp-alpha asks lower: the bid is beta's, the ask alpha's.
        (("1.10000", "1.10020"), ("1.10005", "1.10030"), "lp-beta", "lp-alpha"),
        # and the other way round.
        (("1.10006", "1.10026"), ("1.10001", "1.10024"), "lp-alpha", "lp-beta"),
    ],
)
def test_the_best_bid_and_the_best_ask_come_from_different_lps_and_the_markup_is_exact(
    lps: dict[str, ControlClient],
    pricing: pricing_grpc.PricingServiceStub,
    demo: tuple[str, str],
    alpha: tuple[str, str],
    beta: tuple[str, str],
    bid_lp: str,
    ask_lp: str,
) -> None:
    lps["lp-alpha"].pin(SYMBOL, *alpha)
    lps["lp-beta"].pin(SYMBOL, *beta)
    best_bid = max(alpha[0], beta[0])
    best_ask = min(alpha[1], beta[1])

    quote = quote_from(pricing, demo, (best_bid, best_ask))

    assert quote.provenance.bid_source.liquidity_provider_id == bid_lp
    assert quote.provenance.ask_source.liquidity_provider_id == ask_lp
    # The demo group (standard) marks EURUSD up by 10 points: 5 off the bid, 5 onto the ask.
    expected = {
        ("1.10005", "1.10020"): ("1.10000", "1.10025"),
        ("1.10006", "1.10024"): ("1.10001", "1.10029"),
    }[(best_bid, best_ask)]
    assert (quote.bid, quote.ask) == expected
    assert quote.spread == {"1.10025": "0.00025", "1.10029": "0.00028"}[quote.ask]
    assert quote.provenance.markup.value == "10"


def test_lps_that_cross_each_other_give_the_tightest_single_lp_price_never_a_crossed_one(
    lps: dict[str, ControlClient],
    pricing: pricing_grpc.PricingServiceStub,
    demo: tuple[str, str],
) -> None:
    lps["lp-alpha"].pin(SYMBOL, "1.10000", "1.10010")  # spread 10 points, the tightest
    lps["lp-beta"].pin(SYMBOL, "1.10015", "1.10030")  # its bid is above alpha's ask

    quote = quote_from(pricing, demo, ("1.10000", "1.10010"))

    assert quote.provenance.bid_source.liquidity_provider_id == "lp-alpha"
    assert quote.provenance.ask_source.liquidity_provider_id == "lp-alpha"
    assert (quote.bid, quote.ask) == ("1.09995", "1.10015")


def test_the_control_port_refuses_a_bad_pin_and_changes_nothing(
    lps: dict[str, ControlClient],
) -> None:
    control = lps["lp-alpha"]
    for symbol, bid, ask, status in [
        ("EURUSD", "1.10020", "1.10000", 400),  # crossed
        ("EURUSD", "1.100001", "1.10020", 400),  # more decimals than the instrument has
        ("EURUSD", "NaN", "1.10020", 400),
        ("NOPE", "1", "2", 404),
    ]:
        with pytest.raises(ControlError) as refused:
            control.pin(symbol, bid, ask)
        assert refused.value.status == status
    assert control.state()["pins"] == {}

"""The fan-out of a group's prices to its quote streams (services/pricing/fanout.py): the index by
symbol, conflation, coalescing, snapshots, stale marks and heartbeats. Pure: no Redis, no clock."""

from __future__ import annotations

import asyncio

import pytest

from services.pricing.fanout import ClientStream
from services.pricing.fanout import GroupFanout
from tradingmesh.pricing.v1 import pricing_service_pb2

MS = 1_000_000  # nanoseconds


def tick(symbol: str, bid: int, made_ms: int = 0) -> pricing_service_pb2.QuoteTick:
    return pricing_service_pb2.QuoteTick(
        symbol=symbol, bid_units=bid, ask_units=bid + 10, price_scale=5, time_unix_ms=made_ms
    )


def fanout_with(*streams: ClientStream) -> GroupFanout:
    fanout = GroupFanout("g")
    for stream in streams:
        fanout.add(stream)
        stream.take()  # the (empty) snapshot is written
    return fanout


def bids(response: pricing_service_pb2.StreamQuotesResponse) -> dict[str, int]:
    return {t.symbol: t.bid_units for t in response.quotes}


def test_a_tick_reaches_only_the_streams_that_asked_for_its_symbol() -> None:
    euro, gold, both = (
        ClientStream("g", ["EURUSD"]),
        ClientStream("g", ["XAUUSD"]),
        ClientStream("g", ["EURUSD", "XAUUSD"]),
    )
    fanout = fanout_with(euro, gold, both)

    fanout.price(tick("EURUSD", 108500), 1 * MS)
    handed = fanout.flush(now=1.0)

    assert fanout.wanting("EURUSD") == {euro, both}
    assert handed == 2
    assert euro.changed.is_set()
    assert both.changed.is_set()
    assert not gold.changed.is_set()
    assert bids(euro.take()) == {"EURUSD": 108500}
    assert bids(gold.take()) == {}


def test_a_closed_stream_leaves_the_index_and_gets_nothing_more() -> None:
    stream, other = ClientStream("g", ["EURUSD", "XAUUSD"]), ClientStream("g", ["XAUUSD"])
    fanout = fanout_with(stream, other)

    fanout.remove(stream)
    fanout.price(tick("EURUSD", 108500), 1 * MS)
    fanout.price(tick("XAUUSD", 240000), 1 * MS)
    handed = fanout.flush(now=1.0)

    assert handed == 1  # XAUUSD to the other stream only
    assert not stream.changed.is_set()
    assert fanout.wanting("EURUSD") == frozenset()
    assert stream not in fanout.members


def test_prices_between_two_flushes_become_one_response_with_the_newest_of_each_symbol() -> None:
    stream = ClientStream("g", ["EURUSD", "XAUUSD"])
    fanout = fanout_with(stream)

    fanout.price(tick("EURUSD", 108500), 1 * MS)
    fanout.price(tick("XAUUSD", 240000), 2 * MS)
    fanout.price(tick("EURUSD", 108507), 3 * MS)
    fanout.flush(now=1.0)
    response = stream.take()

    assert bids(response) == {"EURUSD": 108507, "XAUUSD": 240000}
    assert len(response.quotes) == 2  # one tick per symbol


def test_a_slow_stream_keeps_only_the_newest_tick_across_flushes() -> None:
    stream = ClientStream("g", ["EURUSD"])
    fanout = fanout_with(stream)

    for n in range(5):  # five flushes while the stream writes nothing
        fanout.price(tick("EURUSD", 108500 + n), (n + 1) * MS)
        fanout.flush(now=float(n))

    assert bids(stream.take()) == {"EURUSD": 108504}


def test_a_flush_waits_for_the_coalescing_interval_after_the_previous_one() -> None:
    fanout = GroupFanout("g")

    assert fanout.flush_at(now=5.0, interval=0.01) == 5.0  # never flushed: at once
    fanout.flush(now=5.0)
    assert fanout.flush_at(now=5.004, interval=0.01) == pytest.approx(5.01)
    assert fanout.flush_at(now=5.02, interval=0.01) == 5.02


def test_a_price_not_newer_than_the_one_held_is_ignored() -> None:
    stream = ClientStream("g", ["EURUSD"])
    fanout = fanout_with(stream)
    fanout.price(tick("EURUSD", 108500), 5 * MS)
    fanout.flush(now=1.0)
    stream.take()

    assert not fanout.price(tick("EURUSD", 108400), 4 * MS)  # older, read late
    assert not fanout.price(tick("EURUSD", 108500), 5 * MS)  # the same one again
    assert fanout.flush(now=2.0) == 0
    assert not stream.changed.is_set()
    assert fanout.newest["EURUSD"].bid_units == 108500


def test_a_stale_mark_replaces_the_unwritten_tick_and_a_new_price_clears_it() -> None:
    stream = ClientStream("g", ["EURUSD"])
    fanout = fanout_with(stream)

    fanout.price(tick("EURUSD", 108500), 1 * MS)
    fanout.flush(now=1.0)
    fanout.went_stale("EURUSD")
    fanout.flush(now=2.0)
    stale = stream.take()
    fanout.price(tick("EURUSD", 108510), 2 * MS)
    fanout.flush(now=3.0)
    live = stream.take()

    assert (bids(stale), list(stale.stale_symbols)) == ({}, ["EURUSD"])
    assert (bids(live), list(live.stale_symbols)) == ({"EURUSD": 108510}, [])


def test_a_new_stream_starts_with_the_newest_prices_and_marks_for_the_rest() -> None:
    fanout = GroupFanout("g")
    fanout.price(tick("EURUSD", 108500), 1 * MS)
    fanout.price(tick("XAUUSD", 240000), 1 * MS)
    fanout.went_stale("XAUUSD")
    fanout.flush(now=1.0)
    stream = ClientStream("g", ["EURUSD", "XAUUSD", "GBPUSD"])

    fanout.add(stream)
    snapshot = stream.take()

    assert bids(snapshot) == {"EURUSD": 108500}
    assert list(snapshot.stale_symbols) == ["GBPUSD", "XAUUSD"]  # stale, and no price yet


def test_a_stream_that_joins_between_flushes_gets_what_changed_after_its_snapshot_once() -> None:
    fanout = fanout_with(ClientStream("g", ["EURUSD"]))
    fanout.price(tick("EURUSD", 108500), 1 * MS)  # pending when the stream joins
    stream = ClientStream("g", ["EURUSD", "XAUUSD"])
    fanout.add(stream)
    snapshot = stream.take()
    fanout.price(tick("XAUUSD", 240000), 2 * MS)  # after its snapshot

    fanout.flush(now=1.0)
    second = stream.take()
    fanout.price(tick("EURUSD", 108520), 3 * MS)
    fanout.flush(now=2.0)

    assert bids(snapshot) == {"EURUSD": 108500}
    assert bids(second) == {"XAUUSD": 240000}  # not EURUSD 108500 a second time
    assert stream in fanout.wanting("EURUSD")  # indexed by that flush
    assert bids(stream.take()) == {"EURUSD": 108520}


def test_resync_takes_newer_prices_and_marks_stale_only_what_no_newer_price_revived() -> None:
    stream = ClientStream("g", ["EURUSD", "XAUUSD", "GBPUSD"])
    fanout = fanout_with(stream)
    fanout.price(tick("XAUUSD", 240100), 9 * MS)  # came on the subscription, newer than stored

    fanout.resync(
        [
            (tick("EURUSD", 108500), 5 * MS),
            (tick("XAUUSD", 240000), 8 * MS),
            (tick("GBPUSD", 127000), 5 * MS),
        ],
        ["XAUUSD", "GBPUSD"],
    )
    fanout.flush(now=1.0)
    response = stream.take()

    assert bids(response) == {"EURUSD": 108500, "XAUUSD": 240100}
    assert list(response.stale_symbols) == ["GBPUSD"]


def test_a_quiet_stream_gets_an_empty_response_after_the_heartbeat_periods() -> None:
    quiet, busy = ClientStream("g", ["EURUSD"]), ClientStream("g", ["XAUUSD"])
    fanout = fanout_with(quiet, busy)

    woken = []
    for second in range(15):
        fanout.price(tick("XAUUSD", 240000 + second), (second + 1) * MS)
        fanout.flush(now=float(second))
        busy.take()
        woken.append(fanout.heartbeat(periods=15))
    heartbeat = quiet.take()

    assert woken == [0] * 14 + [1]  # the quiet one, after 15 periods; the busy one never
    assert (len(heartbeat.quotes), len(heartbeat.stale_symbols)) == (0, 0)
    assert quiet.quiet == 0


async def test_next_waits_for_a_change_then_returns_it() -> None:
    stream = ClientStream("g", ["EURUSD"])
    waiting = asyncio.ensure_future(stream.next())
    await asyncio.sleep(0)
    assert not waiting.done()

    stream.offer(tick("EURUSD", 108500))
    response = await asyncio.wait_for(waiting, 5)

    assert bids(response) == {"EURUSD": 108500}
    assert not stream.changed.is_set()

"""An LP's market data health (services/pricing/lp_health.py): refused or silent is not serving,
and the subscription is asked for again after a back-off that doubles, then resets."""

from __future__ import annotations

from services.pricing.lp_health import FeedHealth
from services.pricing.lp_health import FeedState
from services.pricing.lp_health import Tick


def health() -> FeedHealth:
    fresh = FeedHealth(silence_seconds=5, retry_min=1, retry_max=4)
    fresh.logged_on(100.0)
    return fresh


def test_a_fresh_subscription_serves_until_proven_otherwise() -> None:
    feed = health()

    assert (feed.state, feed.serving, feed.reason) == (FeedState.WAITING, True, "")
    assert feed.tick(104.9) is Tick.NOTHING


def test_the_first_data_makes_it_flowing_and_more_data_changes_nothing() -> None:
    feed = health()

    assert feed.data(100.2) is True
    assert feed.data(100.4) is False
    assert feed.state is FeedState.FLOWING


def test_a_subscription_that_never_sends_is_silent_after_the_limit_and_retried() -> None:
    feed = health()

    assert feed.tick(105.0) is Tick.CHANGED
    assert (feed.state, feed.serving) == (FeedState.SILENT, False)
    assert feed.reason == "no market data for 5 s after subscribing"
    assert feed.tick(105.9) is Tick.NOTHING
    assert feed.tick(106.0) is Tick.RETRY  # after the first back-off, 1 s


def test_flowing_data_that_stops_is_silent() -> None:
    feed = health()
    feed.data(101.0)

    assert feed.tick(105.9) is Tick.NOTHING
    assert feed.tick(106.0) is Tick.CHANGED
    assert feed.reason == "no market data for 5 s"


def test_a_refusal_is_not_serving_and_the_back_off_doubles_to_its_maximum() -> None:
    feed = health()
    retries = []
    now = 100.0
    for _ in range(4):
        feed.refused("market data refused: not available", now)
        assert not feed.serving
        assert feed.reason == "market data refused: not available"
        while feed.tick(now) is not Tick.RETRY:
            now += 0.5
        retries.append(now)
        feed.resubscribed(now)

    gaps = [b - a for a, b in zip([100.0, *retries], retries, strict=False)]
    assert gaps == [1.0, 2.0, 4.0, 4.0]


def test_data_after_a_refusal_serves_again_and_resets_the_back_off() -> None:
    feed = health()
    feed.refused("refused", 100.0)
    feed.refused("refused", 101.0)  # next back-off: 4 s

    assert feed.data(102.0) is True
    assert (feed.state, feed.reason, feed.serving) == (FeedState.FLOWING, "", True)
    assert feed.tick(102.5) is Tick.NOTHING  # no retry pending any more
    feed.refused("refused again", 103.0)
    assert feed.retry_at == 104.0  # from the minimum again


def test_a_retry_that_gets_no_answer_is_silent_again_after_the_limit() -> None:
    feed = health()
    feed.refused("refused", 100.0)
    assert feed.tick(101.0) is Tick.RETRY
    feed.resubscribed(101.0)

    assert feed.tick(105.9) is Tick.NOTHING
    assert feed.tick(106.0) is Tick.CHANGED
    assert feed.state is FeedState.SILENT


def test_a_new_logon_starts_afresh() -> None:
    feed = health()
    feed.refused("refused", 100.0)
    feed.refused("refused", 101.0)

    feed.logged_on(200.0)

    assert (feed.state, feed.reason, feed.retry_at) == (FeedState.WAITING, "", None)
    feed.refused("refused", 201.0)
    assert feed.retry_at == 202.0

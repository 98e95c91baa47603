"""Whether an LP's market data serves: the subscription's health, and when to ask again.

A session can be logged on and still give no prices: the LP refuses the MarketDataRequest
(MarketDataRequestReject 35=Y, Business Message Reject 35=j or a session Reject 35=3 for every
symbol asked), or accepts it and then sends nothing. Either way the LP is not serving: the gateway
(services/pricing/gateway.py) reports it with the reason (gRPC health, the LP listing's state and
last error, metrics) and subscribes again after a back-off that doubles from `retry_min` to
`retry_max` while the LP stays refused or silent, and starts again from `retry_min` once prices
flow.

Pure: fed with events and `time.monotonic()` readings by the gateway, under its lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class FeedState(Enum):
    WAITING = "WAITING"  # subscribed, nothing received yet: serving until proven otherwise
    FLOWING = "FLOWING"
    REFUSED = "REFUSED"  # the LP refused every symbol asked
    SILENT = "SILENT"  # nothing received for `silence_seconds`


class Tick(Enum):
    NOTHING = "NOTHING"
    CHANGED = "CHANGED"  # the state or its reason changed: report it
    RETRY = "RETRY"  # subscribe again now (then call `resubscribed`)


SERVING = frozenset({FeedState.WAITING, FeedState.FLOWING})


@dataclass
class FeedHealth:
    """One LP session's market data. Times are monotonic seconds."""

    silence_seconds: float
    retry_min: float
    retry_max: float
    state: FeedState = FeedState.WAITING
    reason: str = ""
    last_activity: float = 0.0  # the last subscription sent or market data received
    retry_at: float | None = None
    delay: float = 0.0  # the next back-off; retry_min after a logon or once prices flow

    def __post_init__(self) -> None:
        self.delay = self.delay or self.retry_min

    @property
    def serving(self) -> bool:
        return self.state in SERVING

    def logged_on(self, now: float) -> None:
        """A new session, subscribed at once: a fresh start."""
        self.state, self.reason = FeedState.WAITING, ""
        self.last_activity, self.retry_at, self.delay = now, None, self.retry_min

    def data(self, now: float) -> bool:
        """Market data arrived; True when that changes the state (it was not flowing)."""
        self.last_activity = now
        if self.state is FeedState.FLOWING:
            return False
        self.state, self.reason = FeedState.FLOWING, ""
        self.retry_at, self.delay = None, self.retry_min
        return True

    def refused(self, reason: str, now: float) -> None:
        """Every symbol asked was refused: not serving, ask again after the back-off."""
        self.state, self.reason = FeedState.REFUSED, reason
        self._back_off(now)

    def tick(self, now: float) -> Tick:
        """What is due at `now`: a retry, a subscription found silent, or nothing."""
        if self.retry_at is not None:
            if now < self.retry_at:
                return Tick.NOTHING
            self.retry_at = None
            return Tick.RETRY
        if now - self.last_activity < self.silence_seconds:
            return Tick.NOTHING
        after = "" if self.state is FeedState.FLOWING else " after subscribing"
        self.state = FeedState.SILENT
        self.reason = f"no market data for {self.silence_seconds:g} s{after}"
        self._back_off(now)
        return Tick.CHANGED

    def resubscribed(self, now: float) -> None:
        """The gateway asked again; silence is counted from now."""
        self.last_activity = now

    def _back_off(self, now: float) -> None:
        self.retry_at = now + self.delay
        self.delay = min(self.delay * 2, self.retry_max)

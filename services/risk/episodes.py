"""The margin watcher's decisions, pure: which margin events a new margin level causes, and what
a stop-out does next.

An account's margin state (`Episode`) is its status and the events of the episodes that are
open: the MARGIN_CALL not yet resolved, the STOP_OUT_TRIGGERED not yet completed. A margin call
is issued once per episode (risk.proto): while the level stays below the margin-call level
nothing more is published; it is resolved once the level is back at or above it.

A stop-out runs until the level is at or above the stop-out level again or no position is left
(then STOP_OUT_COMPLETED, with the status after it). While it runs, no other event is decided for
the account. When it ends, the margin-call episode is brought in line with the status after it:
still below the margin-call level without an open margin call issues one (the account went
straight from OK to stop-out); back at or above it with one open resolves it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import replace
from decimal import Decimal

from tradingmesh.trading.margin import RiskStatus
from tradingmesh.trading.margin import StopOutCandidate
from tradingmesh.trading.margin import next_to_close

__all__ = [
    "Episode",
    "EventType",
    "StopOutStep",
    "apply_event",
    "events_after_stop_out",
    "events_for",
    "stop_out_step",
]


class EventType(enum.StrEnum):
    """MarginEventType, stored by name."""

    MARGIN_CALL = "MARGIN_CALL"
    MARGIN_CALL_RESOLVED = "MARGIN_CALL_RESOLVED"
    STOP_OUT_TRIGGERED = "STOP_OUT_TRIGGERED"
    STOP_OUT_COMPLETED = "STOP_OUT_COMPLETED"


@dataclass(frozen=True, slots=True)
class Episode:
    """An account's margin state as last decided (risk.margin_status)."""

    status: RiskStatus = RiskStatus.OK
    version: int = 0
    margin_call_event_id: str | None = None
    stop_out_event_id: str | None = None


def events_for(episode: Episode, status: RiskStatus) -> list[EventType]:
    """The events a pass decides for an account whose exact status is now `status`. Nothing
    while a stop-out runs: the stop-out decides."""
    if episode.status is RiskStatus.STOP_OUT:
        return []
    if status is RiskStatus.STOP_OUT:
        return [EventType.STOP_OUT_TRIGGERED]
    return _margin_call_events(episode, status)


def events_after_stop_out(episode: Episode, status_after: RiskStatus) -> list[EventType]:
    """The events that end a stop-out whose account is then in `status_after` (OK or
    MARGIN_CALL)."""
    return [EventType.STOP_OUT_COMPLETED, *_margin_call_events(episode, status_after)]


def _margin_call_events(episode: Episode, status: RiskStatus) -> list[EventType]:
    in_call = status is not RiskStatus.OK
    if in_call and episode.margin_call_event_id is None:
        return [EventType.MARGIN_CALL]
    if not in_call and episode.margin_call_event_id is not None:
        return [EventType.MARGIN_CALL_RESOLVED]
    return []


def apply_event(
    episode: Episode, event: EventType, event_id: str, status_after: RiskStatus
) -> tuple[Episode, str | None]:
    """The state after `event` (id `event_id`) and the earlier event it relates to (the margin
    call it resolves, the stop-out it completes). `status_after` is the account's status the
    event reports."""
    version = episode.version + 1
    if event is EventType.MARGIN_CALL:
        return replace(
            episode,
            version=version,
            margin_call_event_id=event_id,
            status=_settled(episode, status_after),
        ), None
    if event is EventType.MARGIN_CALL_RESOLVED:
        return replace(
            episode,
            version=version,
            margin_call_event_id=None,
            status=_settled(episode, status_after),
        ), episode.margin_call_event_id
    if event is EventType.STOP_OUT_TRIGGERED:
        return replace(
            episode, version=version, status=RiskStatus.STOP_OUT, stop_out_event_id=event_id
        ), None
    return replace(
        episode, version=version, status=status_after, stop_out_event_id=None
    ), episode.stop_out_event_id


def _settled(episode: Episode, status: RiskStatus) -> RiskStatus:
    # A margin-call event never ends a running stop-out.
    return RiskStatus.STOP_OUT if episode.stop_out_event_id is not None else status


class StopOutStep(enum.Enum):
    RECOVERED = "recovered"  # the level is at or above the stop-out level: complete
    NOTHING_LEFT = "nothing left"  # no open position: complete
    STUCK = "stuck"  # positions left, none can be closed now: try again on a later pass
    CLOSE = "close"


def stop_out_step(
    status: RiskStatus,
    open_positions: int,
    candidates: Iterable[StopOutCandidate],
    skipped: set[str],
) -> tuple[StopOutStep, StopOutCandidate | None]:
    """What a running stop-out does next, given the account's exact status now, its open
    positions, the positions it could close (those with a live price), and those already tried
    without success in this round."""
    if status is not RiskStatus.STOP_OUT:
        return StopOutStep.RECOVERED, None
    if open_positions == 0:
        return StopOutStep.NOTHING_LEFT, None
    chosen = next_to_close(c for c in candidates if c.position_id not in skipped)
    if chosen is None:
        return StopOutStep.STUCK, None
    return StopOutStep.CLOSE, chosen


def negative_balance(balance: Decimal) -> Decimal:
    """How far `balance` is below zero, as a non-negative amount."""
    return balance.copy_negate() if balance < 0 else Decimal(0)

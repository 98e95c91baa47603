"""An instrument's weekly trading schedule (pricing/v1 `TradingSession`), one rule for every
service: the sessions as the services keep them, whether the market is open at a moment, and
the stored form that pricing writes (migration 0006) and the OMS and risk copy (JSON: a list of
day names and minutes of the UTC day)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import Final
from typing import Protocol

__all__ = ["Session", "Weekly", "from_json", "is_open", "to_json"]

_DAYS: Final = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")


class Weekly(Protocol):
    """A session as either side holds it: a `Session`, or the contract's `TradingSession`
    (whose `DayOfWeek` numbers the days the same way)."""

    @property
    def day(self) -> int: ...
    @property
    def start_minute(self) -> int: ...
    @property
    def end_minute(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Session:
    """One weekly trading session in UTC: ISO weekday (Monday 1) and minutes of the day, the end
    excluded."""

    day: int
    start_minute: int
    end_minute: int


def is_open(sessions: Iterable[Weekly], at: datetime) -> bool:
    """Whether `at` is inside one of the sessions (pricing's TRADING, unless halted)."""
    at = at.astimezone(UTC)
    day, minute = at.isoweekday(), at.hour * 60 + at.minute
    return any(s.day == day and s.start_minute <= minute < s.end_minute for s in sessions)


def to_json(sessions: Iterable[Weekly]) -> str:
    """The stored form: `[{"day": "MONDAY", "start_minute": 0, "end_minute": 1440}, ...]`."""
    return json.dumps(
        [
            {"day": _day_name(s.day), "start_minute": s.start_minute, "end_minute": s.end_minute}
            for s in sessions
        ],
        separators=(",", ":"),
    )


def from_json(stored: str | Sequence[Mapping[str, Any]]) -> tuple[Session, ...]:
    """The sessions of a stored schedule (the JSON text, or the list a JSONB column gives)."""
    items = json.loads(stored) if isinstance(stored, str) else stored
    return tuple(
        Session(_DAYS.index(s["day"]) + 1, int(s["start_minute"]), int(s["end_minute"]))
        for s in items
    )


def _day_name(day: int) -> str:
    if not 1 <= day <= len(_DAYS):
        raise ValueError(f"a trading session's day is 1 (Monday) to 7, not {day}")
    return _DAYS[day - 1]

"""The weekly trading schedule every service reads (services/platform/schedule.py)."""

from __future__ import annotations

import json
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest

from services.platform import schedule
from services.platform.schedule import Session
from tradingmesh.pricing.v1 import pricing_pb2

WEDNESDAY_10_00 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
MORNING = Session(3, 8 * 60, 12 * 60)  # Wednesday 08:00-12:00 UTC


def test_a_session_is_open_from_its_start_minute_to_before_its_end_minute() -> None:
    assert schedule.is_open([MORNING], WEDNESDAY_10_00)
    assert schedule.is_open([MORNING], WEDNESDAY_10_00.replace(hour=8))
    assert not schedule.is_open([MORNING], WEDNESDAY_10_00.replace(hour=12))  # end excluded
    assert not schedule.is_open([MORNING], WEDNESDAY_10_00.replace(hour=7, minute=59))
    assert not schedule.is_open([MORNING], WEDNESDAY_10_00 + timedelta(days=1))
    assert not schedule.is_open([], WEDNESDAY_10_00)


def test_the_moment_is_read_in_utc() -> None:
    new_york = timezone(timedelta(hours=-5))
    assert schedule.is_open([MORNING], datetime(2026, 12, 2, 5, 0, tzinfo=new_york))  # 10:00 UTC
    assert not schedule.is_open([MORNING], datetime(2026, 12, 2, 10, 0, tzinfo=new_york))


def test_the_contracts_sessions_count_as_the_services_own() -> None:
    contract = pricing_pb2.TradingSession(
        day=pricing_pb2.DAY_OF_WEEK_WEDNESDAY, start_minute=8 * 60, end_minute=12 * 60
    )
    assert schedule.is_open([contract], WEDNESDAY_10_00)
    assert schedule.to_json([contract]) == schedule.to_json([MORNING])


def test_the_stored_form_names_the_days_and_reads_back_the_same() -> None:
    week = [Session(1, 0, 1440), MORNING, Session(7, 1320, 1440)]
    stored = schedule.to_json(week)

    assert json.loads(stored) == [
        {"day": "MONDAY", "start_minute": 0, "end_minute": 1440},
        {"day": "WEDNESDAY", "start_minute": 480, "end_minute": 720},
        {"day": "SUNDAY", "start_minute": 1320, "end_minute": 1440},
    ]
    assert schedule.from_json(stored) == tuple(week)
    assert schedule.from_json(json.loads(stored)) == tuple(week)  # as a JSONB column gives it


@pytest.mark.parametrize("day", [0, 8])
def test_a_day_outside_the_week_is_never_stored(day: int) -> None:
    with pytest.raises(ValueError, match=f"1 \\(Monday\\) to 7, not {day}"):
        schedule.to_json([Session(day, 0, 60)])

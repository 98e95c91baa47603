"""The instruments a group is offered, read once per group and forgotten when the reference
copies change (no statement per cross-currency order)."""

from __future__ import annotations

import asyncio
from typing import Any
from typing import cast

import pytest

from services.oms.feeds import reference
from services.oms.feeds.reference import OfferedInstruments


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    done: list[str] = []

    async def offered(session: Any, group_id: str) -> list[Any]:
        done.append(group_id)
        await asyncio.sleep(0)
        return [f"{group_id}-{len(done)}"]

    monkeypatch.setattr(reference, "offered_instruments", offered)
    return done


def _of(offered: OfferedInstruments, group_id: str) -> Any:
    return offered.of(cast(Any, None), group_id)


async def test_a_group_is_read_once_until_the_copies_change(reads: list[str]) -> None:
    offered = OfferedInstruments()
    assert await _of(offered, "g") == ["g-1"]
    assert await _of(offered, "g") == ["g-1"]
    assert await _of(offered, "h") == ["h-2"]
    await offered.forget()
    assert await _of(offered, "g") == ["g-3"]
    assert reads == ["g", "h", "g"]


async def test_a_read_overtaken_by_a_change_is_not_kept(reads: list[str]) -> None:
    offered = OfferedInstruments()
    reading = asyncio.create_task(_of(offered, "g"))
    await asyncio.sleep(0)  # the read is in flight
    await offered.forget()
    assert await reading == ["g-1"]  # answered, but not kept: it may be older than the change
    assert await _of(offered, "g") == ["g-2"]

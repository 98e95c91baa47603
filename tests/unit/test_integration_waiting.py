"""The integration tests' one way of waiting (`tests/integration/support/waiting.py`): what a
probe's answer means. A probe whose first answer is an empty list must be asked again, not
returned from: `eventually(lambda: rows(...))` returned at once when only None and False meant
"not yet"."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.integration.support import waiting
from tests.integration.support.waiting import eventually
from tests.integration.support.waiting import eventually_async
from tests.integration.support.waiting import not_yet
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_service_pb2


@pytest.mark.parametrize(
    "answer",
    [None, False, [], (), {}, set(), "", b"", order_service_pb2.ListOrdersResponse().orders],
)
def test_none_false_and_every_empty_collection_are_not_yet(answer: object) -> None:
    assert not_yet(answer)


@pytest.mark.parametrize(
    "answer", [True, 0, Decimal(0), [()], {"": None}, " ", oms_pb2.Order(), oms_pb2.Order(id="1")]
)
def test_anything_else_is_the_awaited_value(answer: object) -> None:
    assert not not_yet(answer)


def test_an_empty_answer_is_asked_again_until_a_row_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(waiting, "POLL_SECONDS", 0)
    answers: list[list[tuple[int]]] = [[], [], [(1,)]]
    assert eventually(lambda: answers.pop(0), 5, "a row") == [(1,)]
    assert answers == []


def test_no_answer_in_time_names_what_was_awaited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiting, "POLL_SECONDS", 0)
    with pytest.raises(AssertionError, match=r"not within 0.05 s: a row"):
        eventually(list, 0.05, "a row")


async def test_on_an_event_loop_the_probe_is_awaited_with_the_same_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(waiting, "POLL_SECONDS", 0)
    answers: list[list[tuple[int]] | None] = [None, [], [(1,)]]

    async def probe() -> list[tuple[int]] | None:
        return answers.pop(0)

    assert await eventually_async(probe, 5, "a row") == [(1,)]

    async def empty() -> list[int]:
        return []

    with pytest.raises(AssertionError, match=r"not within 0.05 s: a row"):
        await eventually_async(empty, 0.05, "a row")


def test_a_probe_can_be_asked_less_often() -> None:
    asked: list[float] = []

    def probe() -> bool:
        asked.append(time.monotonic())
        return len(asked) == 3

    assert eventually(probe, 5, "the third ask", every=0.05)
    assert asked[2] - asked[0] >= 0.1

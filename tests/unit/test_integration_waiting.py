"""The integration tests' one way of waiting (`tests/integration/support/waiting.py`): what a
probe's answer means. A probe whose first answer is an empty list must be asked again, not
returned from: `eventually(lambda: rows(...))` returned at once when only None and False meant
"not yet"."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.integration.support import waiting
from tests.integration.support.waiting import eventually, not_yet
from tradingmesh.oms.v1 import oms_pb2, order_service_pb2


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

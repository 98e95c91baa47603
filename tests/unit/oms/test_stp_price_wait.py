"""An acknowledged STP order whose group has no live price waits for one (issue #18 items 1
and 4, ADR 0007): the decision (`unpriced`) and the desk's wait (`stp.price_waits.PriceWaits`,
`check`: the order is taken again once its group has a live price, or once its wait is over,
never before).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import cast

import pytest

from services.oms.entry.execution import LiveQuote
from services.oms.feeds.quotes import QuoteBook
from services.oms.model import OrderType
from services.oms.stp.config import StpConfig
from services.oms.stp.desk import StpDesk
from services.oms.stp.rules import unpriced
from services.platform.resources import Resources
from tests.unit.oms.test_stp_intake import ACCOUNT
from tests.unit.oms.test_stp_intake import NOW
from tests.unit.oms.test_stp_intake import stp_order
from tradingmesh.common.v1.errors_pb2 import ErrorReason

WAIT = timedelta(seconds=30)


def test_an_order_younger_than_its_wait_waits_for_a_live_price() -> None:
    order = stp_order("o-1")
    assert unpriced(order, NOW, WAIT) is None
    assert unpriced(order, NOW + WAIT - timedelta(microseconds=1), WAIT) is None


def test_an_order_without_a_live_price_past_its_wait_is_rejected_saying_how_long_it_waited() -> (
    None
):
    refusal = unpriced(stp_order("o-1"), NOW + timedelta(seconds=31.25), WAIT)
    assert refusal is not None
    assert refusal.quantity == 0
    assert refusal.reason == ErrorReason.ERROR_REASON_PRICE_UNAVAILABLE
    assert refusal.message == "no live price for EURUSD in the 31.2 s since the order was accepted"


# ---- the desk's wait -----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def desk(tmp_path: Path, clock: Clock) -> Iterator[StpDesk]:
    config = StpConfig(data_dir=tmp_path, price_wait=WAIT)
    desk = StpDesk(
        cast(Resources, None),  # nothing below touches a resource: the jobs are not run
        QuoteBook(),
        config,
        lambda lp: pytest.fail(f"no credentials are read ({lp})"),
        clock,
    )
    yield desk
    desk.worker.cancel_timers()


def live_quote(at: datetime, group_id: str = ACCOUNT.group_id) -> LiveQuote:
    return LiveQuote(group_id, "EURUSD", Decimal("1.10000"), Decimal("1.10010"), at, 1)


def waiting(desk: StpDesk, order_id: str, order_type: OrderType = OrderType.MARKET) -> None:
    order = stp_order(order_id, order_type)
    market = order_type is OrderType.MARKET
    waits = desk.price_waits
    waits.add({order_id: waits.wait_of(order, ACCOUNT.group_id, market=market)})


def queued(desk: StpDesk) -> list[str]:
    return desk.worker.queued()


async def test_a_waiting_order_is_not_taken_while_its_group_has_no_live_price(
    desk: StpDesk, clock: Clock
) -> None:
    desk.quotes.put(live_quote(NOW - timedelta(seconds=5)))  # aged out
    waiting(desk, "o-1")

    desk.price_waits.check()

    assert "o-1" in desk.price_waits
    assert len(desk.book) == 0
    assert not desk.intake.holds("o-1")
    assert desk.price_waits.armed  # it looks again


async def test_a_waiting_market_order_joins_a_window_once_its_group_has_a_live_price(
    desk: StpDesk, clock: Clock
) -> None:
    waiting(desk, "o-1")
    desk.price_waits.check()
    desk.quotes.put(live_quote(clock.now, "another-group"))  # not its group's price
    desk.price_waits.check()
    assert len(desk.book) == 0

    desk.quotes.put(live_quote(clock.now))
    desk.price_waits.check()

    assert len(desk.price_waits) == 0
    assert len(desk.book) == 1
    assert desk.intake.holds("o-1")
    assert not desk.price_waits.armed  # nothing left to wait for


async def test_a_waiting_limit_order_is_tried_again_once_its_group_has_a_live_price(
    desk: StpDesk, clock: Clock
) -> None:
    waiting(desk, "l-1", OrderType.LIMIT)
    desk.quotes.put(replace(live_quote(clock.now), stale=True))
    desk.price_waits.check()
    assert queued(desk) == []

    desk.quotes.put(live_quote(clock.now))
    desk.price_waits.check()

    assert queued(desk) == ["limit l-1"]
    assert desk.intake.holds("l-1")
    assert len(desk.book) == 0


async def test_an_order_past_its_wait_is_taken_without_a_price_and_its_close_rejects_it(
    desk: StpDesk, clock: Clock
) -> None:
    waiting(desk, "o-1")
    clock.now = NOW + WAIT - timedelta(milliseconds=1)
    desk.price_waits.check()
    assert "o-1" in desk.price_waits

    clock.now = NOW + WAIT
    desk.price_waits.check()

    assert len(desk.price_waits) == 0
    assert len(desk.book) == 1  # its window's close finds no price: `unpriced` rejects it
    assert unpriced(stp_order("o-1"), clock.now, WAIT) is not None


async def test_stopping_the_desk_forgets_the_waits_for_the_restart_to_take_them_again(
    desk: StpDesk,
) -> None:
    waiting(desk, "o-1")

    await desk.stop()

    assert len(desk.price_waits) == 0
    assert not desk.price_waits.armed

"""How committed WORKING orders reach the STP desk (issue 12 item 7): the hand-off after the
commit (`placement.hand_over`) and what the desk's sweep leaves alone (`stp.intake.Intake`,
the desk's worker)."""

from __future__ import annotations

import asyncio
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import cast

import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from services.oms.domain.positions import PositionMode
from services.oms.entry.placement import WorkingOrderSink
from services.oms.entry.placement import hand_over
from services.oms.feeds.quotes import QuoteBook
from services.oms.model import Account
from services.oms.model import AccountStatus
from services.oms.model import ExecutionMode
from services.oms.model import OrderRow
from services.oms.model import OrderType
from services.oms.model import TimeInForce
from services.oms.stp.config import StpConfig
from services.oms.stp.desk import TAKE_SUBJECT
from services.oms.stp.desk import StpDesk
from services.oms.stp.intake import Intake
from services.oms.stp.intake import Unworked
from services.oms.stp.rules import Window
from services.platform.resources import Resources
from tests.unit.oms import builders

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
ACCOUNT = Account("acc-1", "user-1", "group-1", "USD", AccountStatus.ACTIVE, PositionMode.HEDGING)


def stp_order(order_id: str, type: OrderType = OrderType.MARKET) -> OrderRow:
    return builders.order(
        id=order_id,
        account_id=ACCOUNT.account_id,
        client_order_id=f"c-{order_id}",
        type=type,
        time_in_force=TimeInForce.IOC,
        quantity=Decimal("0.10"),
        created_at=NOW,
        updated_at=NOW,
        price=Decimal("1.10000") if type is OrderType.LIMIT else None,
        execution_mode=ExecutionMode.STP,
    )


def unworked(order_id: str, type: OrderType = OrderType.MARKET) -> Unworked:
    return Unworked(order_id, ACCOUNT.account_id, "EURUSD", type)


# ---- the hand-off after the commit ---------------------------------------------------------------


class Sink:
    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.taken: list[str] = []

    async def take(self, order: OrderRow, account: Account) -> None:
        if self.fails:
            raise RuntimeError("the sink is broken")
        self.taken.append(order.id)


async def test_a_sink_that_fails_does_not_keep_the_order_from_the_next_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken, working = Sink(fails=True), Sink()
    sinks: list[WorkingOrderSink] = [broken, working]

    await hand_over(sinks, stp_order("o-1"), ACCOUNT)

    assert working.taken == ["o-1"]
    assert "a working-order sink failed to take an order" in caplog.text


# ---- what the sweep leaves alone ----------------------------------------------------------------


def test_an_order_found_loose_by_two_sweeps_in_a_row_is_taken() -> None:
    intake = Intake()
    found = [unworked("lost")]

    assert intake.missed(found) == []  # maybe between its commit and its hand-off
    assert intake.missed(found) == [unworked("lost")]


def test_the_sweep_never_takes_what_a_window_or_a_job_holds() -> None:
    intake = Intake()
    intake.hold(["in-window", "in-attempt"])
    found = [unworked("in-window"), unworked("lost"), unworked("in-attempt", OrderType.LIMIT)]

    intake.missed(found)

    assert intake.missed(found) == [unworked("lost")]


def test_an_order_handed_over_between_two_sweeps_is_not_taken() -> None:
    intake = Intake()
    intake.missed([unworked("a")])  # committed, its hand-off a moment away

    intake.hold(["a"])  # the hand-off: its window
    assert intake.missed([unworked("a")]) == []
    intake.release(["a"])  # its window's close failed every try
    assert intake.missed([unworked("a")]) == []  # loose once more: the next sweep takes it
    assert intake.missed([unworked("a")]) == [unworked("a")]


def test_an_order_taken_by_the_sweep_is_not_taken_again_by_the_next() -> None:
    intake = Intake()
    intake.missed([unworked("a")])
    assert intake.missed([unworked("a")]) == [unworked("a")]

    # Found once more (its window has not closed yet and the desk did not hold it): one
    # sighting again, not a second take at once.
    assert intake.missed([unworked("a")]) == []


def test_an_order_released_by_its_job_is_no_longer_held() -> None:
    intake = Intake()
    intake.hold(["a", "b"])

    intake.release(["a"])

    assert not intake.holds("a")
    assert intake.holds("b")


def test_an_order_taken_twice_is_released_by_the_first_job_that_ends() -> None:
    # Never held for good: the worst that follows is one more take, which a window skips.
    intake = Intake()
    intake.hold(["a"])
    intake.hold(["a"])

    intake.release(["a"])

    assert len(intake) == 0


def test_a_market_order_joins_a_window_and_a_limit_order_is_tried() -> None:
    assert unworked("m").market
    assert not unworked("l", OrderType.LIMIT).market


# ---- the desk: an order is held from its take until its job has run, however that ends -----------


@pytest.fixture
async def desk(tmp_path: Path) -> StpDesk:
    config = StpConfig(window=timedelta(milliseconds=5), data_dir=tmp_path)
    return StpDesk(
        cast(Resources, None),  # the jobs below touch no resource
        QuoteBook(),
        config,
        lambda lp: pytest.fail(f"no credentials are read ({lp})"),
    )


async def run_worker(desk: StpDesk) -> asyncio.Task[None]:
    return asyncio.create_task(desk.worker.work())


async def test_a_market_order_is_held_from_its_take_until_its_windows_close_has_run(
    desk: StpDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    closing = asyncio.Event()
    finish = asyncio.Event()
    closed: list[list[str]] = []

    async def close_window(window: Window) -> None:
        closing.set()
        await finish.wait()
        closed.append(window.order_ids)

    monkeypatch.setattr(desk, "_close_window", close_window)
    worker = await run_worker(desk)
    try:
        await desk.take(stp_order("o-1"), ACCOUNT)
        assert desk.intake.holds("o-1")  # in its open window

        await asyncio.wait_for(closing.wait(), 1)
        assert desk.intake.holds("o-1")  # its window is being closed

        finish.set()
        await asyncio.wait_for(desk.worker.join(), 1)
        assert closed == [["o-1"]]
        assert not desk.intake.holds("o-1")
    finally:
        worker.cancel()


async def test_an_order_whose_job_failed_every_try_is_released_to_the_sweep(
    desk: StpDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    tries: list[str] = []

    async def attempt(order_id: str, account_id: str) -> None:
        tries.append(order_id)
        raise RuntimeError("PostgreSQL is away")

    monkeypatch.setattr(desk, "_attempt_limit", attempt)
    monkeypatch.setattr("services.oms.stp.worker._RETRY_SECONDS", 0)
    worker = await run_worker(desk)
    try:
        await desk.take(stp_order("l-1", OrderType.LIMIT), ACCOUNT)
        assert desk.intake.holds("l-1")

        await asyncio.wait_for(desk.worker.join(), 1)

        assert tries == ["l-1"] * 5
        assert not desk.intake.holds("l-1")
    finally:
        worker.cancel()


# ---- a follower's hand-off to the leading desk (ADR 0017) ----------------------------------------


ACCOUNT_ID = "6f0d3c2e-4d59-4c1a-9a55-0c8a4b6f2b11"
MARKET_ID = "0b4f7a2c-1d3e-4f5a-8b6c-7d8e9f0a1b2c"
LIMIT_ID = "1c5a8b3d-2e4f-4a6b-9c7d-8e9f0a1b2c3d"


def take_message(order_id: str, how: str, account_id: str = ACCOUNT_ID) -> Msg:
    headers = {"tm-order-id": order_id, "tm-account-id": account_id, "tm-symbol": "EURUSD"}
    return Msg(cast(NatsClient, None), TAKE_SUBJECT, headers={**headers, "tm-take": how})


async def test_the_leading_desk_takes_a_followers_orders_as_its_own(desk: StpDesk) -> None:
    await desk._on_take(take_message(MARKET_ID, "window"))
    await desk._on_take(take_message(LIMIT_ID, "limit"))

    assert len(desk.book) == 1  # EURUSD's window, with the market order
    assert desk.intake.holds(MARKET_ID)
    assert desk.intake.holds(LIMIT_ID)  # its try is queued
    assert desk.worker.queued() == [f"limit {LIMIT_ID}"]
    desk.worker.cancel_timers()


async def test_a_desk_that_does_not_lead_or_a_malformed_hand_off_takes_nothing(
    desk: StpDesk,
) -> None:
    await desk._on_take(take_message("not-an-id", "window"))
    await desk._on_take(take_message(MARKET_ID, "window", account_id=""))
    desk.leading = False
    await desk._on_take(take_message(MARKET_ID, "window"))

    assert len(desk.book) == 0
    assert len(desk.intake) == 0

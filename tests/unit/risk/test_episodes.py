"""The margin watcher's decisions, without I/O: one margin call per episode, the stop-out's
trigger and completion, and which position a stop-out closes next, re-evaluated after each
close."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from services.risk.episodes import Episode
from services.risk.episodes import EventType
from services.risk.episodes import StopOutStep
from services.risk.episodes import apply_event
from services.risk.episodes import events_after_stop_out
from services.risk.episodes import events_for
from services.risk.episodes import negative_balance
from services.risk.episodes import stop_out_step
from services.risk.model import Account
from services.risk.model import PositionMode
from services.risk.model import Side
from services.risk.state import RiskState
from services.risk.valuation import value_account
from tests.unit.risk.builders import NOW
from tests.unit.risk.builders import account
from tests.unit.risk.builders import broker
from tests.unit.risk.builders import position
from tests.unit.risk.builders import price
from tradingmesh.trading.margin import RiskStatus
from tradingmesh.trading.margin import StopOutCandidate

D = Decimal
OK, CALL, STOP = RiskStatus.OK, RiskStatus.MARGIN_CALL, RiskStatus.STOP_OUT


def run(statuses: list[RiskStatus]) -> tuple[list[list[EventType]], Episode]:
    """The events a series of passes decides, applying each as the watcher does."""
    episode, decided = Episode(), []
    for number, status in enumerate(statuses):
        events = events_for(episode, status)
        for event in events:
            episode, _ = apply_event(episode, event, f"e{number}-{event.value}", status)
        decided.append(events)
    return decided, episode


def test_a_margin_call_is_issued_once_per_episode_and_resolved_once() -> None:
    decided, episode = run([OK, CALL, CALL, CALL, OK, OK, CALL])

    assert decided == [
        [],
        [EventType.MARGIN_CALL],
        [],
        [],
        [EventType.MARGIN_CALL_RESOLVED],
        [],
        [EventType.MARGIN_CALL],
    ]
    assert episode.status is CALL
    assert episode.version == 3
    assert episode.margin_call_event_id == "e6-MARGIN_CALL"


def test_a_resolution_names_the_margin_call_it_ends() -> None:
    episode, _ = apply_event(Episode(), EventType.MARGIN_CALL, "call-1", CALL)

    after, related = apply_event(episode, EventType.MARGIN_CALL_RESOLVED, "res-1", OK)

    assert related == "call-1"
    assert after == Episode(OK, 2, None, None)


def test_below_the_stop_out_level_a_stop_out_is_triggered_and_nothing_else_while_it_runs() -> None:
    decided, episode = run([CALL, STOP, STOP, CALL, OK])

    assert decided == [[EventType.MARGIN_CALL], [EventType.STOP_OUT_TRIGGERED], [], [], []]
    assert episode.status is STOP
    assert episode.stop_out_event_id == "e1-STOP_OUT_TRIGGERED"
    assert episode.margin_call_event_id == "e0-MARGIN_CALL"  # still open


def test_a_completed_stop_out_brings_the_margin_call_episode_in_line() -> None:
    straight_to_stop_out, _ = apply_event(Episode(), EventType.STOP_OUT_TRIGGERED, "s", STOP)
    called, _ = apply_event(Episode(), EventType.MARGIN_CALL, "c", CALL)
    called_then_stopped, _ = apply_event(called, EventType.STOP_OUT_TRIGGERED, "s", STOP)

    # Left in margin call without one open: issue it. Back to OK with one open: resolve it.
    assert events_after_stop_out(straight_to_stop_out, CALL) == [
        EventType.STOP_OUT_COMPLETED,
        EventType.MARGIN_CALL,
    ]
    assert events_after_stop_out(straight_to_stop_out, OK) == [EventType.STOP_OUT_COMPLETED]
    assert events_after_stop_out(called_then_stopped, CALL) == [EventType.STOP_OUT_COMPLETED]
    assert events_after_stop_out(called_then_stopped, OK) == [
        EventType.STOP_OUT_COMPLETED,
        EventType.MARGIN_CALL_RESOLVED,
    ]


def test_completion_names_its_trigger_and_leaves_the_status_after_it() -> None:
    stopped, _ = apply_event(Episode(), EventType.STOP_OUT_TRIGGERED, "s-1", STOP)

    after, related = apply_event(stopped, EventType.STOP_OUT_COMPLETED, "d-1", CALL)

    assert related == "s-1"
    assert after.status is CALL
    assert after.stop_out_event_id is None


def test_a_margin_call_during_a_stop_out_does_not_end_it() -> None:
    stopped, _ = apply_event(Episode(), EventType.STOP_OUT_TRIGGERED, "s-1", STOP)

    after, _ = apply_event(stopped, EventType.MARGIN_CALL, "c-1", CALL)

    assert after.status is STOP


# -- the stop-out's next step -----------------------------------------------------------------


def candidate(position_id: str, pnl: str, minute: int = 0) -> StopOutCandidate:
    return StopOutCandidate(position_id, D(pnl), NOW.replace(minute=minute))


def test_the_largest_loss_is_closed_first_then_the_older_position() -> None:
    candidates = [candidate("a", "-100"), candidate("b", "-300", 5), candidate("c", "-300", 1)]

    step, chosen = stop_out_step(STOP, 3, candidates, set())

    assert step is StopOutStep.CLOSE
    assert chosen is not None
    assert chosen.position_id == "c"


def test_a_stop_out_ends_when_the_level_recovers_or_nothing_is_left() -> None:
    assert stop_out_step(CALL, 2, [candidate("a", "-1")], set())[0] is StopOutStep.RECOVERED
    assert stop_out_step(OK, 2, [candidate("a", "-1")], set())[0] is StopOutStep.RECOVERED
    assert stop_out_step(STOP, 0, [], set())[0] is StopOutStep.NOTHING_LEFT


def test_a_stop_out_that_cannot_close_anything_now_is_stuck_not_completed() -> None:
    # Positions left, but none with a live price, or each already refused in this round.
    assert stop_out_step(STOP, 2, [], set())[0] is StopOutStep.STUCK
    assert stop_out_step(STOP, 1, [candidate("a", "-5")], {"a"})[0] is StopOutStep.STUCK
    step, chosen = stop_out_step(STOP, 2, [candidate("a", "-5"), candidate("b", "-1")], {"a"})
    assert step is StopOutStep.CLOSE
    assert chosen is not None
    assert chosen.position_id == "b"


def test_negative_balance_is_how_far_below_zero() -> None:
    assert negative_balance(D("-12.34")) == D("12.34")
    assert negative_balance(D("0.00")) == 0
    assert negative_balance(D("5")) == 0


def _close(state: RiskState, owner: Account, position_id: str, pnl: Decimal) -> Account:
    """What the OMS's events do to the copies when a position closes at its current price."""
    held = state.positions[position_id]
    state.put_position(replace(held, quantity=D(0), is_open=False, version=held.version + 1))
    after = replace(owner, balance=owner.balance + pnl)
    state.put_account(after)
    return after


def test_a_stop_out_closes_the_largest_losses_one_at_a_time_until_the_level_recovers() -> None:
    state = broker()
    owner = account(state, "1500.00", mode=PositionMode.HEDGING)
    small = position(state, owner, "EURUSD", Side.BUY, "1", "1.10300")  # -300.00 at 1.10000
    large = position(state, owner, "EURUSD", Side.BUY, "1", "1.10600")  # -600.00
    winner = position(state, owner, "EURUSD", Side.BUY, "0.5", "1.09900")  # +50.00
    closed: list[str] = []
    levels: list[Decimal | None] = []

    while True:
        valuation = value_account(state, owner, NOW, None)
        assert valuation is not None
        levels.append(valuation.figures.margin_level)
        step, chosen = stop_out_step(
            valuation.status, len(valuation.positions), valuation.stop_out_candidates(), set()
        )
        if step is not StopOutStep.CLOSE:
            break
        assert chosen is not None
        closed.append(chosen.position_id)
        owner = _close(state, owner, chosen.position_id, chosen.unrealized_pnl)

    # equity 650.00 throughout; used margin 2750.50, then 1650.30, then 550.10.
    assert closed == [large.id, small.id]
    assert levels == [D("23.63"), D("39.38"), D("118.16")]
    assert step is StopOutStep.RECOVERED
    assert list(state.positions) == [winner.id]
    assert owner.balance == D("600.00")


def test_positions_without_a_live_price_are_not_closed_by_a_stop_out() -> None:
    state = broker()
    owner = account(state, "100.00", mode=PositionMode.HEDGING)
    position(state, owner, "EURUSD", Side.BUY, "1", "1.10600")
    price(state, "EURUSD", "1.10000", "1.10020", at=NOW.replace(minute=0))  # 30 minutes old

    valuation = value_account(state, owner, NOW, timedelta(seconds=30))
    assert valuation is not None

    assert valuation.status is STOP
    assert valuation.stop_out_candidates() == []
    assert stop_out_step(STOP, 1, valuation.stop_out_candidates(), set())[0] is StopOutStep.STUCK

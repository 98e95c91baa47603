"""Reservations: what approved orders and withdrawals hold until the copies show them, how each
is released, and how the check and the withdrawal decision deduct them."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from services.risk.check import OrderCheck
from services.risk.check import Purpose
from services.risk.check import check_order
from services.risk.holds import Holds
from services.risk.holds import Reserved
from services.risk.model import Side
from services.risk.withdrawals import decide_withdrawal
from tests.unit.risk.builders import NOW
from tests.unit.risk.builders import account
from tests.unit.risk.builders import broker
from tests.unit.risk.builders import position
from tradingmesh.common.v1.errors_pb2 import ErrorReason

D = Decimal
R = ErrorReason
AGE = timedelta(seconds=30)
ACCOUNT = "00000000-0000-4000-8000-0000000000a1"
OTHER = "00000000-0000-4000-8000-0000000000a2"


def test_an_order_hold_is_released_in_proportion_to_its_trades() -> None:
    holds = Holds()
    holds.hold_order(ACCOUNT, "o1", D("1000.00"), D("2"), NOW)

    holds.order_filled("o1", D("0.5"))
    assert holds.reserved(ACCOUNT, NOW) == Reserved(margin=D("750.00"))

    holds.order_filled("o1", D("1.5"))
    assert holds.reserved(ACCOUNT, NOW) == Reserved()
    assert len(holds) == 0


def test_holds_are_per_account_and_a_new_check_of_an_order_replaces_its_hold() -> None:
    holds = Holds()
    holds.hold_order(ACCOUNT, "o1", D("100"), D("1"), NOW)
    holds.hold_order(ACCOUNT, "o1", D("300"), D("1"), NOW)  # triggered: checked again
    holds.hold_withdrawal(ACCOUNT, "w1", D("50"), NOW)
    holds.hold_order(OTHER, "o2", D("7"), D("1"), NOW)

    assert holds.reserved(ACCOUNT, NOW) == Reserved(margin=D("300"), withdrawals=D("50"))
    assert holds.reserved(ACCOUNT, NOW).total == D("350")
    assert holds.reserved(OTHER, NOW) == Reserved(margin=D("7"))


def test_an_order_that_ends_or_rests_and_a_booked_withdrawal_release_their_holds() -> None:
    holds = Holds()
    holds.hold_order(ACCOUNT, "o1", D("100"), D("1"), NOW)
    holds.hold_withdrawal(ACCOUNT, "w1", D("50"), NOW)

    holds.release_order("o1")
    holds.release_withdrawal("w1")
    holds.release_withdrawal("w1")  # a redelivered event: nothing left to release

    assert holds.reserved(ACCOUNT, NOW) == Reserved()


def test_a_hold_nobody_releases_lapses_after_its_lifetime() -> None:
    holds = Holds(lifetime=timedelta(seconds=60))
    holds.hold_withdrawal(ACCOUNT, "w1", D("50"), NOW)

    assert holds.reserved(ACCOUNT, NOW + timedelta(seconds=59)).withdrawals == D("50")
    assert holds.reserved(ACCOUNT, NOW + timedelta(seconds=60)) == Reserved()
    assert len(holds) == 0


def test_an_order_without_margin_holds_nothing() -> None:
    holds = Holds()
    holds.hold_order(ACCOUNT, "o1", D("0"), D("1"), NOW)

    assert len(holds) == 0


def _order(quantity: str, order_id: str = "00000000-0000-4000-8000-00000000f001") -> OrderCheck:
    return OrderCheck(
        account_id=ACCOUNT,
        order_id=order_id,
        purpose=Purpose.PLACE,
        symbol="EURUSD",
        side=Side.BUY,
        quantity=D(quantity),
        remaining_quantity=D(quantity),
    )


def test_the_check_deducts_what_other_orders_and_withdrawals_hold() -> None:
    state = broker()
    account(state, "1500.00")
    state.holds.hold_order(ACCOUNT, "o-before", D("300.00"), D("1"), NOW)
    state.holds.hold_withdrawal(ACCOUNT, "w1", D("150.00"), NOW)

    # 1 lot needs 1100.20; 1500.00 - 450.00 held leaves 1050.00.
    decision = check_order(state, _order("1"), NOW, AGE)

    assert not decision.approved
    assert decision.reason == R.ERROR_REASON_INSUFFICIENT_MARGIN
    assert decision.message == "required margin 1100.20 USD exceeds free margin 1050.00 USD"
    assert decision.free_margin_after == D("-50.20")


def test_a_withdrawal_may_take_the_smaller_of_balance_and_free_margin() -> None:
    state = broker()
    owner = account(state, "10000.00")
    # 5 lots bought at 1.10020, valued at the bid 1.10000: -100.00 unrealized; margin 5501.00.
    position(state, owner, "EURUSD", Side.BUY, "5", "1.10020")

    within = decide_withdrawal(state, ACCOUNT, "w1", D("4399.00"), NOW, AGE)
    beyond = decide_withdrawal(state, ACCOUNT, "w2", D("9000.00"), NOW, AGE)

    assert within.approved
    assert within.withdrawable == D("4399.00")  # 10000 - 100 - 5501
    assert not beyond.approved
    assert beyond.reason == R.ERROR_REASON_INSUFFICIENT_FUNDS
    assert beyond.message == (
        "9000.00 USD exceeds the withdrawable 4399.00 USD: the balance less the margin that"
        " backs open positions"
    )


def test_a_withdrawal_deducts_reservations_but_not_its_own_earlier_attempt() -> None:
    state = broker()
    account(state, "1000.00")
    state.holds.hold_order(ACCOUNT, "o1", D("300.00"), D("1"), NOW)
    state.holds.hold_withdrawal(ACCOUNT, "w1", D("600.00"), NOW)

    retry = decide_withdrawal(state, ACCOUNT, "w1", D("600.00"), NOW, AGE)
    another = decide_withdrawal(state, ACCOUNT, "w2", D("200.00"), NOW, AGE)

    assert retry.approved
    assert retry.withdrawable == D("700.00")
    assert not another.approved
    assert another.withdrawable == D("100.00")
    assert "900.00 USD is held by orders and withdrawals in progress" in another.message


def test_a_withdrawal_is_refused_while_a_position_has_no_price() -> None:
    state = broker()
    owner = account(state, "10000.00")
    position(state, owner, "GBPUSD", Side.BUY, "1", "1.25000")

    decision = decide_withdrawal(state, ACCOUNT, "w1", D("1.00"), NOW, AGE)

    assert not decision.approved
    assert decision.reason == R.ERROR_REASON_PRICE_UNAVAILABLE

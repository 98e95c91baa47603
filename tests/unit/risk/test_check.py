"""The pre-trade check's decisions, by hand: each reason in the contract's order, reducing
orders, the limits, and the exact figures of the response."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from services.platform.errors import DomainError
from services.platform.schedule import Session
from services.risk.check import Decision
from services.risk.check import OrderCheck
from services.risk.check import Purpose
from services.risk.check import check_order
from services.risk.model import AccountLimits
from services.risk.model import GroupInstrument
from services.risk.model import PositionMode
from services.risk.model import Side
from services.risk.model import UnbookedTrade
from services.risk.state import RiskState
from tests.unit.risk.builders import GROUP
from tests.unit.risk.builders import NOW
from tests.unit.risk.builders import account
from tests.unit.risk.builders import broker
from tests.unit.risk.builders import position
from tests.unit.risk.builders import price
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.trading.margin import RiskStatus

D = Decimal
R = ErrorReason
AGE = timedelta(seconds=30)
ORDER = "00000000-0000-4000-8000-00000000f001"


def order(
    side: Side,
    quantity: str,
    *,
    symbol: str = "EURUSD",
    price: str | None = None,
    position_id: str | None = None,
    purpose: Purpose = Purpose.PLACE,
    open_orders: int = 0,
    account_id: str = "00000000-0000-4000-8000-0000000000a1",
) -> OrderCheck:
    return OrderCheck(
        account_id=account_id,
        order_id=ORDER,
        purpose=purpose,
        symbol=symbol,
        side=side,
        quantity=D(quantity),
        remaining_quantity=D(quantity),
        price=D(price) if price is not None else None,
        position_id=position_id,
        open_order_count=open_orders,
    )


def check(state: RiskState, request: OrderCheck, age: timedelta | None = AGE) -> Decision:
    return check_order(state, request, NOW, age)


def refused(decision: Decision, reason: ErrorReason.ValueType) -> str:
    assert not decision.approved
    assert decision.reason == reason, ErrorReason.Name(decision.reason)
    return decision.message


def settings(state: RiskState, symbol: str = "EURUSD", **changes: object) -> None:
    held = state.group_instruments[(GROUP, symbol)]
    state.put_group_instrument(replace(held, **changes))  # type: ignore[arg-type]


# -- margin -----------------------------------------------------------------------------------


def test_an_order_within_free_margin_is_approved_with_the_figures_it_would_leave() -> None:
    state = broker()
    account(state, "1500.00")

    decision = check(state, order(Side.BUY, "1"))

    # 1 lot x 100000 x the ask 1.10020 / leverage 100.
    assert decision.approved
    assert decision.reason == R.ERROR_REASON_UNSPECIFIED
    assert decision.message == ""
    assert decision.required_margin == D("1100.20")
    assert decision.free_margin == D("1500.00")
    assert decision.free_margin_after == D("399.80")
    assert decision.margin_level_after == D("136.33")  # 1500 / 1100.20 x 100, rounded down
    assert decision.valuation_price == D("1.10020")
    assert decision.currency == "USD"


def test_an_order_beyond_free_margin_is_refused_with_exact_figures() -> None:
    state = broker()
    account(state, "1500.00")

    decision = check(state, order(Side.BUY, "2"))

    message = refused(decision, R.ERROR_REASON_INSUFFICIENT_MARGIN)
    assert message == "required margin 2200.40 USD exceeds free margin 1500.00 USD"
    assert decision.required_margin == D("2200.40")
    assert decision.free_margin_after == D("-700.40")
    assert decision.margin_level_after == D("68.16")  # 68.1694..., rounded down


def test_a_sell_is_valued_at_the_bid_and_a_given_price_replaces_the_live_one() -> None:
    state = broker()
    account(state, "5000.00")

    assert check(state, order(Side.SELL, "1")).required_margin == D("1100.00")
    assert check(state, order(Side.SELL, "1")).valuation_price == D("1.10000")
    limit = check(state, order(Side.BUY, "1", price="1.2"))
    assert limit.required_margin == D("1200.00")
    assert limit.valuation_price == D("1.2")


def test_margin_in_another_quote_currency_converts_at_the_mid_of_the_joining_pair() -> None:
    state = broker()
    account(state, "5000.00")
    price(state, "USDJPY", "150.000", "150.020")

    decision = check(state, order(Side.BUY, "1", symbol="USDJPY"))

    # 100000 x 150.020 / 100 = 150020 JPY, divided by the mid 150.010: 1000.0666... USD.
    assert decision.required_margin == D("1000.07")


def test_open_positions_count_at_live_prices_and_unbooked_trades_count_too() -> None:
    state = broker()
    owner = account(state, "1500.00")
    position(state, owner, "EURUSD", Side.BUY, "1", "1.10500")  # -500.00 at the bid 1.10000
    state.put_unbooked(UnbookedTrade("t-1", owner.id, "o-1", D("200.00"), D("3.50")))

    decision = check(state, order(Side.BUY, "0.1"))

    # equity 1500 + 196.50 - 500 = 1196.50; used 1100.20; free 96.30; the order adds 110.02.
    assert decision.free_margin == D("96.30")
    assert refused(decision, R.ERROR_REASON_INSUFFICIENT_MARGIN) == (
        "required margin 110.02 USD exceeds free margin 96.30 USD"
    )


# -- reducing orders --------------------------------------------------------------------------


def test_an_order_that_only_reduces_needs_no_margin_even_when_the_account_is_short_of_it() -> None:
    state = broker()
    owner = account(state, "1500.00")
    position(state, owner, "EURUSD", Side.BUY, "1", "1.10500")

    decision = check(state, order(Side.SELL, "0.5"))

    assert decision.approved
    assert decision.required_margin == 0
    assert decision.free_margin == decision.free_margin_after == D("-100.20")


def test_a_netting_reversal_is_not_reducing_but_needs_margin_only_for_what_it_adds() -> None:
    state = broker()
    owner = account(state, "5000.00")
    position(state, owner, "EURUSD", Side.BUY, "1", "1.10000")

    assert check(state, order(Side.SELL, "2")).required_margin == 0  # 1 long -> 1 short
    assert check(state, order(Side.SELL, "3")).required_margin == D("1100.00")  # 1 -> 2 short
    state.put_account(replace(owner, status="CLOSE_ONLY"))
    refused(check(state, order(Side.SELL, "2")), R.ERROR_REASON_ACCOUNT_DISABLED)


def test_hedging_orders_pay_full_margin_unless_they_close_a_named_position() -> None:
    state = broker()
    owner = account(state, "5000.00", mode=PositionMode.HEDGING)
    held = position(state, owner, "EURUSD", Side.BUY, "1", "1.10000")

    closing = check(state, order(Side.SELL, "1", position_id=held.id))
    opening = check(state, order(Side.SELL, "1"))

    assert closing.approved
    assert closing.required_margin == 0
    assert opening.approved
    assert opening.required_margin == D("1100.00")


# -- the contract's order of refusals ---------------------------------------------------------


def test_a_halted_instrument_refuses_every_order_even_a_reducing_one() -> None:
    state = broker()
    owner = account(state, "5000.00")
    position(state, owner, "EURUSD", Side.BUY, "1", "1.10000")
    state.put_instrument(replace(state.instruments["EURUSD"], halted=True))

    for side in (Side.BUY, Side.SELL):
        message = refused(check(state, order(side, "1")), R.ERROR_REASON_INSTRUMENT_HALTED)
        assert message == "EURUSD is halted"


def test_outside_its_sessions_an_instrument_refuses_orders_as_market_closed() -> None:
    state = broker()
    account(state, "5000.00")
    saturday_only = (Session(6, 0, 1440),)
    state.put_instrument(replace(state.instruments["EURUSD"], sessions=saturday_only))

    refused(check(state, order(Side.BUY, "1")), R.ERROR_REASON_MARKET_CLOSED)


@pytest.mark.parametrize("status", ["CLOSE_ONLY", "DISABLED", "CLOSED"])
def test_an_account_not_active_takes_only_reducing_orders(status: str) -> None:
    state = broker()
    owner = account(state, "5000.00", status=status)
    position(state, owner, "EURUSD", Side.BUY, "1", "1.10000")

    message = refused(check(state, order(Side.BUY, "1")), R.ERROR_REASON_ACCOUNT_DISABLED)
    assert message.startswith(f"the account is {status.lower().replace('_', '-')}")
    assert check(state, order(Side.SELL, "1")).approved


def test_an_account_in_stop_out_takes_only_reducing_orders() -> None:
    state = broker()
    owner = account(state, "5000.00")
    position(state, owner, "EURUSD", Side.BUY, "1", "1.10000")
    state.statuses[owner.id] = RiskStatus.STOP_OUT

    refused(check(state, order(Side.BUY, "0.1")), R.ERROR_REASON_ACCOUNT_IN_STOP_OUT)
    assert check(state, order(Side.SELL, "1")).approved


def test_the_groups_maximum_order_size_refuses_bigger_orders_but_not_reducing_ones() -> None:
    state = broker()
    owner = account(state, "1000000.00")
    settings(state, max_order_size=D("5"))

    message = refused(check(state, order(Side.BUY, "6")), R.ERROR_REASON_MAX_ORDER_SIZE_EXCEEDED)
    assert message == "quantity 6 exceeds the maximum order size 5 of EURUSD"
    assert check(state, order(Side.BUY, "5")).approved
    position(state, owner, "EURUSD", Side.BUY, "10", "1.10000")
    assert check(state, order(Side.SELL, "6")).approved


def test_the_groups_maximum_position_counts_the_position_after_the_order() -> None:
    state = broker()
    owner = account(state, "1000000.00")
    settings(state, max_position=D("3"))
    position(state, owner, "EURUSD", Side.BUY, "2", "1.10000")

    message = refused(check(state, order(Side.BUY, "1.5")), R.ERROR_REASON_POSITION_LIMIT_EXCEEDED)
    assert message == "a position of 3.5 lots would exceed the maximum position 3 of EURUSD"
    assert check(state, order(Side.BUY, "1")).approved
    assert check(state, order(Side.SELL, "5")).approved  # 2 long -> 3 short
    refused(check(state, order(Side.SELL, "5.5")), R.ERROR_REASON_POSITION_LIMIT_EXCEEDED)


def test_a_hedging_accounts_maximum_position_sums_both_sides() -> None:
    state = broker()
    owner = account(state, "1000000.00", mode=PositionMode.HEDGING)
    settings(state, max_position=D("3"))
    position(state, owner, "EURUSD", Side.BUY, "2", "1.10000")

    refused(check(state, order(Side.SELL, "1.5")), R.ERROR_REASON_POSITION_LIMIT_EXCEEDED)
    assert check(state, order(Side.SELL, "1")).approved


def test_account_limits_on_open_orders_apply_to_new_orders_only() -> None:
    state = broker()
    owner = account(state, "1000000.00")
    state.limits[owner.id] = AccountLimits(max_open_orders=2)

    message = refused(
        check(state, order(Side.BUY, "1", open_orders=2)), R.ERROR_REASON_ACCOUNT_LIMIT_EXCEEDED
    )
    assert message == "the account may have at most 2 open orders"
    assert check(state, order(Side.BUY, "1", open_orders=1)).approved
    assert check(state, order(Side.BUY, "1", open_orders=2, purpose=Purpose.TRIGGER)).approved


def test_account_limits_on_open_positions_refuse_only_an_order_that_opens_one() -> None:
    state = broker()
    owner = account(state, "1000000.00")
    price(state, "USDJPY", "150.000", "150.020")
    position(state, owner, "EURUSD", Side.BUY, "1", "1.10000")
    state.limits[owner.id] = AccountLimits(max_open_positions=1)

    refused(
        check(state, order(Side.BUY, "1", symbol="USDJPY")), R.ERROR_REASON_ACCOUNT_LIMIT_EXCEEDED
    )
    assert check(state, order(Side.BUY, "1")).approved  # adds to the EURUSD position


def test_account_limits_on_gross_notional_count_the_order() -> None:
    state = broker()
    owner = account(state, "1000000.00")
    position(state, owner, "EURUSD", Side.BUY, "1", "1.10000")  # 110020.00 at the ask
    state.limits[owner.id] = AccountLimits(max_gross_notional=D("150000"))

    message = refused(check(state, order(Side.BUY, "0.5")), R.ERROR_REASON_ACCOUNT_LIMIT_EXCEEDED)
    assert message == (
        "gross notional 165030.00 USD would exceed the account's limit 150000.00 USD"
    )
    assert check(state, order(Side.BUY, "0.3")).approved  # 143026.00
    assert check(state, order(Side.SELL, "1")).approved  # reducing


# -- prices -----------------------------------------------------------------------------------


def test_without_a_live_price_an_order_is_refused_as_price_unavailable() -> None:
    state = broker()
    account(state, "5000.00")

    message = refused(
        check(state, order(Side.BUY, "1", symbol="USDJPY")), R.ERROR_REASON_PRICE_UNAVAILABLE
    )
    assert message == "no live price for USDJPY"
    assert check(state, order(Side.BUY, "1", symbol="USDJPY")).valuation_price is None


def test_a_price_older_than_the_limit_is_not_live() -> None:
    state = broker()
    account(state, "5000.00")
    price(state, "EURUSD", "1.10000", "1.10020", at=NOW - timedelta(seconds=31))

    refused(check(state, order(Side.BUY, "1")), R.ERROR_REASON_PRICE_UNAVAILABLE)
    assert check(state, order(Side.BUY, "1"), age=None).approved
    assert check(state, order(Side.BUY, "1", price="1.10020")).approved


def test_an_order_whose_currency_cannot_be_converted_is_refused() -> None:
    state = broker()
    account(state, "5000.00")
    price(state, "EURGBP", "0.85000", "0.85020")

    message = refused(
        check(state, order(Side.BUY, "1", symbol="EURGBP")), R.ERROR_REASON_PRICE_UNAVAILABLE
    )
    assert message == "no price to convert GBP to USD"


def test_an_open_position_without_any_price_makes_the_figures_unknown() -> None:
    state = broker()
    owner = account(state, "5000.00")
    position(state, owner, "USDJPY", Side.BUY, "1", "150.000")

    message = refused(check(state, order(Side.BUY, "1")), R.ERROR_REASON_PRICE_UNAVAILABLE)
    assert message == "no price for the account's open positions in USDJPY"


# -- nothing to decide on ---------------------------------------------------------------------


def test_an_unknown_account_or_instrument_is_an_error_not_a_refusal() -> None:
    state = broker()
    account(state, "5000.00")

    with pytest.raises(DomainError) as unknown_account:
        check(state, order(Side.BUY, "1", account_id="00000000-0000-4000-8000-0000000000ff"))
    with pytest.raises(DomainError) as unknown_symbol:
        check(state, order(Side.BUY, "1", symbol="XYZ"))

    assert unknown_account.value.reason == R.ERROR_REASON_NOT_FOUND
    assert unknown_symbol.value.reason == R.ERROR_REASON_UNKNOWN_INSTRUMENT


def test_an_instrument_the_group_no_longer_offers_can_still_be_closed() -> None:
    state = broker()
    owner = account(state, "5000.00")
    position(state, owner, "EURUSD", Side.BUY, "1", "1.10000")
    state.put_group_instrument(GroupInstrument(GROUP, "EURUSD", False, None, None, None, 2))

    with pytest.raises(DomainError) as refused_open:
        check(state, order(Side.BUY, "1"))
    assert refused_open.value.reason == R.ERROR_REASON_UNKNOWN_INSTRUMENT
    assert check(state, order(Side.SELL, "1")).approved

"""What the account service books for an executed trade, for a stop-out (ADR 0007) and for a
rollover's swap (ADR 0010)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.account.domain import Reason
from services.account.trading import Booking
from services.account.trading import bookings_of
from services.account.trading import correction_for
from services.account.trading import swap_of
from tradingmesh.common.v1.trading_pb2 import OrderOrigin
from tradingmesh.oms.v1 import oms_events_pb2
from tradingmesh.oms.v1 import oms_pb2

TRADE_ID = "0b9f3c2e-8f5e-4a43-9d55-6f1f1c1d2a01"
ACCOUNT_ID = "5d6b2f1e-2f0c-4a5e-8d1e-0c5f3e2a7b10"


def executed(
    pnl: str,
    commission: str,
    *,
    origin: OrderOrigin.ValueType = OrderOrigin.ORDER_ORIGIN_CLIENT,
    currency: str = "USD",
) -> oms_events_pb2.TradeExecuted:
    return oms_events_pb2.TradeExecuted(
        trade=oms_pb2.Trade(
            id=TRADE_ID,
            account_id=ACCOUNT_ID,
            realized_pnl=pnl,
            commission=commission,
            origin=origin,
        ),
        currency=currency,
    )


def test_a_closing_trade_books_its_pnl_and_then_its_commission_as_a_debit() -> None:
    assert bookings_of(executed("-12.35", "3.50")) == [
        Booking(Reason.REALIZED_PNL, Decimal("-12.35")),
        Booking(Reason.COMMISSION, Decimal("-3.50")),
    ]


def test_an_opening_trade_without_commission_books_nothing() -> None:
    assert bookings_of(executed("0", "0")) == []


def test_a_stop_out_loss_is_booked_as_such_but_a_stop_out_profit_is_pnl() -> None:
    loss = bookings_of(executed("-800.00", "0", origin=OrderOrigin.ORDER_ORIGIN_STOP_OUT))
    profit = bookings_of(executed("15.00", "0", origin=OrderOrigin.ORDER_ORIGIN_STOP_OUT))

    assert loss == [Booking(Reason.STOP_OUT_LOSS, Decimal("-800.00"))]
    assert profit == [Booking(Reason.REALIZED_PNL, Decimal("15.00"))]


def test_amounts_are_in_the_account_currency_minor_unit() -> None:
    assert bookings_of(executed("-1250", "0", currency="JPY")) == [
        Booking(Reason.REALIZED_PNL, Decimal("-1250"))
    ]
    with pytest.raises(ValueError, match="more decimals than JPY"):
        bookings_of(executed("-1250.5", "0", currency="JPY"))


@pytest.mark.parametrize(
    ("pnl", "commission", "problem"),
    [
        ("1e3", "0", "realized_pnl"),
        ("0.001", "0", "more decimals"),
        ("0", "-1.00", "negative"),
        ("abc", "0", "realized_pnl"),
    ],
)
def test_an_event_that_breaks_its_contract_is_refused(
    pnl: str, commission: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        bookings_of(executed(pnl, commission))


def test_an_event_without_a_trade_id_is_refused() -> None:
    event = executed("1.00", "0")
    event.trade.id = ""

    with pytest.raises(ValueError, match="trade's id"):
        bookings_of(event)


@pytest.mark.parametrize(
    ("balance", "credit"),
    [
        (Decimal("-153.27"), Decimal("153.27")),
        (Decimal("0"), None),
        (Decimal("12.00"), None),
    ],
)
def test_negative_balance_protection_credits_exactly_the_deficit(
    balance: Decimal, credit: Decimal | None
) -> None:
    assert correction_for(balance) == credit


# ---- swaps (ADR 0010) -----------------------------------------------------------------------

CHARGE_ID = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
POSITION_ID = "3a4b5c6d-7e8f-4a0b-9c1d-2e3f4a5b6c7d"


def charged(
    swap: str, *, charge_id: str = CHARGE_ID, currency: str = "USD"
) -> oms_events_pb2.PositionSwapCharged:
    return oms_events_pb2.PositionSwapCharged(
        position=oms_pb2.Position(id=POSITION_ID, account_id=ACCOUNT_ID),
        swap=swap,
        currency=currency,
        charge_id=charge_id,
    )


def test_a_swap_books_its_signed_amount() -> None:
    assert swap_of(charged("-1.95")) == Decimal("-1.95")
    assert swap_of(charged("0.72")) == Decimal("0.72")


def test_a_swap_finer_than_its_currency_or_without_a_charge_breaks_its_contract() -> None:
    with pytest.raises(ValueError, match="more decimals"):
        swap_of(charged("-1.955"))
    with pytest.raises(ValueError, match="charge id"):
        swap_of(charged("-1.95", charge_id=""))
    with pytest.raises(ValueError, match="more decimals"):
        swap_of(charged("-1.5", currency="JPY"))

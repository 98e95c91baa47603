"""Order entry's checks that need the instrument or the position, before anything is stored."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from datetime import datetime
from decimal import Decimal

import pytest

from services.oms.domain.positions import PositionMode
from services.oms.domain.positions import Side
from services.oms.domain.state import OrderStatus
from services.oms.entry.execution import LiveQuote
from services.oms.entry.placement import OrderIntent
from services.oms.entry.placement import check_entry_rules
from services.oms.entry.placement import check_price_of
from services.oms.entry.placement import closing_checks
from services.oms.entry.placement import effective_mode
from services.oms.model import Account
from services.oms.model import AccountStatus
from services.oms.model import ExecutionMode
from services.oms.model import Instrument
from services.oms.model import OrderType
from services.oms.model import PositionRow
from services.oms.model import TimeInForce
from services.oms.model import TradingTerms
from services.platform.errors import DomainError
from tests.unit.oms import builders
from tradingmesh.common.v1.errors_pb2 import ErrorReason

D = Decimal
T = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ID = "0c9d3c2e-0b0b-4a5e-9d55-0f3b2f3f4a12"
EURUSD = Instrument(
    "EURUSD", "EUR", "USD", 5, D("0.00001"), D("100000"), D("0.01"), D("100"), D("0.01"), D("0.01")
)
QUOTE = LiveQuote(ID, "EURUSD", D("1.10000"), D("1.10020"), T, 1)
ACCOUNT = Account(ID, ID, ID, "USD", AccountStatus.ACTIVE, PositionMode.HEDGING)
INTENT = OrderIntent(
    account_id=ID,
    client_order_id="c-1",
    fingerprint="0" * 64,
    symbol="EURUSD",
    side=Side.BUY,
    type=OrderType.MARKET,
    time_in_force=TimeInForce.IOC,
    quantity=D("0.10"),
)
POSITION = PositionRow(
    id=ID,
    account_id=ID,
    symbol="EURUSD",
    netting=False,
    side=Side.SELL,
    quantity=D("0.5"),
    open_price=D("1.1"),
    open_order_id=ID,
    open_time=T,
    update_time=T,
    version=1,
)


def reason_of(call: object) -> int:
    with pytest.raises(DomainError) as refused:
        call()  # type: ignore[operator]
    return refused.value.reason


def test_instant_execution_needs_the_price_the_client_saw() -> None:
    assert reason_of(lambda: check_entry_rules(INTENT, EURUSD, ExecutionMode.INSTANT, QUOTE)) == (
        ErrorReason.ERROR_REASON_INVALID_ORDER_FIELDS
    )
    check_entry_rules(
        replace(INTENT, requested_price=D("1.1002")), EURUSD, ExecutionMode.INSTANT, QUOTE
    )
    check_entry_rules(INTENT, EURUSD, ExecutionMode.MARKET, QUOTE)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"quantity": D("0.015")}, ErrorReason.ERROR_REASON_TOO_MANY_DECIMALS),
        ({"quantity": D("0.001")}, ErrorReason.ERROR_REASON_TOO_MANY_DECIMALS),
        ({"quantity": D("101")}, ErrorReason.ERROR_REASON_QUANTITY_OUT_OF_RANGE),
        ({"requested_price": D("1.100001")}, ErrorReason.ERROR_REASON_TOO_MANY_DECIMALS),
        ({"stop_loss": D("1.2")}, ErrorReason.ERROR_REASON_INVALID_STOPS),  # above the ask
        ({"take_profit": D("1.0")}, ErrorReason.ERROR_REASON_INVALID_STOPS),
    ],
)
def test_the_instruments_rules(change: dict[str, object], reason: int) -> None:
    intent = replace(INTENT, **change)  # type: ignore[arg-type]
    assert reason_of(lambda: check_entry_rules(intent, EURUSD, ExecutionMode.MARKET, QUOTE)) == (
        reason
    )


def test_stops_of_a_limit_order_are_checked_against_its_price() -> None:
    limit = replace(INTENT, type=OrderType.LIMIT, price=D("1.05000"), stop_loss=D("1.06"))
    assert reason_of(lambda: check_entry_rules(limit, EURUSD, ExecutionMode.MARKET, QUOTE)) == (
        ErrorReason.ERROR_REASON_INVALID_STOPS
    )
    check_entry_rules(replace(limit, stop_loss=D("1.04")), EURUSD, ExecutionMode.MARKET, QUOTE)


def test_a_close_that_must_not_be_requoted_runs_as_market() -> None:
    terms = TradingTerms(ID, True, ExecutionMode.INSTANT, D(0), 0, 100, None)
    assert effective_mode(terms, INTENT) is ExecutionMode.INSTANT
    assert effective_mode(terms, replace(INTENT, requotable=False)) is ExecutionMode.MARKET
    stp = replace(terms, execution_mode=ExecutionMode.STP)
    assert effective_mode(stp, replace(INTENT, requotable=False)) is ExecutionMode.STP


def test_closing_an_open_position_of_the_other_side_closes_at_most_its_quantity() -> None:
    closing = replace(INTENT, position_id=ID, quantity=None)
    assert closing_checks(closing, POSITION, ACCOUNT, EURUSD) == D("0.5")
    assert closing_checks(replace(closing, quantity=D("0.2")), POSITION, ACCOUNT, EURUSD) == D(
        "0.2"
    )


@pytest.mark.parametrize(
    ("intent_change", "position", "reason"),
    [
        ({}, None, ErrorReason.ERROR_REASON_NOT_FOUND),
        (
            {},
            replace(POSITION, quantity=D(0), close_time=T),
            ErrorReason.ERROR_REASON_INVALID_ORDER_STATE,
        ),
        ({"side": Side.SELL}, POSITION, ErrorReason.ERROR_REASON_INVALID_ORDER_FIELDS),
        ({"symbol": "GBPUSD"}, POSITION, ErrorReason.ERROR_REASON_INVALID_ORDER_FIELDS),
        ({"quantity": D("0.6")}, POSITION, ErrorReason.ERROR_REASON_QUANTITY_OUT_OF_RANGE),
        ({"quantity": D("0.005")}, POSITION, ErrorReason.ERROR_REASON_TOO_MANY_DECIMALS),
    ],
)
def test_a_close_of_the_wrong_position_is_refused(
    intent_change: dict[str, object], position: PositionRow | None, reason: int
) -> None:
    intent = replace(INTENT, position_id=ID, **intent_change)  # type: ignore[arg-type]
    assert reason_of(lambda: closing_checks(intent, position, ACCOUNT, EURUSD)) == reason


def test_a_netting_account_closes_only_its_netting_position() -> None:
    netting = replace(ACCOUNT, position_mode=PositionMode.NETTING)
    intent = replace(INTENT, position_id=ID)
    assert reason_of(lambda: closing_checks(intent, POSITION, netting, EURUSD)) == (
        ErrorReason.ERROR_REASON_INVALID_ORDER_FIELDS
    )
    closing_checks(intent, replace(POSITION, netting=True), netting, EURUSD)


def test_the_price_the_pre_trade_check_values_an_order_at() -> None:
    order = builders.order(
        type=OrderType.MARKET,
        time_in_force=TimeInForce.IOC,
        status=OrderStatus.NEW,
        price=None,
        requested_price=D("1.1"),
    )
    assert check_price_of(order, ExecutionMode.INSTANT) == D("1.1")
    assert check_price_of(order, ExecutionMode.MARKET) is None
    limit = replace(order, type=OrderType.LIMIT, price=D("1.2"))
    assert check_price_of(limit, ExecutionMode.MARKET) == D("1.2")
    stop = replace(order, type=OrderType.STOP, stop_price=D("1.3"))
    assert check_price_of(stop, ExecutionMode.INSTANT) == D("1.3")
    stop_limit = replace(stop, type=OrderType.STOP_LIMIT, price=D("1.25"))
    assert check_price_of(stop_limit, ExecutionMode.MARKET) == D("1.25")

"""Order-entry rules that need the instrument: lot step, lot range, digits, tick, stops."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.oms.domain.positions import Side
from services.oms.domain.validation import InstrumentRules
from services.oms.domain.validation import check_close_quantity
from services.oms.domain.validation import check_price
from services.oms.domain.validation import check_quantity
from services.oms.domain.validation import check_stops
from services.platform.errors import DomainError
from tradingmesh.common.v1.errors_pb2 import ErrorReason

D = Decimal
_R = ErrorReason
EURUSD = InstrumentRules("EURUSD", 5, D("0.00001"), D("0.01"), D("0.01"), D("100"))
US500 = InstrumentRules("US500", 2, D("0.25"), D("0.1"), D("0.1"), D("500"))


@pytest.mark.parametrize("quantity", ["0.01", "0.10", "1", "100", "99.99"])
def test_quantities_on_the_lot_step_within_the_range_pass(quantity: str) -> None:
    check_quantity(D(quantity), EURUSD)


@pytest.mark.parametrize(
    ("rules", "quantity", "reason"),
    [
        (EURUSD, "0.015", _R.ERROR_REASON_TOO_MANY_DECIMALS),
        (EURUSD, "0.001", _R.ERROR_REASON_TOO_MANY_DECIMALS),
        (US500, "0.25", _R.ERROR_REASON_TOO_MANY_DECIMALS),  # lot step 0.1
        (EURUSD, "100.01", _R.ERROR_REASON_QUANTITY_OUT_OF_RANGE),
        (US500, "500.1", _R.ERROR_REASON_QUANTITY_OUT_OF_RANGE),
    ],
)
def test_quantities_off_the_step_or_out_of_range_are_refused(
    rules: InstrumentRules, quantity: str, reason: ErrorReason.ValueType
) -> None:
    with pytest.raises(DomainError) as refused:
        check_quantity(D(quantity), rules)

    assert refused.value.reason == reason
    assert [v.field for v in refused.value.field_violations] == ["quantity"]


def test_a_closing_quantity_is_at_most_the_open_quantity() -> None:
    check_close_quantity(D("0.50"), D("0.50"))
    with pytest.raises(DomainError) as refused:
        check_close_quantity(D("0.51"), D("0.50"))

    assert refused.value.reason == _R.ERROR_REASON_QUANTITY_OUT_OF_RANGE


@pytest.mark.parametrize(
    ("rules", "price"),
    [(EURUSD, "1.10001"), (EURUSD, "1.100000"), (EURUSD, "2"), (US500, "4500.25")],
)
def test_prices_within_the_digits_and_on_the_tick_pass(rules: InstrumentRules, price: str) -> None:
    check_price(D(price), rules, "price")  # "1.100000": trailing zeros do not count


@pytest.mark.parametrize(
    ("rules", "price", "problem"),
    [
        (EURUSD, "1.100001", "more than the 5 decimals"),
        (US500, "4500.123", "more than the 2 decimals"),
        (US500, "4500.30", "multiple of the tick size 0.25"),
    ],
)
def test_prices_beyond_the_digits_or_off_the_tick_are_too_many_decimals(
    rules: InstrumentRules, price: str, problem: str
) -> None:
    with pytest.raises(DomainError, match=problem) as refused:
        check_price(D(price), rules, "stop_price")

    assert refused.value.reason == _R.ERROR_REASON_TOO_MANY_DECIMALS
    assert refused.value.field_violations[0].field == "stop_price"


@pytest.mark.parametrize(
    ("side", "stop_loss", "take_profit"),
    [
        (Side.BUY, "1.09900", "1.10100"),
        (Side.BUY, "1.09950", None),  # exactly the minimum distance 0.00050
        (Side.SELL, "1.10100", "1.09900"),
        (Side.SELL, None, "1.09950"),
    ],
)
def test_stops_on_the_right_side_far_enough_pass(
    side: Side, stop_loss: str | None, take_profit: str | None
) -> None:
    check_stops(
        side,
        D("1.10000"),
        D(stop_loss) if stop_loss else None,
        D(take_profit) if take_profit else None,
        min_distance=D("0.00050"),
    )


@pytest.mark.parametrize(
    ("side", "stop_loss", "take_profit", "fields"),
    [
        (Side.BUY, "1.10100", None, ["stop_loss"]),  # a long's stop-loss above the price
        (Side.BUY, "1.09960", None, ["stop_loss"]),  # 0.00040 away, less than 0.00050
        (Side.BUY, None, "1.09900", ["take_profit"]),
        (Side.BUY, "1.10100", "1.09900", ["stop_loss", "take_profit"]),  # both listed
        (Side.SELL, "1.09900", None, ["stop_loss"]),  # a short's stop-loss below the price
        (Side.SELL, None, "1.10100", ["take_profit"]),
    ],
)
def test_stops_on_the_wrong_side_or_too_close_are_invalid(
    side: Side, stop_loss: str | None, take_profit: str | None, fields: list[str]
) -> None:
    with pytest.raises(DomainError) as refused:
        check_stops(
            side,
            D("1.10000"),
            D(stop_loss) if stop_loss else None,
            D(take_profit) if take_profit else None,
            min_distance=D("0.00050"),
        )

    assert refused.value.reason == _R.ERROR_REASON_INVALID_STOPS
    assert [v.field for v in refused.value.field_violations] == fields


@pytest.mark.parametrize("side", list(Side))
def test_a_stop_at_the_price_itself_is_invalid_even_without_a_distance(side: Side) -> None:
    with pytest.raises(DomainError):
        check_stops(side, D("1.10000"), D("1.10000"), None)
    with pytest.raises(DomainError):
        check_stops(side, D("1.10000"), None, D("1.10000"))

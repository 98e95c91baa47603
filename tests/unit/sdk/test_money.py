"""The SDK's money arithmetic shared by the OMS and reporting: the average price."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradingmesh.trading.money import average_price

D = Decimal

# -- average price -----------------------------------------------------------------------------


def test_an_average_that_does_not_terminate_is_rounded_half_even_to_12_decimals() -> None:
    # (1 x 1.10000 + 2 x 1.10001) / 3 = 3.30002 / 3 = 1.1000066666...
    assert average_price(D(1), D("1.10000"), D(2), D("1.10001")) == D("1.100006666667")


@pytest.mark.parametrize(
    ("added", "expected"),
    [
        ("1.000000000001", "1.000000000000"),  # 1.0000000000005: the tie goes to the even 0
        ("1.000000000003", "1.000000000002"),  # 1.0000000000015: the tie goes to the even 2
    ],
)
def test_an_average_on_a_tie_rounds_to_the_even_last_digit(added: str, expected: str) -> None:
    assert average_price(D(1), D("1.000000000000"), D(1), D(added)) == D(expected)


def test_an_average_of_whole_prices_stays_a_plain_number() -> None:
    assert str(average_price(D(1), D(100), D(1), D(120))) == "110"

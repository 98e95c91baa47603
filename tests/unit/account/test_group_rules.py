"""A client group's rules, without a database: its margin call level above its stop-out level,
and its per-instrument settings (a whole POINTS markup, size limits in lot steps)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.account.domain import check_group_levels
from services.account.domain import check_instrument_limits
from services.platform.errors import DomainError
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import FieldViolation

D = Decimal
R = ErrorReason


def test_a_margin_call_level_above_the_stop_out_level_is_taken() -> None:
    check_group_levels(D("100"), D("50"))


@pytest.mark.parametrize(("margin_call", "stop_out"), [("50", "50"), ("40", "50")])
def test_a_margin_call_level_at_or_below_the_stop_out_level_is_refused(
    margin_call: str, stop_out: str
) -> None:
    with pytest.raises(DomainError) as refused:
        check_group_levels(D(margin_call), D(stop_out))

    assert refused.value.reason == R.ERROR_REASON_VALIDATION_FAILED
    assert refused.value.field_violations == (
        FieldViolation("client_group.margin_call_level", "must be greater than stop_out_level"),
    )


def test_whole_points_and_limits_in_lot_steps_are_taken() -> None:
    check_instrument_limits(
        D("0.01"), points_markup=D("3"), max_order_size=D("5.00"), max_position=D("20.01")
    )
    check_instrument_limits(D("0.1"), points_markup=None, max_order_size=None, max_position=None)


def test_every_problem_of_an_instruments_settings_is_listed() -> None:
    with pytest.raises(DomainError) as refused:
        check_instrument_limits(
            D("0.1"), points_markup=D("2.5"), max_order_size=D("1.05"), max_position=D("3.33")
        )

    assert refused.value.reason == R.ERROR_REASON_TOO_MANY_DECIMALS
    assert refused.value.field_violations == (
        FieldViolation("settings.spread_markup", "a POINTS markup must be a whole number"),
        FieldViolation("settings.max_order_size", "must be a multiple of the lot step 0.1"),
        FieldViolation("settings.max_position", "must be a multiple of the lot step 0.1"),
    )
    assert refused.value.message == "a POINTS markup must be a whole number"

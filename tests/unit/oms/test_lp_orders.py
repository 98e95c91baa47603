"""The OMS's FIX order messages: what a hedge order sends, what an execution report means."""

from __future__ import annotations

from decimal import Decimal

import pytest
import quickfix as fix
import quickfix44 as fix44

from services.oms.domain.positions import Side
from services.oms.lp_orders import (
    HedgeRequest,
    ReportKind,
    new_order_single,
    parse_execution_report,
)
from services.platform.fix import get_field


def report(**fields: str) -> fix.Message:
    message = fix44.ExecutionReport()
    for tag, value in fields.items():
        message.setField(fix.StringField(int(tag.removeprefix("t")), value))
    return message


def test_a_hedge_order_is_a_market_ioc_with_the_hedge_id_and_an_exact_quantity() -> None:
    request = HedgeRequest(
        "7b0d6c1a-0000-4000-8000-000000000001", "lp-alpha", "EURUSD", Side.SELL, Decimal("1.20")
    )

    message = new_order_single(request)

    assert get_field(message, 11) == request.hedge_order_id
    assert (get_field(message, 55), get_field(message, 54)) == ("EURUSD", "2")
    assert get_field(message, 38) == "1.2"
    assert (get_field(message, 40), get_field(message, 59)) == ("1", "3")


def test_a_fill_carries_its_own_quantity_and_price_as_decimals() -> None:
    parsed = parse_execution_report(
        "lp-beta",
        report(
            t11="h1", t17="x9", t37="lp-h1", t150="F", t39="1", t32="0.5", t31="1.100125", t14="0.5"
        ),
    )

    assert parsed.kind is ReportKind.FILL
    assert (parsed.last_quantity, parsed.last_price) == (Decimal("0.5"), Decimal("1.100125"))
    assert (parsed.hedge_order_id, parsed.execution_id, parsed.lp_order_id) == ("h1", "x9", "lp-h1")
    assert parsed.lp == "lp-beta"


@pytest.mark.parametrize(
    ("exec_type", "kind"),
    [
        ("0", ReportKind.ACKNOWLEDGED),
        ("4", ReportKind.CANCELLED),
        ("8", ReportKind.REJECTED),
        ("I", ReportKind.OTHER),
    ],
)
def test_other_reports_carry_no_fill(exec_type: str, kind: ReportKind) -> None:
    parsed = parse_execution_report(
        "lp-alpha", report(t11="h1", t17="x1", t150=exec_type, t58="no liquidity")
    )

    assert parsed.kind is kind
    assert (parsed.last_quantity, parsed.last_price) == (Decimal(0), None)
    assert parsed.text == "no liquidity"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"t17": "x1", "t150": "0"}, "ClOrdID"),
        ({"t11": "h1", "t150": "0"}, "ExecID"),
        ({"t11": "h1", "t17": "x1", "t150": "F", "t32": "0", "t31": "1.1"}, "positive LastQty"),
        ({"t11": "h1", "t17": "x1", "t150": "F", "t32": "1", "t31": "abc"}, "LastPx"),
        ({"t11": "h1", "t17": "x1", "t150": "F", "t32": "-1", "t31": "1.1"}, "LastQty"),
    ],
)
def test_a_report_the_oms_cannot_use_is_refused(fields: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_execution_report("lp-alpha", report(**fields))

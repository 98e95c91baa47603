"""The OMS's FIX order messages: what a hedge order sends, what an execution report means."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import quickfix as fix
import quickfix44 as fix44

from services.oms.domain.positions import Side
from services.oms.lp_orders import (
    REPORTS_NOT_STORED,
    ExecutionReport,
    HedgeRequest,
    LpOrderRouter,
    ReportKind,
    ReportNotStoredError,
    StatusRequest,
    StoredReport,
    new_order_single,
    order_status_request,
    parse_execution_report,
    report_from_json,
    report_to_json,
)
from services.platform.fix import LpEndpoint, get_field
from services.platform.secrets import Secret


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
        ("H", ReportKind.OTHER),
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


def test_an_order_status_answer_carries_the_orders_state_and_is_keyed_by_it() -> None:
    parsed = parse_execution_report(
        "lp-alpha",
        report(t11="h1", t17="0", t37="lp-h1", t150="I", t39="2", t14="1.20", t6="1.1001"),
    )

    assert parsed.kind is ReportKind.STATUS
    assert (parsed.order_status, parsed.cumulative_quantity) == ("2", Decimal("1.20"))
    assert parsed.average_price == Decimal("1.1001")
    # FIX 4.4 sends ExecID 0 for every status answer: the state it gives identifies it.
    assert parsed.key == "status:2:1.2"


def test_an_unknown_order_answer_keeps_the_reject_reason() -> None:
    parsed = parse_execution_report(
        "lp-alpha", report(t11="h1", t17="0", t150="I", t39="8", t103="5", t58="unknown order")
    )

    assert (parsed.order_status, parsed.reject_reason, parsed.average_price) == ("8", "5", None)


def test_a_status_answer_without_an_order_status_is_refused() -> None:
    with pytest.raises(ValueError, match="OrdStatus"):
        parse_execution_report("lp-alpha", report(t11="h1", t17="0", t150="I"))


def test_a_fills_key_is_its_exec_id() -> None:
    parsed = parse_execution_report(
        "lp-alpha", report(t11="h1", t17="x9", t150="F", t32="0.5", t31="1.1", t14="0.5")
    )

    assert parsed.key == "x9"


def test_a_report_survives_its_stored_form_exactly() -> None:
    original = parse_execution_report(
        "lp-beta",
        report(
            t11="h1",
            t17="x9",
            t37="o1",
            t150="F",
            t39="1",
            t32="0.5",
            t31="1.100125",
            t14="0.5",
            t6="1.100125",
            t58="partial",
        ),
    )

    stored = report_to_json(original)

    assert stored["last_price"] == "1.100125"  # decimals as text, never floats
    assert report_from_json(stored) == original


def test_a_status_request_names_the_hedge_its_side_and_the_providers_order() -> None:
    request = StatusRequest("h1", "lp-alpha", "EURUSD", Side.SELL, "lp-alpha-h1")

    message = order_status_request(request, "q-1")

    assert get_field(message.getHeader(), 35) == "H"
    assert (get_field(message, 11), get_field(message, 55), get_field(message, 54)) == (
        "h1",
        "EURUSD",
        "2",
    )
    assert (get_field(message, 37), get_field(message, 790)) == ("lp-alpha-h1", "q-1")


# ---- the router stores a report before QuickFIX moves on ----------------------------------------


class Journal:
    """Stands in for the report journal: keeps what it was given, or fails."""

    def __init__(self, *, fail: bool = False, applied: bool = False) -> None:
        self.fail, self.applied = fail, applied
        self.stored: list[tuple[ExecutionReport, str]] = []

    def store(self, report: ExecutionReport, raw_message: str) -> StoredReport | None:
        if self.fail:
            raise ReportNotStoredError("OperationalError: the server is away")
        self.stored.append((report, raw_message))
        return None if self.applied else StoredReport(len(self.stored), report)


class Loop:
    """Records what the router hands to the event loop."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, tuple[Any, ...]]] = []

    def call_soon_threadsafe(self, callback: Any, *args: Any) -> None:
        self.calls.append((callback, args))


SESSION = fix.SessionID("FIX.4.4", "TRADINGMESH-OMS", "LP-ALPHA")


@pytest.fixture
def loop() -> Loop:
    return Loop()


def router(tmp_path: Path, loop: Loop, journal: Journal) -> tuple[LpOrderRouter, list[Any]]:
    handed: list[Any] = []
    built = LpOrderRouter(
        [LpEndpoint("lp-alpha", "127.0.0.1", 1)],
        {"lp-alpha": ("u", Secret("p"))},
        tmp_path,
        loop,  # type: ignore[arg-type]
        journal,
        handed.append,
        lambda lp: None,
    )
    return built, handed


def incoming_fill() -> fix.Message:
    message = report(t11="h1", t17="x9", t150="F", t39="2", t32="1", t31="1.1", t14="1")
    message.getHeader().setField(fix.StringField(34, "7"))
    return message


def test_a_report_is_stored_before_it_is_handed_to_the_event_loop(
    tmp_path: Path, loop: Loop
) -> None:
    journal = Journal()
    built, _ = router(tmp_path, loop, journal)

    built.on_app_message(incoming_fill(), SESSION)

    ((stored_report, raw),) = journal.stored
    assert stored_report.execution_id == "x9"
    assert "17=x9" in raw
    ((_, (handed,)),) = loop.calls
    assert handed == StoredReport(1, stored_report)


def test_a_report_stored_and_applied_before_is_not_handed_over_again(
    tmp_path: Path, loop: Loop
) -> None:
    built, _ = router(tmp_path, loop, Journal(applied=True))

    built.on_app_message(incoming_fill(), SESSION)

    assert loop.calls == []


def test_a_report_that_cannot_be_stored_is_not_handed_over_and_is_counted(
    tmp_path: Path, loop: Loop
) -> None:
    built, _ = router(tmp_path, loop, Journal(fail=True))
    before = REPORTS_NOT_STORED.labels("lp-alpha")._value.get()

    # No QuickFIX session runs here, so there is nothing to rewind or drop (the integration
    # test test_stp_durability.py shows the provider resending it).
    built.on_app_message(incoming_fill(), SESSION)

    assert loop.calls == []
    assert REPORTS_NOT_STORED.labels("lp-alpha")._value.get() == before + 1


def test_messages_other_than_execution_reports_are_not_stored(tmp_path: Path, loop: Loop) -> None:
    journal = Journal()
    built, _ = router(tmp_path, loop, journal)
    other = fix44.BusinessMessageReject()

    built.on_app_message(other, SESSION)

    assert (journal.stored, loop.calls) == ([], [])


def test_the_received_time_is_aware() -> None:
    parsed = parse_execution_report("lp-alpha", report(t11="h1", t17="x1", t150="0"))

    assert parsed.received_at.tzinfo is UTC
    assert parsed.received_at <= datetime.now(UTC)

"""The OMS's FIX order messages: what a hedge order sends, what an execution report means."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import quickfix as fix
import quickfix44 as fix44

from services.oms.domain.positions import Side
from services.oms.stp.lp_messages import LpMessage
from services.oms.stp.lp_messages import LpMessageKind
from services.oms.stp.lp_messages import StoredMessage
from services.oms.stp.lp_orders import INVALID_MESSAGES
from services.oms.stp.lp_orders import LP_REFUSALS
from services.oms.stp.lp_orders import REPORTS_NOT_STORED
from services.oms.stp.lp_orders import ExecutionReport
from services.oms.stp.lp_orders import HedgeRequest
from services.oms.stp.lp_orders import LpOrderRouter
from services.oms.stp.lp_orders import ReportKind
from services.oms.stp.lp_orders import ReportNotStoredError
from services.oms.stp.lp_orders import StatusRequest
from services.oms.stp.lp_orders import StoredReport
from services.oms.stp.lp_orders import dont_know_trade
from services.oms.stp.lp_orders import new_order_single
from services.oms.stp.lp_orders import order_status_request
from services.oms.stp.lp_orders import parse_execution_report
from services.oms.stp.lp_orders import report_from_json
from services.oms.stp.lp_orders import report_to_json
from services.platform.fix import LpEndpoint
from services.platform.fix import get_field
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
        ("3", ReportKind.CANCELLED),  # done for day: nothing more fills
        ("C", ReportKind.CANCELLED),  # expired
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
        ({"t11": "h1", "t17": "x1", "t150": "F", "t32": "0", "t31": "1.1"}, "positive LastQty"),
        ({"t11": "h1", "t17": "x1", "t150": "2", "t14": "0.5"}, "AvgPx"),
        ({"t11": "h1", "t17": "x1", "t150": "F", "t32": "1", "t31": "1.1", "t14": "x"}, "CumQty"),
        ({"t11": "h1", "t17": "x1", "t150": "F", "t32": "1", "t31": "abc"}, "LastPx"),
        ({"t11": "h1", "t17": "x1", "t150": "F", "t32": "-1", "t31": "1.1"}, "LastQty"),
    ],
)
def test_a_report_the_oms_cannot_use_is_refused(fields: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_execution_report("lp-alpha", report(**fields))


@pytest.mark.parametrize("exec_type", ["1", "2"])
def test_fix42_exec_types_partial_fill_and_fill_are_fills_on_fix44(exec_type: str) -> None:
    parsed = parse_execution_report(
        "lp-alpha",
        report(t11="h1", t17="x2", t150=exec_type, t39=exec_type, t32="0.1", t31="1.1", t14="0.1"),
    )

    assert parsed.kind is ReportKind.FILL
    assert (parsed.last_quantity, parsed.last_price, parsed.key) == (
        Decimal("0.1"),
        Decimal("1.1"),
        "x2",
    )


def test_a_report_without_exec_type_means_what_its_order_status_says() -> None:
    filled = parse_execution_report(
        "lp-alpha", report(t11="h1", t17="x3", t39="2", t32="0.2", t31="1.2", t14="0.2")
    )
    rejected = parse_execution_report("lp-alpha", report(t11="h1", t17="x4", t39="8", t58="no"))

    assert (filled.kind, filled.last_quantity) == (ReportKind.FILL, Decimal("0.2"))
    assert (rejected.kind, rejected.text) == (ReportKind.REJECTED, "no")


def test_a_fill_without_last_qty_and_px_is_applied_by_its_cumulative_state() -> None:
    parsed = parse_execution_report(
        "lp-alpha", report(t11="h1", t17="x5", t150="2", t14="0.3", t6="1.3")
    )

    assert parsed.kind is ReportKind.STATUS
    assert (parsed.order_status, parsed.cumulative_quantity, parsed.average_price) == (
        "2",
        Decimal("0.3"),
        Decimal("1.3"),
    )
    assert parsed.key == "status:2:0.3"


def test_a_report_without_exec_id_is_keyed_by_the_state_it_reports() -> None:
    parsed = parse_execution_report(
        "lp-alpha", report(t11="h1", t150="F", t39="2", t32="1", t31="1.1", t14="1")
    )

    assert parsed.kind is ReportKind.FILL
    assert parsed.key == "noexec:FILL:2:1"


def test_a_dont_know_trade_repeats_the_reports_ids_symbol_and_side() -> None:
    parsed = parse_execution_report(
        "lp-alpha",
        report(
            t11="not-ours", t17="x6", t37="o6", t150="F", t32="1", t31="1.1", t55="EURUSD", t54="2"
        ),
    )

    message = dont_know_trade(parsed, "no order of ours has this ClOrdID")

    assert get_field(message.getHeader(), 35) == "Q"
    assert [get_field(message, t) for t in (37, 17, 127, 55, 54)] == [
        "o6",
        "x6",
        "D",
        "EURUSD",
        "2",
    ]


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
        self.problems: list[str] = []
        self.messages: list[tuple[LpMessage, str]] = []

    def store(
        self, report: ExecutionReport, raw_message: str, validation_error: str = ""
    ) -> StoredReport | None:
        if self.fail:
            raise ReportNotStoredError("OperationalError: the server is away")
        self.stored.append((report, raw_message))
        self.problems.append(validation_error)
        return None if self.applied else StoredReport(len(self.stored), report)

    def store_message(self, message: LpMessage, raw_message: str) -> StoredMessage | None:
        if self.fail:
            raise ReportNotStoredError("OperationalError: the server is away")
        self.messages.append((message, raw_message))
        return None if message.kind.parked_on_arrival else StoredMessage(7, message)


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


def test_a_business_message_reject_is_stored_then_handed_to_the_desk(
    tmp_path: Path, loop: Loop
) -> None:
    journal = Journal()
    built, _ = router(tmp_path, loop, journal)
    refusal = fix44.BusinessMessageReject()
    for tag, value in ((45, "12"), (372, "H"), (379, "h1"), (380, "3"), (58, "unsupported")):
        refusal.setField(fix.StringField(tag, value))
    refusal.getHeader().setField(fix.StringField(34, "9"))
    before = LP_REFUSALS.labels("lp-alpha", "j")._value.get()

    built.on_app_message(refusal, SESSION)

    ((message, raw),) = journal.messages
    assert (message.kind, message.ref_seq_num, message.ref_msg_type) == (
        LpMessageKind.BUSINESS_REJECT,
        12,
        "H",
    )
    assert (message.cl_ord_id, message.reason, message.text) == ("h1", "3", "unsupported")
    assert "379=h1" in raw
    ((_, (handed,)),) = loop.calls
    assert handed == StoredMessage(7, message)
    assert journal.stored == []
    assert LP_REFUSALS.labels("lp-alpha", "j")._value.get() == before + 1


def test_a_session_reject_from_the_lp_arrives_through_from_admin(
    tmp_path: Path, loop: Loop
) -> None:
    journal = Journal()
    built, _ = router(tmp_path, loop, journal)
    reject = fix44.Reject()
    for tag, value in ((45, "3"), (372, "D"), (371, "40"), (373, "5"), (58, "market orders")):
        reject.setField(fix.StringField(tag, value))

    built._app.fromAdmin(reject, SESSION)  # as QuickFIX calls it

    ((message, _),) = journal.messages
    assert (message.kind, message.ref_seq_num, message.ref_msg_type, message.reason) == (
        LpMessageKind.REJECT,
        3,
        "D",
        "5",
    )
    assert message.text == "market orders (tag 40)"
    assert len(loop.calls) == 1


def test_a_reject_that_cannot_be_stored_is_still_handed_over(tmp_path: Path, loop: Loop) -> None:
    built, _ = router(tmp_path, loop, Journal(fail=True))
    reject = fix44.Reject()
    reject.setField(fix.StringField(45, "3"))

    built._app.fromAdmin(reject, SESSION)

    ((_, (handed,)),) = loop.calls
    assert handed.row_id is None
    assert handed.message.ref_seq_num == 3


def from_the_wire(body: str) -> fix.Message:
    """A message as an order session receives it: a whole header, parsed by QuickFIX."""
    fields = body.replace("|", "\x01")
    rest = (
        f"35=8\x0134=8\x0149=LP-ALPHA\x0152=20261206-10:00:00.000\x0156=TRADINGMESH-OMS\x01{fields}"
    )
    raw = f"8=FIX.4.4\x019={len(rest)}\x01{rest}"
    checksum = sum(raw.encode()) % 256
    return fix.Message(f"{raw}10={checksum:03d}\x01", False)


def test_a_report_failing_the_strict_dictionary_is_stored_with_why_counted_and_applied(
    tmp_path: Path, loop: Loop, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal()
    built, _ = router(tmp_path, loop, journal)
    # ExecType 2 (FIX 4.2's Fill) on a FIX 4.4 session; otherwise a complete report.
    fill = from_the_wire(
        "6=1.1|11=h1|14=0.1|17=x7|31=1.1|32=0.1|37=o7|39=2|54=1|55=EURUSD|150=2|151=0|"
    )
    before = INVALID_MESSAGES.labels("lp-alpha", "understood")._value.get()

    built.on_app_message(fill, SESSION)

    ((stored_report, _),) = journal.stored
    assert (stored_report.kind, stored_report.last_quantity) == (ReportKind.FILL, Decimal("0.1"))
    assert journal.problems == ["Value is incorrect (out of range) for this tag: 150"]
    assert len(loop.calls) == 1
    assert INVALID_MESSAGES.labels("lp-alpha", "understood")._value.get() == before + 1
    assert any(r.getMessage().startswith("ALERT") for r in caplog.records)


def test_a_report_passing_the_strict_dictionary_is_stored_without_a_problem(
    tmp_path: Path, loop: Loop
) -> None:
    journal = Journal()
    built, _ = router(tmp_path, loop, journal)
    fill = from_the_wire(
        "6=1.1|11=h1|14=0.1|17=x7|31=1.1|32=0.1|37=o7|39=2|54=1|55=EURUSD|150=F|151=0|"
    )

    built.on_app_message(fill, SESSION)

    assert journal.problems == [""]


def test_a_report_the_oms_cannot_understand_is_parked_not_handed_over(
    tmp_path: Path, loop: Loop, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal()
    built, _ = router(tmp_path, loop, journal)
    garbled = report(t17="x8", t150="F", t32="1", t31="1.1")  # no ClOrdID
    before = INVALID_MESSAGES.labels("lp-alpha", "parked")._value.get()

    built.on_app_message(garbled, SESSION)

    ((message, raw),) = journal.messages
    assert message.kind is LpMessageKind.UNREADABLE_REPORT
    assert "ClOrdID" in message.problem
    assert "17=x8" in raw
    assert (journal.stored, loop.calls) == ([], [])
    assert INVALID_MESSAGES.labels("lp-alpha", "parked")._value.get() == before + 1
    assert any("ALERT" in r.getMessage() for r in caplog.records)


def test_a_message_our_session_refused_is_parked_from_the_reject_it_sends(
    tmp_path: Path, loop: Loop
) -> None:
    journal = Journal()
    built, _ = router(tmp_path, loop, journal)
    ours = fix44.Reject()
    for tag, value in ((45, "21"), (372, "U7"), (373, "11"), (58, "Invalid MsgType")):
        ours.setField(fix.StringField(tag, value))

    built._app.toAdmin(ours, SESSION)  # as QuickFIX calls it before sending

    ((message, _),) = journal.messages
    assert (message.kind, message.msg_seq_num, message.msg_type) == (
        LpMessageKind.REFUSED_BY_SESSION,
        21,
        "U7",
    )
    assert "Invalid MsgType" in message.problem
    assert loop.calls == []


def test_an_unexpected_application_message_is_parked(tmp_path: Path, loop: Loop) -> None:
    journal = Journal()
    built, _ = router(tmp_path, loop, journal)

    built.on_app_message(fix44.News(), SESSION)

    ((message, _),) = journal.messages
    assert message.kind is LpMessageKind.OTHER
    assert loop.calls == []


def test_the_order_sessions_parse_with_the_lenient_dictionary(tmp_path: Path, loop: Loop) -> None:
    built, _ = router(tmp_path, loop, Journal())

    values = built._settings.get(fix.SessionID("FIX.4.4", "TRADINGMESH-OMS", "LP-ALPHA"))

    assert values.getString("DataDictionary") == str(tmp_path / "FIX44-lenient.xml")
    assert (tmp_path / "FIX44-lenient.xml").is_file()
    assert values.getString("ValidateFieldsHaveValues") == "N"
    assert values.getString("AllowUnknownMsgFields") == "Y"


def test_the_received_time_is_aware() -> None:
    parsed = parse_execution_report("lp-alpha", report(t11="h1", t17="x1", t150="0"))

    assert parsed.received_at.tzinfo is UTC
    assert parsed.received_at <= datetime.now(UTC)

"""What an LP may answer besides an execution report (issue 13, ADR 0007 "What an LP may
answer"): the lenient and the strict FIX 4.4 dictionaries, what a Reject or a Business Message
Reject does to a hedge order, an operator's settlement of a hedge of unknown fate, and the
operator audit chain."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from xml.etree import ElementTree

import pytest
import quickfix as fix

from services.oms.store import operator_audit
from services.oms.stp.hedges import HedgeRow
from services.oms.stp.hedges import HedgeStatus
from services.oms.stp.hedges import SettlementError
from services.oms.stp.hedges import SettlementOutcome
from services.oms.stp.hedges import chase
from services.oms.stp.hedges import on_report
from services.oms.stp.hedges import settlement
from services.oms.stp.lp_dialects import StrictCheck
from services.oms.stp.lp_dialects import write_lenient_dictionary
from services.oms.stp.lp_messages import AskStatus
from services.oms.stp.lp_messages import LpMessage
from services.oms.stp.lp_messages import LpMessageKind
from services.oms.stp.lp_messages import Note
from services.oms.stp.lp_messages import Park
from services.oms.stp.lp_messages import RejectHedge
from services.oms.stp.lp_messages import SentMessage
from services.oms.stp.lp_messages import StatusRefused
from services.oms.stp.lp_messages import effect_of
from services.oms.stp.lp_messages import message_key
from services.oms.stp.lp_messages import parse_message
from services.oms.stp.lp_orders import ExecutionReport
from services.oms.stp.lp_orders import ReportKind
from tests.unit.oms import builders as builders
from tests.unit.oms.builders import HEDGE_ID
from tests.unit.oms.builders import NOW

D = Decimal


def wire(body: str, msg_type: str = "8", seq: int = 8) -> str:
    """A raw FIX 4.4 message from LP-ALPHA with `body` ('|' for SOH) and a right checksum."""
    rest = (
        f"35={msg_type}|34={seq}|49=LP-ALPHA|52=20261206-10:00:00.000|56=TRADINGMESH-OMS|{body}"
    ).replace("|", "\x01")
    raw = f"8=FIX.4.4\x019={len(rest)}\x01{rest}"
    return f"{raw}10={sum(raw.encode()) % 256:03d}\x01"


# ---- the dictionaries -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def lenient(tmp_path_factory: pytest.TempPathFactory) -> fix.DataDictionary:
    path = write_lenient_dictionary(tmp_path_factory.mktemp("fix") / "FIX44-lenient.xml")
    dictionary = fix.DataDictionary(str(path))
    dictionary.checkFieldsHaveValues(False)
    dictionary.checkFieldsOutOfOrder(False)
    dictionary.checkUserDefinedFields(False)
    dictionary.allowUnknownMsgFields(True)
    return dictionary


@pytest.mark.parametrize(
    ("body", "strict_problem"),
    [
        # FIX 4.2's ExecType 2 (fill) on 4.4: the strict dictionary refuses the value.
        (
            "6=1.1|11=h1|14=0.1|17=x1|31=1.1|32=0.1|37=o1|39=2|54=1|55=EURUSD|150=2|151=0|",
            "Value is incorrect (out of range) for this tag: 150",
        ),
        # A fill without LeavesQty, AvgPx or Side: "required" fields some LPs leave out.
        ("11=h1|14=0.1|17=x2|31=1.1|32=0.1|37=o2|39=2|55=EURUSD|150=F|", "Required tag missing"),
        # An empty Text.
        (
            "6=1.1|11=h1|14=0.1|17=x3|31=1.1|32=0.1|37=o3|39=2|54=1|55=EURUSD|58=|150=F|151=0|",
            "Tag specified without a value",
        ),
    ],
)
def test_what_real_lps_send_passes_the_lenient_dictionary_and_not_the_strict_one(
    lenient: fix.DataDictionary, body: str, strict_problem: str
) -> None:
    message = fix.Message(wire(body), lenient, False)

    lenient.validate(message)  # raises if QuickFIX would refuse it before fromApp

    assert StrictCheck().problem(message).startswith(strict_problem)


def test_a_standard_report_passes_both(lenient: fix.DataDictionary) -> None:
    body = "6=1.1|11=h1|14=0.1|17=x1|31=1.1|32=0.1|37=o1|39=2|54=1|55=EURUSD|150=F|151=0|"
    message = fix.Message(wire(body), lenient, False)

    lenient.validate(message)

    assert StrictCheck().problem(message) == ""


def test_the_lenient_dictionary_keeps_the_messages_groups_and_the_headers_types(
    tmp_path: Path,
) -> None:
    path = write_lenient_dictionary(tmp_path / "d.xml")
    root = ElementTree.parse(path).getroot()

    bodies = [e for section in ("messages", "components") for e in root.iter(section)]
    assert [m.get("name") for m in root.iter("message")].count("ExecutionReport") == 1
    assert not [e for b in bodies for e in b.iter() if e.get("required") == "Y"]
    header = next(root.iter("header"))
    assert {f.get("name"): f.get("required") for f in header}["MsgSeqNum"] == "Y"
    types = {f.get("number"): f.get("type") for fields in root.iter("fields") for f in fields}
    assert types["34"] == "SEQNUM"  # header fields: typed as ever
    assert types["150"] == "STRING"  # body fields: free text
    assert types["453"] == "NUMINGROUP"  # groups still parse


# ---- what an answer does --------------------------------------------------------------------


def answer(kind: LpMessageKind, **fields: object) -> LpMessage:
    message = LpMessage("lp-alpha", kind, {"REJECT": "3"}.get(kind.value, "j"), 9, "9:t", NOW)
    return replace(message, **fields)  # type: ignore[arg-type]


ORDER = SentMessage("D", HEDGE_ID, 5)
STATUS_REQUEST = SentMessage("H", HEDGE_ID, 6)


def test_a_session_reject_of_a_new_order_single_rejects_its_hedge_with_the_lps_words() -> None:
    reject = answer(
        LpMessageKind.REJECT, ref_seq_num=5, ref_msg_type="D", reason="5", text="Value is incorrect"
    )

    assert effect_of(reject, ORDER) == RejectHedge(HEDGE_ID, "Value is incorrect (reason 5)")


def test_a_business_reject_of_a_status_request_says_no_answer_will_come() -> None:
    refusal = answer(
        LpMessageKind.BUSINESS_REJECT, cl_ord_id=HEDGE_ID, ref_msg_type="H", reason="3", text="no"
    )

    assert effect_of(refusal, STATUS_REQUEST) == StatusRefused(HEDGE_ID, "no (reason 3)")


def test_a_business_reject_of_a_new_order_single_rejects_its_hedge() -> None:
    refusal = answer(LpMessageKind.BUSINESS_REJECT, cl_ord_id=HEDGE_ID, ref_msg_type="D")

    assert effect_of(refusal, ORDER) == RejectHedge(HEDGE_ID, "no reason given")


def test_a_refusal_of_a_message_the_oms_has_no_record_of_is_parked() -> None:
    reject = answer(LpMessageKind.REJECT, ref_seq_num=41, ref_msg_type="D")

    effect = effect_of(reject, None)

    assert isinstance(effect, Park)
    assert "MsgSeqNum 41" in effect.why


def test_a_refusal_whose_message_type_disagrees_with_ours_is_parked() -> None:
    reject = answer(LpMessageKind.REJECT, ref_seq_num=5, ref_msg_type="H")

    assert isinstance(effect_of(reject, ORDER), Park)


def test_a_refusal_of_our_dont_know_trade_is_noted() -> None:
    reject = answer(LpMessageKind.REJECT, ref_seq_num=7)

    assert isinstance(effect_of(reject, SentMessage("Q", "x", 7)), Note)


def test_an_unasked_cancel_reject_asks_for_the_orders_status() -> None:
    cancel_reject = answer(LpMessageKind.CANCEL_REJECT, cl_ord_id=HEDGE_ID)

    assert isinstance(effect_of(cancel_reject, None), AskStatus)


@pytest.mark.parametrize(
    "kind",
    [
        LpMessageKind.DONT_KNOW_TRADE,
        LpMessageKind.UNREADABLE_REPORT,
        LpMessageKind.REFUSED_BY_SESSION,
        LpMessageKind.OTHER,
    ],
)
def test_what_the_oms_cannot_act_on_is_parked(kind: LpMessageKind) -> None:
    assert isinstance(effect_of(answer(kind, problem="why"), ORDER), Park)


def test_a_business_reject_is_read_with_its_reference_and_reason() -> None:
    raw = wire("45=12|58=unsupported|372=H|379=h1|380=3|", msg_type="j", seq=31)
    message = fix.Message(raw, False)

    parsed = parse_message("lp-alpha", message, NOW)

    assert (parsed.kind, parsed.msg_seq_num, parsed.key) == (
        LpMessageKind.BUSINESS_REJECT,
        31,
        "31:20261206-10:00:00.000",
    )
    assert (parsed.ref_seq_num, parsed.ref_msg_type, parsed.cl_ord_id, parsed.reason) == (
        12,
        "H",
        "h1",
        "3",
    )


def test_a_resent_message_has_the_key_of_its_original() -> None:
    original = fix.Message(wire("45=12|", msg_type="j", seq=31), False)
    resent = fix.Message(
        wire("45=12|", msg_type="j", seq=31).replace(
            "\x0152=20261206-10:00:00.000",
            "\x0152=20261206-10:05:00.000\x01122=20261206-10:00:00.000",
        ),
        False,
    )

    assert message_key(resent) == message_key(original)


# ---- a hedge of unknown fate ----------------------------------------------------------------


def test_a_hedge_whose_provider_refuses_status_requests_is_of_unknown_fate_at_once() -> None:
    sent = builders.hedge(HedgeStatus.SENT)
    just_now = NOW + timedelta(seconds=1)
    window = (timedelta(seconds=10), timedelta(seconds=60))

    assert not chase(sent, None, just_now, *window).unknown
    assert chase(sent, None, just_now, *window, status_refused=True).unknown


def apply(steps: list[ExecutionReport], hedge: HedgeRow) -> HedgeRow:
    for step in steps:
        hedge = on_report(hedge, step, NOW) or hedge
    return hedge


def test_an_operator_settles_a_hedge_filled_in_full_as_the_provider_would_have_reported() -> None:
    sent = builders.hedge(HedgeStatus.SENT)

    steps = settlement(
        sent, SettlementOutcome.FILLED, D("1.20"), D("1.10012"), "phone", "operator:1", NOW
    )

    assert [(s.kind, s.last_quantity, s.last_price, s.execution_id) for s in steps] == [
        (ReportKind.FILL, D("1.20"), D("1.10012"), "operator:1")
    ]
    after = apply(steps, sent)
    assert (after.status, after.filled_quantity, after.average_price) == (
        HedgeStatus.FILLED,
        D("1.20"),
        D("1.10012"),
    )


def test_a_partial_settlement_fills_what_is_missing_and_cancels_the_rest() -> None:
    partly = builders.hedge(
        HedgeStatus.PARTIALLY_FILLED, filled_quantity=D("0.20"), average_price=D("1.1")
    )

    steps = settlement(
        partly, SettlementOutcome.FILLED, D("0.60"), D("1.2"), "statement", "operator:2", NOW
    )

    assert [(s.kind, s.last_quantity) for s in steps] == [
        (ReportKind.FILL, D("0.40")),
        (ReportKind.CANCELLED, D(0)),
    ]
    assert steps[0].last_price == D("1.25")  # 0.2 at 1.1 and 0.4 at 1.25 average 1.2
    after = apply(steps, partly)
    assert (after.status, after.filled_quantity) == (HedgeStatus.CANCELLED, D("0.60"))


def test_a_rejected_settlement_rejects_the_hedge_with_the_operators_words() -> None:
    sent = builders.hedge(HedgeStatus.SENT)

    steps = settlement(
        sent, SettlementOutcome.REJECTED, None, None, "settled: LP refused", "op", NOW
    )

    after = apply(steps, sent)
    assert (after.status, after.status_reason, after.status_message) == (
        HedgeStatus.REJECTED,
        "LP_REJECTED",
        "settled: LP refused",
    )


@pytest.mark.parametrize(
    ("outcome", "filled", "average", "field"),
    [
        (SettlementOutcome.FILLED, D("1.21"), D("1.1"), "filled_quantity"),  # over quantity
        (SettlementOutcome.FILLED, D("0.10"), D("1.1"), "filled_quantity"),  # under filled
        (SettlementOutcome.FILLED, None, D("1.1"), "filled_quantity"),
        (SettlementOutcome.FILLED, D("0.5"), D("1.0000000000001"), "average_price"),  # 13 places
        (SettlementOutcome.FILLED, D("0.20"), D("1.3"), "average_price"),  # nothing more filled
        (SettlementOutcome.FILLED, D("0.30"), D("0.01"), "average_price"),  # no positive rest
        (SettlementOutcome.REJECTED, D("0.5"), None, "filled_quantity"),
    ],
)
def test_a_settlement_the_hedge_cannot_take_names_the_field_at_fault(
    outcome: SettlementOutcome, filled: Decimal | None, average: Decimal | None, field: str
) -> None:
    partly = builders.hedge(
        HedgeStatus.PARTIALLY_FILLED, filled_quantity=D("0.20"), average_price=D("1.1")
    )

    with pytest.raises(SettlementError) as raised:
        settlement(partly, outcome, filled, average, "x", "op", NOW)

    assert raised.value.field == field


def test_an_ended_hedge_cannot_be_settled() -> None:
    with pytest.raises(ValueError, match="ended"):
        settlement(
            builders.hedge(HedgeStatus.FILLED), SettlementOutcome.REJECTED, None, None, "", "", NOW
        )


# ---- the operator audit chain ---------------------------------------------------------------


def test_an_operator_records_hash_seals_every_field_and_the_one_before() -> None:
    record = operator_audit.OperatorRecord(
        sequence=2,
        action="hedge_order.settle",
        entity_type="hedge_order",
        entity_id=HEDGE_ID,
        actor_kind="OPERATOR",
        actor_id="u1",
        reason="phone",
        before='{"status":"SENT"}',
        after='{"status":"FILLED"}',
        created_at=NOW,
        correlation_id="r1",
        previous_hash="a" * 64,
    )

    sealed = operator_audit.record_hash(record)

    assert len(sealed) == 64
    assert operator_audit.record_hash(replace(record, reason="email")) != sealed
    assert operator_audit.record_hash(replace(record, previous_hash="b" * 64)) != sealed
    assert operator_audit.record_hash(replace(record, hash=sealed)) == sealed  # hash excluded

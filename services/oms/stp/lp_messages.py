"""What an LP may answer the OMS's orders besides an ExecutionReport, and what each answer does
(ADR 0007, "What an LP may answer"; issue 13). Pure: no I/O.

The order sessions store every such message raw (`oms.lp_messages`, `report_journal`) before
the STP desk acts on it:

- **Reject (35=3)**, a session-level refusal of one of our messages, names it by RefSeqNum (45);
  the OMS finds what it sent under that number (`oms.lp_sent_messages`, recorded for every
  NewOrderSingle, OrderStatusRequest and DontKnowTrade). **Business Message Reject (35=j)** names
  it by BusinessRejectRefID (379, the ClOrdID for D and H) with RefMsgType (372), or by
  RefSeqNum. A refused NewOrderSingle ends its hedge order REJECTED / LP_REJECTED with the LP's
  text, and the hedge's client orders follow the rules for a rejected hedge. A refused
  OrderStatusRequest tells nothing about the order, but no answer will come: the hedge is
  reported of unknown fate at once (it stays open; the LP's reports, a later status answer or
  an operator settle it). A refusal of anything else (our DontKnowTrade) is noted.
- **OrderCancelReject (35=9)** answers an OrderCancelRequest, which the OMS never sends (hedge
  orders are IOC or FOK): it is noted, and its order asked about.
- **DontKnowTrade (35=Q)** from an LP says it does not know an execution of ours; the OMS sends
  none, so it is parked for an operator. The OMS sends one itself for an execution report about
  an order it never sent (`lp_orders.dont_know_trade`).
- A message the OMS cannot tie to anything of its own, an ExecutionReport it cannot understand
  (`UNREADABLE_REPORT`) and an incoming message its session refused (`REFUSED_BY_SESSION`) are
  **parked**: kept with the reason, counted, alerted on, for an operator; never dropped.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from typing import Final

import quickfix as fix

from services.platform.fix import get_field

__all__ = [
    "AskStatus",
    "Effect",
    "LpMessage",
    "LpMessageKind",
    "Note",
    "Park",
    "RejectHedge",
    "SentMessage",
    "StatusRefused",
    "StoredMessage",
    "effect_of",
    "message_from_row",
    "message_key",
    "message_to_json",
    "parse_message",
    "refused_by_session",
    "unreadable_report",
]

MSG_TYPE, MSG_SEQ_NUM, SENDING_TIME, ORIG_SENDING_TIME = 35, 34, 52, 122
CL_ORD_ID, ORIG_CL_ORD_ID, TEXT, REF_SEQ_NUM, REF_MSG_TYPE = 11, 41, 58, 45, 372
SESSION_REJECT_REASON, REF_TAG_ID = 373, 371
BUSINESS_REJECT_REF_ID, BUSINESS_REJECT_REASON = 379, 380
CXL_REJ_REASON, DK_REASON = 102, 127

NEW_ORDER_SINGLE: Final = "D"
ORDER_STATUS_REQUEST: Final = "H"
DONT_KNOW_TRADE: Final = "Q"


class LpMessageKind(enum.StrEnum):
    REJECT = "REJECT"  # 35=3
    BUSINESS_REJECT = "BUSINESS_REJECT"  # 35=j
    CANCEL_REJECT = "CANCEL_REJECT"  # 35=9
    DONT_KNOW_TRADE = "DONT_KNOW_TRADE"  # 35=Q
    UNREADABLE_REPORT = "UNREADABLE_REPORT"  # an ExecutionReport the OMS cannot understand
    REFUSED_BY_SESSION = "REFUSED_BY_SESSION"  # an incoming message our session rejected
    OTHER = "OTHER"  # an application message the order sessions have no use for

    @property
    def parked_on_arrival(self) -> bool:
        return self in (LpMessageKind.UNREADABLE_REPORT, LpMessageKind.REFUSED_BY_SESSION)


_KINDS: Final = {
    "3": LpMessageKind.REJECT,
    "j": LpMessageKind.BUSINESS_REJECT,
    "9": LpMessageKind.CANCEL_REJECT,
    "Q": LpMessageKind.DONT_KNOW_TRADE,
}


@dataclass(frozen=True)
class LpMessage:
    """A message from an LP's order session that is not a usable ExecutionReport."""

    lp: str
    kind: LpMessageKind
    msg_type: str
    msg_seq_num: int
    key: str  # unique per provider: MsgSeqNum and the original SendingTime
    received_at: datetime
    cl_ord_id: str = ""  # ClOrdID, or BusinessRejectRefID
    ref_seq_num: int | None = None
    ref_msg_type: str = ""
    reason: str = ""  # SessionRejectReason, BusinessRejectReason, CxlRejReason or DKReason
    text: str = ""
    problem: str = ""  # why it is parked, or why the strict dictionary refuses it

    def describe(self) -> str:
        """The LP's refusal in words, for a hedge's status message."""
        words = self.text or "no reason given"
        detail = f"reason {self.reason}" if self.reason else ""
        return f"{words} ({detail})" if detail else words


@dataclass(frozen=True)
class StoredMessage:
    """A message stored in `oms.lp_messages` as row `row_id`, to be applied (`row_id` None: a
    Reject that could not be stored, applied from memory rather than lost)."""

    row_id: int | None
    message: LpMessage


@dataclass(frozen=True)
class SentMessage:
    """One of our messages as `oms.lp_sent_messages` recorded it."""

    msg_type: str
    cl_ord_id: str
    msg_seq_num: int


def _number(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isdigit() else None


def message_key(message: fix.Message) -> str:
    """What identifies a message of a provider across its resends: its MsgSeqNum and its
    original SendingTime (a resend carries it as OrigSendingTime)."""
    header = message.getHeader()
    sent = get_field(header, ORIG_SENDING_TIME) or get_field(header, SENDING_TIME) or ""
    return f"{get_field(header, MSG_SEQ_NUM) or '0'}:{sent}"


def _sequence(message: fix.Message) -> int:
    return _number(get_field(message.getHeader(), MSG_SEQ_NUM)) or 0


def parse_message(lp: str, message: fix.Message, received_at: datetime) -> LpMessage:
    """A Reject, Business Message Reject, OrderCancelReject or DontKnowTrade (anything else is
    OTHER) as the OMS reads it; lenient: whatever is missing stays empty."""
    msg_type = get_field(message.getHeader(), MSG_TYPE) or ""
    kind = _KINDS.get(msg_type, LpMessageKind.OTHER)
    reason_tag = {
        LpMessageKind.REJECT: SESSION_REJECT_REASON,
        LpMessageKind.BUSINESS_REJECT: BUSINESS_REJECT_REASON,
        LpMessageKind.CANCEL_REJECT: CXL_REJ_REASON,
        LpMessageKind.DONT_KNOW_TRADE: DK_REASON,
    }.get(kind)
    if kind is LpMessageKind.BUSINESS_REJECT:
        order = get_field(message, BUSINESS_REJECT_REF_ID) or ""
    else:
        order = get_field(message, CL_ORD_ID) or get_field(message, ORIG_CL_ORD_ID) or ""
    text = get_field(message, TEXT) or ""
    tag = get_field(message, REF_TAG_ID)
    if kind is LpMessageKind.REJECT and tag:
        text = f"{text} (tag {tag})" if text else f"tag {tag}"
    return LpMessage(
        lp=lp,
        kind=kind,
        msg_type=msg_type,
        msg_seq_num=_sequence(message),
        key=message_key(message),
        received_at=received_at,
        cl_ord_id=order,
        ref_seq_num=_number(get_field(message, REF_SEQ_NUM)),
        ref_msg_type=get_field(message, REF_MSG_TYPE) or "",
        reason=(get_field(message, reason_tag) or "") if reason_tag else "",
        text=text,
    )


def unreadable_report(
    lp: str, message: fix.Message, received_at: datetime, problem: str
) -> LpMessage:
    """An ExecutionReport the OMS cannot understand (`problem` says why): parked."""
    return LpMessage(
        lp=lp,
        kind=LpMessageKind.UNREADABLE_REPORT,
        msg_type=get_field(message.getHeader(), MSG_TYPE) or "",
        msg_seq_num=_sequence(message),
        key=message_key(message),
        received_at=received_at,
        cl_ord_id=get_field(message, CL_ORD_ID) or "",
        text=get_field(message, TEXT) or "",
        problem=problem,
    )


def refused_by_session(lp: str, reject: fix.Message, received_at: datetime) -> LpMessage:
    """An incoming message our session refused, as the Reject it sent says (RefSeqNum,
    RefMsgType, reason, text): parked. Keyed by the refused message's number."""
    refused = _number(get_field(reject, REF_SEQ_NUM)) or 0
    reason = get_field(reject, SESSION_REJECT_REASON) or ""
    text = get_field(reject, TEXT) or ""
    tag = get_field(reject, REF_TAG_ID)
    return LpMessage(
        lp=lp,
        kind=LpMessageKind.REFUSED_BY_SESSION,
        msg_type=get_field(reject, REF_MSG_TYPE) or "",
        msg_seq_num=refused,
        key=f"refused:{refused}:{message_key(reject)}",
        received_at=received_at,
        ref_seq_num=refused,
        ref_msg_type=get_field(reject, REF_MSG_TYPE) or "",
        reason=reason,
        text=text,
        problem=f"our session refused it: {text or 'no text'}"
        + (f" (tag {tag})" if tag else "")
        + (f", SessionRejectReason {reason}" if reason else ""),
    )


def message_to_json(message: LpMessage) -> dict[str, Any]:
    """What `oms.lp_messages` keeps in its columns, as a mapping of them."""
    return {
        "liquidity_provider_id": message.lp,
        "message_key": message.key,
        "kind": message.kind.value,
        "msg_type": message.msg_type,
        "msg_seq_num": message.msg_seq_num,
        "cl_ord_id": message.cl_ord_id,
        "ref_seq_num": message.ref_seq_num,
        "ref_msg_type": message.ref_msg_type,
        "reason": message.reason,
        "text": message.text,
        "validation_error": message.problem,
        "received_at": message.received_at,
    }


def message_from_row(row: Mapping[Any, Any]) -> LpMessage:
    """The message a row of `oms.lp_messages` holds."""
    return LpMessage(
        lp=row["liquidity_provider_id"],
        kind=LpMessageKind(row["kind"]),
        msg_type=row["msg_type"],
        msg_seq_num=int(row["msg_seq_num"]),
        key=row["message_key"],
        received_at=row["received_at"],
        cl_ord_id=row["cl_ord_id"],
        ref_seq_num=None if row["ref_seq_num"] is None else int(row["ref_seq_num"]),
        ref_msg_type=row["ref_msg_type"],
        reason=row["reason"],
        text=row["text"],
        problem=row["validation_error"],
    )


# -- what a message does (pure) --------------------------------------------------------------------


@dataclass(frozen=True)
class RejectHedge:
    """The LP refused the hedge order's NewOrderSingle: REJECTED / LP_REJECTED with `text`."""

    hedge_order_id: str
    text: str


@dataclass(frozen=True)
class StatusRefused:
    """The LP refused an OrderStatusRequest about the hedge order: no answer will come."""

    hedge_order_id: str
    text: str


@dataclass(frozen=True)
class AskStatus:
    """Something about the order is off (an OrderCancelReject we did not ask for): ask for
    its status."""

    hedge_order_id: str
    why: str


@dataclass(frozen=True)
class Note:
    """Nothing to do but say it (the journal keeps it)."""

    why: str


@dataclass(frozen=True)
class Park:
    """Nothing the OMS can do: an operator must look."""

    why: str


Effect = RejectHedge | StatusRefused | AskStatus | Note | Park


def effect_of(message: LpMessage, refused: SentMessage | None) -> Effect:
    """What `message` does; `refused` is our message it refers to, as recorded (found by its
    RefSeqNum, else by its BusinessRejectRefID and RefMsgType), None when none is known."""
    kind = message.kind
    if kind.parked_on_arrival:
        return Park(message.problem or "parked on arrival")
    if kind is LpMessageKind.DONT_KNOW_TRADE:
        return Park("the provider does not know an execution, and the OMS sends none")
    if kind is LpMessageKind.OTHER:
        return Park(f"a message of type {message.msg_type!r} the order sessions do not expect")
    if kind is LpMessageKind.CANCEL_REJECT:
        if message.cl_ord_id:
            return AskStatus(
                message.cl_ord_id, "an OrderCancelReject for a cancel the OMS never sent"
            )
        return Note("an OrderCancelReject naming no order, for a cancel the OMS never sent")
    if refused is None:
        number = "?" if message.ref_seq_num is None else str(message.ref_seq_num)
        return Park(
            f"it refuses a message of ours (MsgSeqNum {number}"
            + (f", {message.ref_msg_type}" if message.ref_msg_type else "")
            + (f", id {message.cl_ord_id}" if message.cl_ord_id else "")
            + ") that the OMS has no record of"
        )
    if message.ref_msg_type and message.ref_msg_type != refused.msg_type:
        return Park(
            f"it refuses a {message.ref_msg_type} as MsgSeqNum {refused.msg_seq_num}, but our"
            f" message {refused.msg_seq_num} was a {refused.msg_type}"
        )
    if refused.msg_type == NEW_ORDER_SINGLE:
        return RejectHedge(refused.cl_ord_id, message.describe())
    if refused.msg_type == ORDER_STATUS_REQUEST:
        return StatusRefused(refused.cl_ord_id, message.describe())
    return Note(f"the provider refused our {refused.msg_type} for {refused.cl_ord_id or '-'}")

"""How an LP simulator says no at the FIX level: session Rejects (35=3), Business Message Rejects
(35=j), and the strict data-dictionary check of the `strict-dictionary` trait.

The strict check is QuickFIX's own (`DataDictionary.validate`) with every option on; the
acceptor itself is configured leniently (simulators/lp/__main__.py), so the trait can be
switched at run time. A message that fails it is answered with a Reject whose
SessionRejectReason and RefTagID say what is wrong, as QuickFIX would have said it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import quickfix as fix
import quickfix44 as fix44

MSG_SEQ_NUM, MSG_TYPE, TEXT = 34, 35, 58
REF_SEQ_NUM, REF_TAG_ID, REF_MSG_TYPE, SESSION_REJECT_REASON = 45, 371, 372, 373
BUSINESS_REJECT_REF_ID, BUSINESS_REJECT_REASON = 379, 380

# SessionRejectReason (373)
INVALID_TAG_NUMBER, REQUIRED_TAG_MISSING, TAG_NOT_DEFINED_FOR_MESSAGE = "0", "1", "2"
TAG_WITHOUT_VALUE, VALUE_IS_INCORRECT, INCORRECT_DATA_FORMAT = "4", "5", "6"
INVALID_MSG_TYPE, TAG_REPEATED, TAG_OUT_OF_ORDER, GROUP_COUNT_MISMATCH = "11", "13", "14", "16"
OTHER = "99"

# BusinessRejectReason (380)
UNSUPPORTED_MESSAGE_TYPE, APPLICATION_NOT_AVAILABLE = "3", "4"

# What QuickFIX's validation raises, and the SessionRejectReason it stands for.
_REASONS: Final[tuple[tuple[type[Exception], str], ...]] = (
    (fix.InvalidTagNumber, INVALID_TAG_NUMBER),
    (fix.RequiredTagMissing, REQUIRED_TAG_MISSING),
    (fix.TagNotDefinedForMessage, TAG_NOT_DEFINED_FOR_MESSAGE),
    (fix.NoTagValue, TAG_WITHOUT_VALUE),
    (fix.IncorrectTagValue, VALUE_IS_INCORRECT),
    (fix.IncorrectDataFormat, INCORRECT_DATA_FORMAT),
    (fix.InvalidMessageType, INVALID_MSG_TYPE),
    (fix.RepeatedTag, TAG_REPEATED),
    (fix.TagOutOfOrder, TAG_OUT_OF_ORDER),
    (fix.RepeatingGroupCountMismatch, GROUP_COUNT_MISMATCH),
)


def dictionary_path() -> Path:
    """FIX44.xml, which the quickfix package installs under <prefix>/share/quickfix."""
    return Path(sys.prefix) / "share" / "quickfix" / "FIX44.xml"


@dataclass(frozen=True)
class Violation:
    """Why a message fails the strict check: the tag (0: none in particular), the
    SessionRejectReason and QuickFIX's text."""

    tag: int
    reason: str
    text: str


class StrictDictionary:
    """FIX 4.4 as QuickFIX's data dictionary has it, every check on."""

    def __init__(self, path: Path | None = None) -> None:
        self._dictionary = fix.DataDictionary(str(path or dictionary_path()))
        self._dictionary.checkFieldsOutOfOrder(True)
        self._dictionary.checkFieldsHaveValues(True)
        self._dictionary.checkUserDefinedFields(True)
        self._dictionary.allowUnknownMsgFields(False)

    def violation(self, message: fix.Message) -> Violation | None:
        """None when `message` is valid FIX 4.4."""
        try:
            self._dictionary.validate(message)
        except fix.FIXException as error:
            reason = next((r for kind, r in _REASONS if isinstance(error, kind)), OTHER)
            tag = getattr(error, "field", 0)
            return Violation(tag if isinstance(tag, int) else 0, reason, str(error))
        return None


def _get(message: fix.FieldMap, tag: int) -> str:
    return str(message.getField(tag)) if message.isSetField(tag) else ""


def session_reject(refused: fix.Message, reason: str, text: str, tag: int = 0) -> fix.Message:
    """A Reject (35=3) of `refused`: RefSeqNum its MsgSeqNum, RefMsgType its MsgType, RefTagID
    `tag` (when not 0), SessionRejectReason `reason`, Text `text`."""
    header = refused.getHeader()
    reject = fix44.Reject()
    reject.setField(fix.StringField(REF_SEQ_NUM, _get(header, MSG_SEQ_NUM) or "0"))
    reject.setField(fix.StringField(REF_MSG_TYPE, _get(header, MSG_TYPE)))
    if tag:
        reject.setField(fix.StringField(REF_TAG_ID, str(tag)))
    reject.setField(fix.StringField(SESSION_REJECT_REASON, reason))
    reject.setField(fix.StringField(TEXT, text))
    return reject


def business_reject(refused: fix.Message, ref_id: str, reason: str, text: str) -> fix.Message:
    """A Business Message Reject (35=j) of `refused`: RefSeqNum its MsgSeqNum, RefMsgType its
    MsgType, BusinessRejectRefID `ref_id` (its ClOrdID, MDReqID...), BusinessRejectReason
    `reason`, Text `text`."""
    header = refused.getHeader()
    reject = fix44.BusinessMessageReject()
    reject.setField(fix.StringField(REF_SEQ_NUM, _get(header, MSG_SEQ_NUM) or "0"))
    reject.setField(fix.StringField(REF_MSG_TYPE, _get(header, MSG_TYPE)))
    if ref_id:
        reject.setField(fix.StringField(BUSINESS_REJECT_REF_ID, ref_id))
    reject.setField(fix.StringField(BUSINESS_REJECT_REASON, reason))
    reject.setField(fix.StringField(TEXT, text))
    return reject

"""The FIX 4.4 the OMS's order sessions accept, and the FIX 4.4 they check it against (ADR 0007,
"What an LP may answer").

QuickFIX validates every incoming message against its session's data dictionary before any
callback runs, and answers one that fails with a session Reject (35=3): the message never reaches
`fromApp`, is never stored, and the provider will not send it again. Real LPs speak dialects of
FIX 4.4 (ExecType 1 and 2 from FIX 4.2, "required" fields left out, enum values of their own),
so a strict dictionary would lose real fills. The order sessions therefore parse with a
**lenient** dictionary written from QuickFIX's own FIX44.xml (`write_lenient_dictionary`): the
same messages, fields and repeating groups (so groups still parse), but no field of a message
or component is required, and every body field is free text without an enum (QuickFIX's type
and value checks pass; the OMS parses values itself, exactly, as decimals). The header and
trailer fields keep their types: the session layer depends on them.

What the strict dictionary would have refused is then found by `StrictCheck` (QuickFIX's
FIX44.xml with the checks the sessions used to run), after the message is in the OMS's hands:
such a message is stored with the reason, counted and alerted on, and still understood where it
can be (`lp_orders.parse_execution_report`).

Incoming messages the lenient dictionary still refuses (an unknown MsgType, a broken repeating
group) are answered with a Reject by QuickFIX; the router sees that Reject go out (`toAdmin`) and
parks it for an operator (`lp_messages.REFUSED_BY_SESSION`).
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Final

import quickfix as fix

__all__ = [
    "LENIENT_SESSION_SETTINGS",
    "STANDARD_DICTIONARY",
    "StrictCheck",
    "write_lenient_dictionary",
]

STANDARD_DICTIONARY: Final = Path(sys.prefix) / "share" / "quickfix" / "FIX44.xml"

# Types that decide how a message is split into fields and groups: kept as they are.
_STRUCTURAL_TYPES: Final = frozenset({"NUMINGROUP", "LENGTH", "DATA", "XMLDATA"})

# The session settings that go with the lenient dictionary: an empty value, fields out of
# order and fields the dictionary does not place in the message are no reason to refuse.
LENIENT_SESSION_SETTINGS: Final = {
    "ValidateFieldsHaveValues": "N",
    "ValidateFieldsOutOfOrder": "N",
    "ValidateUserDefinedFields": "N",
    "AllowUnknownMsgFields": "Y",
}


def write_lenient_dictionary(target: Path, standard: Path = STANDARD_DICTIONARY) -> Path:
    """Writes the lenient form of `standard` (see the module doc) to `target`; returns it."""
    tree = ElementTree.parse(standard)
    root = tree.getroot()
    envelope = {
        element.get("name")
        for part in ("header", "trailer")
        for section in root.iter(part)
        for element in section.iter()
        if element.tag == "field"
    }
    for section in ("messages", "components"):
        for container in root.iter(section):
            for element in container.iter():
                if element.tag in ("field", "group", "component"):
                    element.set("required", "N")
    for fields in root.iter("fields"):
        for field in fields.iter("field"):
            if field.get("name") in envelope or field.get("type") in _STRUCTURAL_TYPES:
                continue
            field.set("type", "STRING")
            for value in list(field):
                field.remove(value)
    target.parent.mkdir(parents=True, exist_ok=True)
    tree.write(target, encoding="utf-8", xml_declaration=True)
    return target


class StrictCheck:
    """FIX 4.4 as QuickFIX's FIX44.xml has it, with the checks the order sessions ran before
    they parsed leniently (user-defined fields, tag 5000 and up, are not checked)."""

    def __init__(self, standard: Path = STANDARD_DICTIONARY) -> None:
        self._dictionary = fix.DataDictionary(str(standard))
        self._dictionary.checkUserDefinedFields(False)

    def problem(self, message: fix.Message) -> str:
        """Why the strict dictionary refuses `message`, as QuickFIX words it; '' when it
        passes."""
        try:
            self._dictionary.validate(message)
        except fix.FIXException as error:
            return str(error) or type(error).__name__
        return ""

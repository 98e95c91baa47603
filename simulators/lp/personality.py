"""An LP simulator's "personality": the dialect of FIX 4.4 it speaks, as real LPs do.

A personality is a set of traits, combinable; the empty set is the simulator's standard
behaviour. It is chosen per simulator at start (`TM_LPSIM_PERSONALITY`, comma-separated) and
changed at run time through the control port (`PUT /v1/personality`). The traits:

    strict-dictionary  every incoming application message (and the Logon) is validated strictly
                       against FIX 4.4 (QuickFIX's data dictionary with every check on: fields
                       out of order, empty values, user-defined and unknown fields); one that
                       fails gets a session Reject (35=3) with the reason and is not processed
    limit-only         a NewOrderSingle that is not a limit order (40=2) gets a session Reject
                       (35=3, RefMsgType D, RefSeqNum the order's MsgSeqNum, RefTagID 40,
                       SessionRejectReason 5 "Value is incorrect"); a limit order is filled in
                       full at its limit price, whatever the LP quotes
    status-bmr         every OrderStatusRequest gets a Business Message Reject (35=j,
                       RefMsgType H, BusinessRejectRefID the ClOrdID, BusinessRejectReason 3
                       "Unsupported message type")
    fix42-exectype     fills are reported with the FIX 4.2 ExecTypes 1 (partial fill) and
                       2 (fill) instead of FIX 4.4's F (trade)
    no-market-data     every MarketDataRequest gets a Business Message Reject (35=j,
                       RefMsgType V, BusinessRejectRefID the MDReqID, BusinessRejectReason 4
                       "Application not available"); switched on, it also drops the
                       subscriptions already made, so they go silent

Pure: no FIX, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


class Trait(Enum):
    STRICT_DICTIONARY = "strict-dictionary"
    LIMIT_ONLY = "limit-only"
    STATUS_BMR = "status-bmr"
    FIX42_EXECTYPE = "fix42-exectype"
    NO_MARKET_DATA = "no-market-data"


class UnknownTraitError(ValueError):
    """A trait name the simulator does not know; the message lists the ones it does."""


@dataclass(frozen=True)
class Personality:
    """A set of traits; `Personality()` is the standard behaviour."""

    traits: frozenset[Trait] = frozenset()

    @classmethod
    def parse(cls, names: Iterable[str]) -> Personality:
        """From trait names (blank ones ignored); an unknown name is an UnknownTraitError."""
        known = {trait.value: trait for trait in Trait}
        wanted = [name.strip() for name in names if name.strip()]
        unknown = sorted({name for name in wanted if name not in known})
        if unknown:
            raise UnknownTraitError(
                f"unknown trait {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(frozenset(known[name] for name in wanted))

    @classmethod
    def from_text(cls, text: str) -> Personality:
        """From a comma-separated list, e.g. `limit-only,status-bmr` (empty: standard)."""
        return cls.parse(text.split(","))

    def has(self, trait: Trait) -> bool:
        return trait in self.traits

    def names(self) -> list[str]:
        """The trait names, sorted (the control port's and the logs' form)."""
        return sorted(trait.value for trait in self.traits)

    def __str__(self) -> str:
        return ",".join(self.names()) or "standard"

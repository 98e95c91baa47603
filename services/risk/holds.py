"""Reservations: free margin spent by decisions whose effect the copies have not seen yet.

The risk service answers from copies fed by events, so between approving an order and seeing its
position (or approving a withdrawal and seeing its ledger entry) the copies still show the free
margin as unspent. Two decisions in that gap could both spend it: 20 withdrawals racing a market
order, each approved against the same free margin, would leave the account under-margined and
the margin watcher would stop it out. A reservation closes the gap: every approval holds what it
spends until the event that shows it reaches the copies, and every later decision deducts what is
held. Decisions run one at a time on the service's event loop, so no two can miss each other;
with several instances, the callers send every decision about an account to the same one
(ADR 0017 "Account affinity").

- An approved order (placed or triggered, adding exposure) holds its required margin until its
  trades are in the copies (each trade releases its share of the order's quantity; a trade is
  applied after its fill's position event, ADR 0007), or it ends without them (rejected,
  cancelled, expired), or it comes to rest (a working limit or stop order holds no margin).
- An approved withdrawal holds its amount until its ledger entry reaches the copies.
- Whatever is not released lapses after `lifetime` (an order or a debit that was never
  committed, an event lost to a restart of this service): reservations live only in memory.

Pure: no I/O; the caller passes the clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from dataclasses import replace
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Final

from tradingmesh.trading.money import exact_sum

__all__ = ["DEFAULT_LIFETIME", "HoldKind", "Holds", "Reserved"]

_ZERO: Final = Decimal(0)
DEFAULT_LIFETIME: Final = timedelta(seconds=60)


class HoldKind(enum.Enum):
    ORDER = "order"  # margin an approved order will use once filled
    WITHDRAWAL = "withdrawal"  # money an approved withdrawal takes from the balance


@dataclass(frozen=True, slots=True)
class _Hold:
    account_id: str
    amount: Decimal  # in the account currency
    quantity: Decimal  # an order's lots still to fill (the amount is for these); 0 otherwise
    expires: datetime


@dataclass(frozen=True, slots=True)
class Reserved:
    """What an account has reserved now, in its currency."""

    margin: Decimal = _ZERO  # by orders
    withdrawals: Decimal = _ZERO

    @property
    def total(self) -> Decimal:
        return exact_sum(self.margin, self.withdrawals)


_NOTHING: Final = Reserved()
_Key = tuple[HoldKind, str]


class Holds:
    """The reservations of every account, by (kind, order or withdrawal id)."""

    def __init__(self, lifetime: timedelta = DEFAULT_LIFETIME) -> None:
        self.lifetime = lifetime
        self._held: dict[_Key, _Hold] = {}
        self._by_account: dict[str, set[_Key]] = {}

    def __len__(self) -> int:
        return len(self._held)

    # -- taking --------------------------------------------------------------------------------

    def hold_order(
        self, account_id: str, order_id: str, margin: Decimal, quantity: Decimal, now: datetime
    ) -> None:
        """Holds `margin` for the `quantity` lots an approved order still has to fill; a new
        check of the same order (e.g. its trigger) replaces the earlier hold."""
        if margin <= 0 or quantity <= 0:
            self.release_order(order_id)
            return
        self._put((HoldKind.ORDER, order_id), _Hold(account_id, margin, quantity, now))

    def hold_withdrawal(
        self, account_id: str, withdrawal_id: str, amount: Decimal, now: datetime
    ) -> None:
        """Holds an approved withdrawal's amount; the same withdrawal again replaces it."""
        self._put((HoldKind.WITHDRAWAL, withdrawal_id), _Hold(account_id, amount, _ZERO, now))

    def _put(self, key: _Key, hold: _Hold) -> None:
        self._drop(key)
        self._held[key] = replace(hold, expires=hold.expires + self.lifetime)
        self._by_account.setdefault(hold.account_id, set()).add(key)

    # -- releasing -----------------------------------------------------------------------------

    def order_filled(self, order_id: str, quantity: Decimal) -> None:
        """A trade of the order reached the copies: its share of the hold is released."""
        key = (HoldKind.ORDER, order_id)
        hold = self._held.get(key)
        if hold is None:
            return
        left = hold.quantity - quantity
        if left <= 0:
            self._drop(key)
            return
        # The margin of the lots left, in proportion (28 digits: a reservation, not money booked).
        self._held[key] = replace(hold, amount=hold.amount * left / hold.quantity, quantity=left)

    def release_order(self, order_id: str) -> None:
        self._drop((HoldKind.ORDER, order_id))

    def release_withdrawal(self, withdrawal_id: str) -> None:
        self._drop((HoldKind.WITHDRAWAL, withdrawal_id))

    def _drop(self, key: _Key) -> None:
        hold = self._held.pop(key, None)
        if hold is None:
            return
        keys = self._by_account.get(hold.account_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_account[hold.account_id]

    # -- reading -------------------------------------------------------------------------------

    def reserved(
        self, account_id: str, now: datetime, *, excluding_withdrawal: str | None = None
    ) -> Reserved:
        """The account's reservations that have not lapsed (lapsed ones are forgotten), without
        the withdrawal `excluding_withdrawal` (a retry of it replaces its own hold)."""
        keys = self._by_account.get(account_id)
        if not keys:
            return _NOTHING
        margin: list[Decimal] = []
        withdrawals: list[Decimal] = []
        for key in list(keys):
            hold = self._held[key]
            if hold.expires <= now:
                self._drop(key)
                continue
            kind, ident = key
            if kind is HoldKind.ORDER:
                margin.append(hold.amount)
            elif ident != excluding_withdrawal:
                withdrawals.append(hold.amount)
        return Reserved(exact_sum(*margin), exact_sum(*withdrawals))

"""What the risk service knows, as plain immutable values: its copies of other domains' data
(accounts, groups, instruments, positions, trades, quotes) and its own (limits).

No I/O here: `store.py` reads and writes these from `risk.*`, `copies.py` builds them from events,
`quotes.py` from the price stream. They are frozen, so a reader (a check, a margin pass) never sees
one half-changed; a change replaces the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from services.platform import schedule
from services.platform.enums import PositionMode
from services.platform.enums import Side
from services.platform.schedule import Session
from tradingmesh.trading.money import divide
from tradingmesh.trading.money import exact_difference
from tradingmesh.trading.money import exact_sum

__all__ = [
    "Account",
    "AccountLimits",
    "Group",
    "GroupInstrument",
    "Instrument",
    "Position",
    "PositionMode",
    "Quote",
    "Side",
    "UnbookedTrade",
]

_ZERO: Final = Decimal(0)
_TWO: Final = Decimal(2)


@dataclass(frozen=True, slots=True)
class Account:
    """A trading account as risk knows it. `balance` is the ledger balance after entry
    `ledger_sequence`; `status` is the account service's (ACTIVE, CLOSE_ONLY, DISABLED, CLOSED)."""

    id: str
    user_id: str
    group_id: str
    currency: str
    position_mode: PositionMode
    status: str
    version: int
    balance: Decimal = _ZERO
    ledger_sequence: int = 0


@dataclass(frozen=True, slots=True)
class Group:
    """A client group's margin terms: levels in percent (e.g. 100 and 50)."""

    id: str
    currency: str
    leverage: int
    margin_call_level: Decimal
    stop_out_level: Decimal
    version: int


@dataclass(frozen=True, slots=True)
class GroupInstrument:
    """One instrument's settings in one group; None means no such limit or override."""

    group_id: str
    symbol: str
    enabled: bool
    max_order_size: Decimal | None
    max_position: Decimal | None
    margin_rate: Decimal | None
    version: int


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    base_currency: str
    quote_currency: str
    contract_size: Decimal
    margin_rate: Decimal | None
    sessions: tuple[Session, ...]
    halted: bool
    version: int

    def is_open(self, now: datetime) -> bool:
        """Inside one of its sessions at `now` (`schedule.is_open`, as pricing's TRADING)."""
        return schedule.is_open(self.sessions, now)


@dataclass(frozen=True, slots=True)
class Position:
    """An OMS position. Closed positions are kept by the store (a late older event must not
    reopen them) but never held in memory."""

    id: str
    account_id: str
    symbol: str
    side: Side
    quantity: Decimal
    open_price: Decimal
    open_time: datetime
    version: int
    is_open: bool = True

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side is Side.BUY else self.quantity.copy_negate()


@dataclass(frozen=True, slots=True)
class UnbookedTrade:
    """A trade's money the ledger has not booked yet: realized P&L and commission, each zero once
    booked (or when the trade is not yet seen)."""

    trade_id: str
    account_id: str
    order_id: str
    realized_pnl: Decimal
    commission: Decimal

    @property
    def amount(self) -> Decimal:
        """What the trade will change the balance by once booked."""
        return exact_difference(self.realized_pnl, self.commission)


@dataclass(frozen=True, slots=True)
class Quote:
    """A group's price of an instrument (with markup), and the raw LP prices behind it (the
    quote's provenance), for exposure at the raw mid."""

    bid: Decimal
    ask: Decimal
    raw_bid: Decimal
    raw_ask: Decimal
    time: datetime
    version: int

    @property
    def mid(self) -> Decimal:
        return divide(exact_sum(self.bid, self.ask), _TWO)

    @property
    def raw_mid(self) -> Decimal:
        return divide(exact_sum(self.raw_bid, self.raw_ask), _TWO)


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """AccountRiskLimits: 0 / None means no limit."""

    max_open_positions: int = 0
    max_open_orders: int = 0
    max_gross_notional: Decimal | None = None


NO_LIMITS: Final = AccountLimits()

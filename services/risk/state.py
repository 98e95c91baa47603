"""The risk service's working set in memory: every copy the pre-trade check and the margin
watcher read, indexed the way they read it.

The stores (`risk.*`) are the durable truth; this is loaded from them at start and changed only
after a change committed there (an event applied, a limit set), so a check answers from memory in
microseconds. Everything runs on the service's one event loop: no locks, and values are
replaced, never changed in place.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from typing import Final

from services.risk.holds import Holds
from services.risk.model import NO_LIMITS
from services.risk.model import Account
from services.risk.model import AccountLimits
from services.risk.model import Group
from services.risk.model import GroupInstrument
from services.risk.model import Instrument
from services.risk.model import Position
from services.risk.model import Quote
from services.risk.model import UnbookedTrade
from tradingmesh.trading.margin import RiskStatus
from tradingmesh.trading.money import exact_sum

__all__ = ["RiskState"]

_ZERO: Final = Decimal(0)


@dataclass
class RiskState:
    accounts: dict[str, Account] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    group_instruments: dict[tuple[str, str], GroupInstrument] = field(default_factory=dict)
    instruments: dict[str, Instrument] = field(default_factory=dict)
    limits: dict[str, AccountLimits] = field(default_factory=dict)
    # The watcher's margin status per account; absent means OK.
    statuses: dict[str, RiskStatus] = field(default_factory=dict)
    # The latest price per (group id, symbol), and per symbol the newest of any group (for the
    # raw mid, which does not depend on the group).
    quotes: dict[tuple[str, str], Quote] = field(default_factory=dict)
    raw_quotes: dict[str, Quote] = field(default_factory=dict)
    # Net STP coverage at LPs per symbol, in lots (+ long).
    coverage: dict[str, Decimal] = field(default_factory=dict)
    # Open positions only.
    positions: dict[str, Position] = field(default_factory=dict)
    _by_account: dict[str, dict[str, Position]] = field(default_factory=dict)
    _holders: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    _pairs: dict[tuple[str, str], str] = field(default_factory=dict)
    # Free margin spent by approved orders and withdrawals the copies do not show yet.
    holds: Holds = field(default_factory=Holds)
    # Per account, by trade id.
    _unbooked: dict[str, dict[str, UnbookedTrade]] = field(default_factory=dict)

    # -- reference data ------------------------------------------------------------------------

    def put_account(self, account: Account) -> None:
        self.accounts[account.id] = account

    def put_group(self, group: Group) -> None:
        self.groups[group.id] = group

    def put_group_instrument(self, settings: GroupInstrument) -> None:
        self.group_instruments[(settings.group_id, settings.symbol)] = settings

    def put_instrument(self, instrument: Instrument) -> None:
        self.instruments[instrument.symbol] = instrument
        self._pairs[(instrument.base_currency, instrument.quote_currency)] = instrument.symbol

    def pair(self, base: str, quote: str) -> str | None:
        """The symbol quoting `base` in `quote` (EURUSD for EUR, USD), if there is one."""
        return self._pairs.get((base, quote))

    def limits_of(self, account_id: str) -> AccountLimits:
        return self.limits.get(account_id, NO_LIMITS)

    def status_of(self, account_id: str) -> RiskStatus:
        return self.statuses.get(account_id, RiskStatus.OK)

    # -- positions -----------------------------------------------------------------------------

    def put_position(self, position: Position) -> None:
        """Takes the position as it is now (open or closed); the caller decided it is newer."""
        self._drop_position(position.id)
        if not position.is_open or position.quantity <= 0:
            return
        self.positions[position.id] = position
        self._by_account.setdefault(position.account_id, {})[position.id] = position
        self._holders[position.symbol].add(position.account_id)

    def _drop_position(self, position_id: str) -> None:
        old = self.positions.pop(position_id, None)
        if old is None:
            return
        held = self._by_account.get(old.account_id, {})
        held.pop(position_id, None)
        if not held:
            self._by_account.pop(old.account_id, None)
        if not any(p.symbol == old.symbol for p in held.values()):
            self._holders[old.symbol].discard(old.account_id)

    def positions_of(self, account_id: str) -> Iterable[Position]:
        return self._by_account.get(account_id, {}).values()

    def accounts_with_positions(self) -> list[str]:
        return list(self._by_account)

    def holds_positions(self, account_id: str) -> bool:
        return account_id in self._by_account

    def holders_of(self, symbol: str) -> set[str]:
        """The accounts with an open position in `symbol`."""
        return set(self._holders.get(symbol, ()))

    # -- trades not yet booked -----------------------------------------------------------------

    def put_unbooked(self, trade: UnbookedTrade) -> None:
        """Takes what is still unbooked of a trade; a trade with nothing left is forgotten."""
        held = self._unbooked.setdefault(trade.account_id, {})
        held.pop(trade.trade_id, None)
        if trade.realized_pnl or trade.commission:
            held[trade.trade_id] = trade
        elif not held:
            del self._unbooked[trade.account_id]

    def unbooked_amount(self, account_id: str) -> Decimal:
        """The P&L less commission of the account's trades that the ledger has not booked."""
        held = self._unbooked.get(account_id)
        if not held:
            return _ZERO  # what exact_sum() of nothing is: Decimal(0)
        return exact_sum(*(t.amount for t in held.values()))

    def unbooked_of(self, account_id: str) -> list[UnbookedTrade]:
        return list(self._unbooked.get(account_id, {}).values())

    # -- prices --------------------------------------------------------------------------------

    def put_quote(self, group_id: str, symbol: str, quote: Quote) -> bool:
        """Takes a price unless an equal or newer one is held (prices may arrive out of order
        after a restart); True if it was taken. Newer is by price time, then by version: a
        restarted pricing counts its versions from 1 again."""
        key = (group_id, symbol)
        held = self.quotes.get(key)
        if held is not None and (held.time, held.version) >= (quote.time, quote.version):
            return False
        self.quotes[key] = quote
        newest = self.raw_quotes.get(symbol)
        if newest is None or newest.time <= quote.time:
            self.raw_quotes[symbol] = quote
        return True

    def add_coverage(self, symbol: str, signed_quantity: Decimal) -> None:
        self.coverage[symbol] = exact_sum(self.coverage.get(symbol, _ZERO), signed_quantity)

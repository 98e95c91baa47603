"""An account valued at live prices: each position's unrealized P&L, margin and notional, and
the account's figures (risk.proto: equity, used and free margin, margin level).

Pure: it reads a `RiskState` and a clock, nothing else. The arithmetic is the shared one
(`tradingmesh.trading.margin` and `.money`, ADR 0007): amounts are computed exactly in the
instrument's quote currency, converted at the mid of the group's price of the pair joining the
quote and account currencies, and rounded once. Longs are valued at the bid (where they close)
and hold margin at the ask (where they open), shorts the other way round.

A position is valued at the latest price its group was sent, however old: the watcher must value
every position, and pricing publishes only changes, so a quiet market's price is old but right. A
price counts as *live* (for valuing an order and for choosing what a stop-out can close) only
when it is at most `max_quote_age` old. A position without any price, or whose currency cannot be
converted, is left out of the figures and makes the valuation incomplete.

The margin watcher's passes compute the same figures with `pass_valuation`, which repeats this
arithmetic operation for operation without the per-position overhead; a change here is a change
there (tests/unit/risk/test_pass_valuation.py compares the two).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Final

from services.risk.model import Account
from services.risk.model import Group
from services.risk.model import Instrument
from services.risk.model import Position
from services.risk.model import Quote
from services.risk.model import Side
from services.risk.state import RiskState
from tradingmesh.trading.margin import AccountMargin
from tradingmesh.trading.margin import MarginRule
from tradingmesh.trading.margin import RiskStatus
from tradingmesh.trading.margin import StopOutCandidate
from tradingmesh.trading.margin import account_margin
from tradingmesh.trading.margin import margin_rule
from tradingmesh.trading.margin import notional
from tradingmesh.trading.margin import position_pnl
from tradingmesh.trading.margin import required_margin
from tradingmesh.trading.margin import risk_status
from tradingmesh.trading.money import IDENTITY
from tradingmesh.trading.money import Conversion
from tradingmesh.trading.money import exact_sum
from tradingmesh.trading.money import round_money

__all__ = [
    "AccountValuation",
    "PositionValue",
    "close_price",
    "conversion",
    "conversion_quote",
    "effective_balance",
    "is_live",
    "open_price",
    "rule_for",
    "value_account",
    "value_position",
]

_ZERO: Final = Decimal(0)


def is_live(quote: Quote | None, now: datetime, max_age: timedelta | None) -> bool:
    """A price recent enough to trade on; `max_age` None accepts any age."""
    return quote is not None and (max_age is None or now - quote.time <= max_age)


def open_price(side: Side, quote: Quote) -> Decimal:
    """Where a position of `side` opens (and is margined): a buy at the ask, a sell at the bid."""
    return quote.ask if side is Side.BUY else quote.bid


def close_price(side: Side, quote: Quote) -> Decimal:
    """Where a position of `side` closes: a long at the bid, a short at the ask."""
    return quote.bid if side is Side.BUY else quote.ask


def conversion(
    state: RiskState, group_id: str, quote_currency: str, account_currency: str
) -> Conversion | None:
    """How amounts in `quote_currency` become `account_currency`, at the mid of the group's price
    of the joining pair: multiply by QUOTE/ACCOUNT, divide by ACCOUNT/QUOTE. None when no such
    pair is priced for the group (cross rates are not used, ADR 0007)."""
    if quote_currency == account_currency:
        return IDENTITY
    source = conversion_quote(state, group_id, quote_currency, account_currency)
    if source is None:
        return None
    quote, inverse = source
    return Conversion(quote.mid, inverse=inverse)


def conversion_quote(
    state: RiskState, group_id: str, quote_currency: str, account_currency: str
) -> tuple[Quote, bool] | None:
    """The group's price whose mid converts between two different currencies, and whether it
    divides (the pair is quoted ACCOUNT/QUOTE); the directly quoted pair first."""
    direct = state.pair(quote_currency, account_currency)
    if direct is not None and (quote := state.quotes.get((group_id, direct))) is not None:
        return quote, False
    inverse = state.pair(account_currency, quote_currency)
    if inverse is not None and (quote := state.quotes.get((group_id, inverse))) is not None:
        return quote, True
    return None


def rule_for(state: RiskState, group: Group, instrument: Instrument) -> MarginRule:
    """The margin share of the instrument in the group (`margin.margin_rule`)."""
    settings = state.group_instruments.get((group.id, instrument.symbol))
    group_rate = settings.margin_rate if settings is not None else None
    return margin_rule(group.leverage, instrument.margin_rate or None, group_rate)


def effective_balance(state: RiskState, account: Account) -> Decimal:
    """The ledger balance plus what executed trades will book but the ledger has not yet."""
    return exact_sum(account.balance, state.unbooked_amount(account.id))


@dataclass(frozen=True, slots=True)
class PositionValue:
    """One open position at the group's current price, amounts in the account currency."""

    position: Position
    priced: bool
    live: bool
    unrealized_pnl: Decimal = _ZERO
    used_margin: Decimal = _ZERO
    notional: Decimal = _ZERO


def value_position(
    state: RiskState,
    account: Account,
    group: Group,
    position: Position,
    now: datetime,
    max_age: timedelta | None,
) -> PositionValue:
    instrument = state.instruments.get(position.symbol)
    quote = state.quotes.get((group.id, position.symbol))
    if instrument is None or quote is None:
        return PositionValue(position, priced=False, live=False)
    convert = conversion(state, group.id, instrument.quote_currency, account.currency)
    if convert is None:
        return PositionValue(position, priced=False, live=False)
    size = instrument.contract_size
    close = close_price(position.side, quote)
    pnl = round_money(
        convert.to_account(
            position_pnl(
                position.side is Side.BUY, position.open_price, close, position.quantity, size
            )
        ),
        account.currency,
    )
    at = open_price(position.side, quote)
    margin = required_margin(
        position.quantity, size, at, rule_for(state, group, instrument), account.currency, convert
    )
    value = round_money(convert.to_account(notional(position.quantity, size, at)), account.currency)
    return PositionValue(
        position,
        priced=True,
        live=is_live(quote, now, max_age),
        unrealized_pnl=pnl,
        used_margin=margin,
        notional=value,
    )


@dataclass(frozen=True, slots=True)
class AccountValuation:
    account: Account
    group: Group
    positions: tuple[PositionValue, ...]
    figures: AccountMargin

    @property
    def complete(self) -> bool:
        """Every open position could be valued."""
        return all(p.priced for p in self.positions)

    @property
    def gross_notional(self) -> Decimal:
        return exact_sum(*(p.notional for p in self.positions))

    @property
    def status(self) -> RiskStatus:
        """The exact margin status against the group's levels (never the rounded level)."""
        figures, group = self.figures, self.group
        return risk_status(
            figures.equity, figures.used_margin, group.margin_call_level, group.stop_out_level
        )

    def stop_out_candidates(self) -> list[StopOutCandidate]:
        """The positions a stop-out can close now: those with a live price."""
        return [
            StopOutCandidate(v.position.id, v.unrealized_pnl, v.position.open_time)
            for v in self.positions
            if v.live
        ]


def value_account(
    state: RiskState, account: Account, now: datetime, max_age: timedelta | None
) -> AccountValuation | None:
    """The account's positions and figures; None when its group is not known (yet)."""
    group = state.groups.get(account.group_id)
    if group is None:
        return None
    values = tuple(
        value_position(state, account, group, position, now, max_age)
        for position in state.positions_of(account.id)
    )
    figures = account_margin(
        effective_balance(state, account),
        (v.unrealized_pnl for v in values),
        (v.used_margin for v in values),
    )
    return AccountValuation(account, group, values, figures)

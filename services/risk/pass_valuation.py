"""The margin watcher's valuation of many accounts, one after the other: each account's equity,
used margin and margin status, the very figures `valuation.value_account` gives, for a fraction
of its cost.

`value_account` is made for one account: every position looks up its instrument, its price, the
group's settings and the conversion pair, builds a margin rule and a conversion, and calls the
SDK's functions, which build further objects. A pass over 100,000 accounts spent most of its time
there. Here, what all positions of one symbol in one (group, account currency) share is looked up
once, as a `_Leg`: the prices each side closes and opens at, the contract size, the margin rule,
the conversion and the currency's rounding exponent. Each position then costs only its
arithmetic.

The arithmetic is the SDK's (`tradingmesh.trading.margin` and `.money`, ADR 0007) operation for
operation: the same Decimal operations on the same operands, in the same order, in the same
contexts (products and sums exact, trapping Inexact; divisions to 60 digits; each amount rounded
once, half to even; the status from the exact level, never the rounded one). Left out are only
operations that cannot change a result or raise: the product with 1 that `exact_product` starts
from (1 x a has a's coefficient and exponent), the conversion at the identity (x 1, of a value
that already fits 60 digits), and `round_money` turning -0.00 into 0.00 (the amounts only go
into sums that start from Decimal(0), where a zero's sign never shows: x + -0 is x + 0, and
0 + -0 is 0). So every figure and status is identical to `value_account`'s, digit for digit, and
a position the SDK cannot value (a product needing more than 60 digits raises decimal.Inexact)
raises here too. What a margin decision does not need (each position's notional, free margin,
the rounded level, whether a price is live) is not computed. tests/unit/risk/
test_pass_valuation.py compares the two on varied random states: a change to that arithmetic
(the SDK's or `valuation`'s) must be made here too, and that test says where it was not.

Legs are kept while the state's objects they were made from stay: after `refresh()` (the watcher
calls it whenever the event loop had a turn, when prices may have changed), a leg is checked
again at its first use by looking up its group, instrument, the group's settings, its price and
its conversion price and comparing them by identity (the state replaces values, never changes
them in place).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN
from decimal import Decimal
from decimal import getcontext
from decimal import setcontext
from typing import Final

from services.risk.model import Account
from services.risk.model import Group
from services.risk.model import Quote
from services.risk.model import Side
from services.risk.state import RiskState
from services.risk.valuation import conversion_quote
from services.risk.valuation import rule_for
from tradingmesh.trading.margin import RiskStatus
from tradingmesh.trading.margin import margin_level

# The SDK's own contexts, so that both paths compute in the very same ones.
from tradingmesh.trading.money import _DIVIDE
from tradingmesh.trading.money import _EXACT
from tradingmesh.trading.money import Conversion
from tradingmesh.trading.money import minor_unit

__all__ = ["AccountFigures", "PassValuer"]

_ZERO: Final = Decimal(0)
_HUNDRED: Final = Decimal(100)
_BUY: Final = Side.BUY
_OK: Final = RiskStatus.OK
_MARGIN_CALL: Final = RiskStatus.MARGIN_CALL
_STOP_OUT: Final = RiskStatus.STOP_OUT


@dataclass(frozen=True, slots=True)
class AccountFigures:
    """What a margin decision rests on: `AccountMargin`'s equity and used margin, and the
    status they give against the group's levels."""

    equity: Decimal
    used_margin: Decimal
    status: RiskStatus

    @property
    def margin_level(self) -> Decimal | None:
        return margin_level(self.equity, self.used_margin)


class _Leg:
    """What every position of one symbol shares in one group and account currency, and the
    state's objects it was made from (compared by identity in `fresh`)."""

    __slots__ = (
        "buy",
        "checked",
        "conversion",
        "convert_rate",
        "currency",
        "exponent",
        "group",
        "instrument",
        "inverse",
        "key",
        "leverage",
        "priced",
        "quote",
        "sell",
        "settings",
        "share",
        "size",
    )

    def __init__(self, state: RiskState, group: Group, currency: str, symbol: str) -> None:
        self.checked = 0
        self.group, self.currency, self.key = group, currency, (group.id, symbol)
        # What it is made from, looked up as `value_position` does.
        instrument = self.instrument = state.instruments.get(symbol)
        quote = self.quote = state.quotes.get(self.key)
        self.settings = state.group_instruments.get(self.key)
        self.conversion = self._conversion(state)
        self.priced = False
        # (close, open): a long closes at the bid and opens (is margined) at the ask.
        self.buy = self.sell = (_ZERO, _ZERO)
        self.size = _ZERO
        self.share: Decimal | None = None  # the margin rate; None: divide by the leverage
        self.leverage = _ZERO
        self.convert_rate: Decimal | None = None  # None: the identity
        self.inverse = False
        self.exponent = _ZERO
        if instrument is None or quote is None:
            return
        if instrument.quote_currency != currency:
            if self.conversion is None:
                return
            price, inverse = self.conversion
            convert = Conversion(price.mid, inverse=inverse)  # as `valuation.conversion`
            self.convert_rate, self.inverse = convert.rate, convert.inverse
        rule = rule_for(state, group, instrument)
        self.share = rule.rate
        self.leverage = Decimal(rule.leverage)
        self.size = instrument.contract_size
        self.buy = (quote.bid, quote.ask)
        self.sell = (quote.ask, quote.bid)
        self.exponent = Decimal(1).scaleb(-minor_unit(currency))
        self.priced = True

    def _conversion(self, state: RiskState) -> tuple[Quote, bool] | None:
        instrument = self.instrument
        if instrument is None or instrument.quote_currency == self.currency:
            return None
        return conversion_quote(state, self.group.id, instrument.quote_currency, self.currency)

    def fresh(self, state: RiskState, group: Group) -> bool:
        """Whether the state still holds the very objects the leg was made from."""
        if not (
            self.group is group
            and state.instruments.get(self.key[1]) is self.instrument
            and state.quotes.get(self.key) is self.quote
            and state.group_instruments.get(self.key) is self.settings
        ):
            return False
        held, now = self.conversion, self._conversion(state)
        if held is None or now is None:
            return held is now
        return held[0] is now[0] and held[1] is now[1]


class PassValuer:
    """Values accounts of `state` as `value_account` does, keeping what positions share. Call
    `refresh()` after every await: the state may have changed meanwhile."""

    def __init__(self, state: RiskState) -> None:
        self.state = state
        self._legs: dict[tuple[str, str], dict[str, _Leg]] = {}
        self._generation = 0
        self._context = _EXACT.copy()
        self._equity = self._used = _ZERO

    def refresh(self) -> None:
        """Check every leg again before its next use."""
        self._generation += 1

    def figures(self, account: Account) -> AccountFigures | None:
        status = self.status(account)
        if status is None:
            return None
        return AccountFigures(self._equity, self._used, status)

    def status(self, account: Account) -> RiskStatus | None:
        """The account's exact margin status; None when its group is unknown or a position has
        no price (or no conversion): no decision on partial figures. (Its equity and used
        margin are kept for `figures`, rather than returned: nothing to allocate per account.)"""
        state = self.state
        group = state.groups.get(account.group_id)
        if group is None:
            return None
        currency = account.currency
        legs = self._legs.get((group.id, currency))
        if legs is None:
            legs = self._legs[(group.id, currency)] = {}
        generation = self._generation
        unbooked = state.unbooked_amount(account.id)
        complete = True
        buy, half_even, divide, times = _BUY, ROUND_HALF_EVEN, _DIVIDE.divide, _DIVIDE.multiply
        # The operators below compute in the SDK's exact context (a copy of it, so that its
        # flags are this valuer's own), set for this synchronous stretch only.
        saved = getcontext()
        setcontext(self._context)
        try:
            # effective_balance: exact_sum(balance, unbooked)
            balance = _ZERO + account.balance + unbooked
            unrealized = used = _ZERO
            for position in state.positions_of(account.id):
                leg = legs.get(position.symbol)
                if leg is None or leg.checked != generation:
                    leg = self._leg(legs, leg, group, currency, position.symbol)
                if not leg.priced:
                    complete = False
                    continue
                quantity = position.quantity
                size = leg.size
                # position_pnl: exact_product(close - open, quantity, size) for a long,
                # (open - close) for a short; notional: exact_product(quantity, size, at).
                if position.side is buy:
                    close, at = leg.buy
                    pnl = (close - position.open_price) * quantity * size
                else:
                    close, at = leg.sell
                    pnl = (position.open_price - close) * quantity * size
                rate = leg.convert_rate  # Conversion.to_account
                if rate is not None:
                    pnl = divide(pnl, rate) if leg.inverse else times(pnl, rate)
                exponent = leg.exponent  # round_money (see the module's docstring on -0)
                unrealized = unrealized + pnl.quantize(exponent, half_even, _DIVIDE)
                # required_margin: the rule's share of the notional, converted, rounded.
                margin = quantity * size * at
                share = leg.share
                margin = margin * share if share is not None else divide(margin, leg.leverage)
                if rate is not None:
                    margin = divide(margin, rate) if leg.inverse else times(margin, rate)
                used = used + margin.quantize(exponent, half_even, _DIVIDE)
            if not complete:
                return None
            equity = _ZERO + balance + unrealized  # AccountMargin.equity: exact_sum
            # risk_status: compared exactly, equity x 100 < level x used.
            if used <= 0:
                status = _OK
            elif equity * _HUNDRED < group.stop_out_level * used:
                status = _STOP_OUT
            elif equity * _HUNDRED < group.margin_call_level * used:
                status = _MARGIN_CALL
            else:
                status = _OK
        finally:
            setcontext(saved)
        self._equity, self._used = equity, used
        return status

    def _leg(
        self, legs: dict[str, _Leg], held: _Leg | None, group: Group, currency: str, symbol: str
    ) -> _Leg:
        """The symbol's leg, checked against the state now: kept if made from the same
        objects, else made again."""
        leg = held if held is not None and held.fresh(self.state, group) else None
        if leg is None:
            leg = legs[symbol] = _Leg(self.state, group, currency, symbol)
        leg.checked = self._generation
        return leg

"""Margin: what a position or order must hold, an account's margin figures, stop-out order.

Definitions (risk/v1/risk.proto, account/v1 ClientGroup, ADR 0007):

- required margin = quantity (lots) x contract size x price x margin share, converted to the
  account currency and rounded once (half to even). The margin share is the client group's
  instrument margin_rate when set (it replaces 1/leverage); otherwise the stricter of
  1/leverage and the instrument's own margin_rate (so leverage cannot undercut the broker's
  floor for a volatile instrument, and a higher margin_rate is never loosened by leverage).
  The price is the one the position would open at now: the ask for a long, the bid for a short,
  the same price the pre-trade check values an order at, so the check's estimate equals the
  margin the fill then holds.
- equity = balance + unrealized P&L; free margin = equity - used margin;
- margin level = equity / used margin x 100, none when no margin is used. It is shown rounded
  DOWN (toward minus infinity) to 2 decimals, so a level shown at or above a threshold of two
  decimals is really at or above it; decisions (margin call, stop-out) compare exactly.
- stop-out closes the position with the largest loss first (lowest unrealized P&L), the older
  one first on a tie, one at a time, re-evaluating after each close.

It lives in the SDK so the OMS, the risk service and partners' code compute margin the same way
(ADR 0007).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR
from decimal import Decimal
from typing import Final

from tradingmesh.risk.v1 import risk_pb2
from tradingmesh.trading.money import IDENTITY
from tradingmesh.trading.money import Conversion
from tradingmesh.trading.money import divide
from tradingmesh.trading.money import exact_difference
from tradingmesh.trading.money import exact_product
from tradingmesh.trading.money import exact_sum
from tradingmesh.trading.money import round_money

__all__ = [
    "AccountMargin",
    "MarginRule",
    "RiskStatus",
    "StopOutCandidate",
    "account_margin",
    "added_exposure",
    "margin_level",
    "margin_rule",
    "next_to_close",
    "notional",
    "position_pnl",
    "required_margin",
    "risk_status",
]

_ZERO: Final = Decimal(0)
_HUNDRED: Final = Decimal(100)
_LEVEL_EXPONENT: Final = Decimal("0.01")


@dataclass(frozen=True)
class MarginRule:
    """The share of a notional held as margin: `rate` when set, else 1/`leverage` (kept as a
    division, since 1/3 has no exact decimal)."""

    leverage: int
    rate: Decimal | None = None

    def __post_init__(self) -> None:
        if self.leverage < 1:
            raise ValueError(f"leverage is at least 1, not {self.leverage}")
        if self.rate is not None and not Decimal(0) < self.rate <= 1:
            raise ValueError(f"a margin rate is above 0 and at most 1, not {self.rate}")

    def margin_of(self, notional_value: Decimal) -> Decimal:
        if self.rate is not None:
            return exact_product(notional_value, self.rate)
        return divide(notional_value, Decimal(self.leverage))


def margin_rule(
    leverage: int, instrument_rate: Decimal | None, group_rate: Decimal | None
) -> MarginRule:
    """The rule for one instrument in one client group: the group's instrument margin_rate if
    set; else the instrument's margin_rate if it is stricter than 1/leverage; else 1/leverage.
    An instrument rate of 0 or none means "leverage only"."""
    if group_rate is not None:
        return MarginRule(leverage, group_rate)
    # rate > 1/leverage  <=>  rate x leverage > 1, compared exactly.
    if instrument_rate is not None and exact_product(instrument_rate, Decimal(leverage)) > 1:
        return MarginRule(leverage, instrument_rate)
    return MarginRule(leverage)


def notional(quantity: Decimal, contract_size: Decimal, price: Decimal) -> Decimal:
    """quantity (lots) x contract size x price, in the instrument's quote currency, exactly."""
    return exact_product(quantity, contract_size, price)


def position_pnl(
    long: bool,
    open_price: Decimal,
    close_price: Decimal,
    quantity: Decimal,
    contract_size: Decimal,
) -> Decimal:
    """The P&L of closing `quantity` lots of a position opened at `open_price` at `close_price`,
    in the instrument's quote currency, exactly (unrounded): (close - open) x quantity x
    contract size for a long position, (open - close) x ... for a short one. Convert it to the
    account currency, then round once."""
    move = (
        exact_difference(close_price, open_price)
        if long
        else exact_difference(open_price, close_price)
    )
    return exact_product(move, quantity, contract_size)


def required_margin(
    quantity: Decimal,
    contract_size: Decimal,
    price: Decimal,
    rule: MarginRule,
    currency: str,
    conversion: Conversion = IDENTITY,
) -> Decimal:
    """The margin `quantity` lots hold at `price`, in the account currency, rounded once."""
    in_quote_currency = rule.margin_of(notional(quantity, contract_size, price))
    return round_money(conversion.to_account(in_quote_currency), currency)


def added_exposure(net_position: Decimal, order_quantity: Decimal) -> Decimal:
    """Netting mode: the lots by which an order (signed: + buy, - sell) grows the absolute
    position (signed: + long, - short); 0 for an order that only reduces it. A reversing order
    adds only what exceeds the position it closes, and only when that exceeds the old size. In
    hedging mode an order that opens adds its whole quantity and a closing order adds none."""
    after = exact_sum(net_position, order_quantity).copy_abs()
    return max(_ZERO, exact_difference(after, net_position.copy_abs()))


def margin_level(equity: Decimal, used_margin: Decimal) -> Decimal | None:
    """equity / used margin x 100, rounded down to 2 decimals; None when no margin is used."""
    if used_margin <= 0:
        return None
    level = divide(exact_product(equity, _HUNDRED), used_margin)
    return level.quantize(_LEVEL_EXPONENT, rounding=ROUND_FLOOR)


@dataclass(frozen=True)
class AccountMargin:
    """An account's margin figures, in its currency (risk/v1 AccountRisk)."""

    balance: Decimal
    unrealized_pnl: Decimal
    equity: Decimal
    used_margin: Decimal
    free_margin: Decimal
    margin_level: Decimal | None

    @property
    def withdrawable(self) -> Decimal:
        """What can be withdrawn: the smaller of balance and free margin, never below zero
        (AccountSummary.withdrawable, AccountRisk.withdrawable)."""
        return max(Decimal(0), min(self.balance, self.free_margin))

    def with_added_margin(self, margin: Decimal) -> AccountMargin:
        """The figures if an order holding `margin` more were filled at its valuation price
        (CheckOrderResponse.free_margin_after, margin_level_after)."""
        return _figures(self.balance, self.unrealized_pnl, exact_sum(self.used_margin, margin))


def account_margin(
    balance: Decimal, unrealized_pnls: Iterable[Decimal], used_margins: Iterable[Decimal]
) -> AccountMargin:
    """The figures of an account from its ledger balance and, per open position, its
    (rounded) unrealized P&L and used margin."""
    return _figures(balance, exact_sum(*unrealized_pnls), exact_sum(*used_margins))


def _figures(balance: Decimal, unrealized: Decimal, used: Decimal) -> AccountMargin:
    equity = exact_sum(balance, unrealized)
    return AccountMargin(
        balance=balance,
        unrealized_pnl=unrealized,
        equity=equity,
        used_margin=used,
        free_margin=exact_difference(equity, used),
        margin_level=margin_level(equity, used),
    )


class RiskStatus(enum.StrEnum):
    """An account's margin state (risk/v1 AccountRiskStatus)."""

    OK = "OK"
    MARGIN_CALL = "MARGIN_CALL"
    STOP_OUT = "STOP_OUT"

    def to_proto(self) -> risk_pb2.AccountRiskStatus.ValueType:
        return risk_pb2.AccountRiskStatus.Value(f"ACCOUNT_RISK_STATUS_{self.value}")


def _below(equity: Decimal, used_margin: Decimal, level: Decimal) -> bool:
    # equity / used x 100 < level  <=>  equity x 100 < level x used (used > 0), exactly.
    return exact_product(equity, _HUNDRED) < exact_product(level, used_margin)


def risk_status(
    equity: Decimal, used_margin: Decimal, margin_call_level: Decimal, stop_out_level: Decimal
) -> RiskStatus:
    """OK with no margin used or at/above the margin-call level; STOP_OUT below the stop-out
    level; MARGIN_CALL in between. Compared exactly, never on the rounded level."""
    if used_margin <= 0:
        return RiskStatus.OK
    if _below(equity, used_margin, stop_out_level):
        return RiskStatus.STOP_OUT
    if _below(equity, used_margin, margin_call_level):
        return RiskStatus.MARGIN_CALL
    return RiskStatus.OK


@dataclass(frozen=True)
class StopOutCandidate:
    """An open position the margin watcher could close, valued at live prices. Positions
    without a live price are not candidates (they cannot be closed now)."""

    position_id: str
    unrealized_pnl: Decimal
    open_time: datetime


def next_to_close(candidates: Iterable[StopOutCandidate]) -> StopOutCandidate | None:
    """The position a stop-out closes next: the largest loss (lowest unrealized P&L) first; on
    equal P&L the older position, then the lower id, so every pass chooses the same one. None
    when there is nothing left to close."""
    return min(
        candidates,
        key=lambda c: (c.unrealized_pnl, c.open_time, c.position_id),
        default=None,
    )

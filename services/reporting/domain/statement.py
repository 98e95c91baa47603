"""A statement's arithmetic (ADR 0012, "Statements"): the summary that reconciles to the
ledger, the positions open at the period's end replayed from their fills, and their valuation.

Pure: the store reads the ledger's sums and the fills; this module adds them up and checks them.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from tradingmesh.trading.margin import AccountMargin
from tradingmesh.trading.margin import MarginRule
from tradingmesh.trading.margin import account_margin
from tradingmesh.trading.margin import position_pnl
from tradingmesh.trading.margin import required_margin
from tradingmesh.trading.money import IDENTITY
from tradingmesh.trading.money import Conversion
from tradingmesh.trading.money import average_price
from tradingmesh.trading.money import exact_difference
from tradingmesh.trading.money import exact_sum
from tradingmesh.trading.money import round_money

__all__ = [
    "HeldPosition",
    "PositionFill",
    "PositionValuation",
    "ReconciliationError",
    "StatementTotals",
    "replay_position",
    "summarize",
    "value_position",
]

_ZERO: Final = Decimal(0)

# Which ledger reasons make up each total of the summary (reporting.proto, Statement).
DEPOSITS: Final = frozenset({"DEPOSIT"})
WITHDRAWALS: Final = frozenset({"WITHDRAWAL", "WITHDRAWAL_REVERSAL"})
REALIZED: Final = frozenset({"REALIZED_PNL", "STOP_OUT_LOSS"})
STOP_OUT: Final = frozenset({"STOP_OUT_LOSS"})
COMMISSIONS: Final = frozenset({"COMMISSION"})
SWAPS: Final = frozenset({"SWAP"})
ADJUSTMENTS: Final = frozenset({"ADJUSTMENT", "NEGATIVE_BALANCE_CORRECTION"})
NEGATIVE_BALANCE: Final = frozenset({"NEGATIVE_BALANCE_CORRECTION"})
KNOWN_REASONS: Final = DEPOSITS | WITHDRAWALS | REALIZED | COMMISSIONS | SWAPS | ADJUSTMENTS


class ReconciliationError(ValueError):
    """The ledger's sums do not explain its balances: a bug or a corrupt ledger, never shown as a
    statement."""


@dataclass(frozen=True)
class StatementTotals:
    opening_balance: Decimal
    closing_balance: Decimal
    deposits: Decimal
    withdrawals: Decimal
    realized_pnl: Decimal
    stop_out_loss: Decimal
    commissions: Decimal
    swaps: Decimal
    adjustments: Decimal
    negative_balance_corrections: Decimal


def summarize(
    opening_balance: Decimal, closing_balance: Decimal, sums_by_reason: Mapping[str, Decimal]
) -> StatementTotals:
    """The summary of a period from the balance before it, the balance at its end and the signed
    sum of the period's ledger entries per reason; checked: closing = opening + every total."""
    unknown = set(sums_by_reason) - KNOWN_REASONS
    if unknown:
        raise ReconciliationError(f"ledger reasons without a statement line: {sorted(unknown)}")

    def total(reasons: Iterable[str]) -> Decimal:
        return exact_sum(_ZERO, *(sums_by_reason.get(r, _ZERO) for r in sorted(reasons)))

    totals = StatementTotals(
        opening_balance=opening_balance,
        closing_balance=closing_balance,
        deposits=total(DEPOSITS),
        withdrawals=total(WITHDRAWALS),
        realized_pnl=total(REALIZED),
        stop_out_loss=total(STOP_OUT),
        commissions=total(COMMISSIONS),
        swaps=total(SWAPS),
        adjustments=total(ADJUSTMENTS),
        negative_balance_corrections=total(NEGATIVE_BALANCE),
    )
    explained = exact_sum(
        opening_balance,
        totals.deposits,
        totals.withdrawals,
        totals.realized_pnl,
        totals.commissions,
        totals.swaps,
        totals.adjustments,
    )
    if explained != closing_balance:
        raise ReconciliationError(
            f"opening {opening_balance} + movements gives {explained}, the ledger says "
            f"{closing_balance}"
        )
    return totals


@dataclass(frozen=True)
class PositionFill:
    """One fill of a position, as replayed: side, lots, price, its effect and commission."""

    side: str  # "BUY" | "SELL"
    quantity: Decimal
    price: Decimal
    effect: str  # OPEN | INCREASE | REDUCE | CLOSE | REVERSE
    commission: Decimal
    fill_time: datetime


@dataclass(frozen=True)
class HeldPosition:
    """A position as it stood at a moment: its side, open quantity and average open price."""

    side: str
    quantity: Decimal
    open_price: Decimal
    commission: Decimal


def replay_position(fills: Sequence[PositionFill]) -> HeldPosition | None:
    """The position after `fills` (oldest first), as the OMS builds it (ADR 0007): OPEN and
    INCREASE average the open price, REDUCE keeps it, CLOSE ends the position, REVERSE keeps the
    id and opens the rest on the other side at the fill's price. None when nothing is open."""
    side = ""
    quantity = _ZERO
    price = _ZERO
    commission = _ZERO
    for fill in fills:
        commission = exact_sum(commission, fill.commission)
        if quantity == 0 or fill.effect == "OPEN":
            side, quantity, price = fill.side, fill.quantity, fill.price
        elif fill.side == side:
            price = average_price(quantity, price, fill.quantity, fill.price)
            quantity = exact_sum(quantity, fill.quantity)
        elif fill.quantity < quantity:
            quantity = exact_difference(quantity, fill.quantity)
        elif fill.quantity == quantity:
            quantity = _ZERO
        else:
            side, quantity, price = fill.side, exact_difference(fill.quantity, quantity), fill.price
    if quantity == 0:
        return None
    return HeldPosition(side=side, quantity=quantity, open_price=price, commission=commission)


@dataclass(frozen=True)
class PositionValuation:
    """An open position valued at a price: unrealized P&L and margin, in the account currency."""

    valuation_price: Decimal
    unrealized_pnl: Decimal
    margin: Decimal


def value_position(
    held: HeldPosition,
    bid: Decimal,
    ask: Decimal,
    contract_size: Decimal,
    rule: MarginRule,
    currency: str,
    conversion: Conversion = IDENTITY,
) -> PositionValuation:
    """Valued as the risk service values it (ADR 0007): a long closes at the bid and holds
    margin at the ask, a short the other way round; converted, then rounded once."""
    long = held.side == "BUY"
    close_at = bid if long else ask
    pnl = position_pnl(long, held.open_price, close_at, held.quantity, contract_size)
    margin = required_margin(
        held.quantity, contract_size, ask if long else bid, rule, currency, conversion
    )
    return PositionValuation(
        valuation_price=close_at,
        unrealized_pnl=round_money(conversion.to_account(pnl), currency),
        margin=margin,
    )


def closing_figures(
    closing_balance: Decimal, valuations: Iterable[PositionValuation]
) -> AccountMargin:
    """Equity, margin, free margin and margin level at the period's end."""
    values = list(valuations)
    return account_margin(
        closing_balance, [v.unrealized_pnl for v in values], [v.margin for v in values]
    )

"""The withdrawal check (RiskInternalService.ReserveWithdrawal): pure decision logic over
`RiskState`.

A withdrawal may take at most the account's withdrawable amount: the smaller of its balance and
its free margin from live prices (`AccountMargin.withdrawable`), less what is reserved at that
moment (`holds.py`: the margin of approved orders not filled yet, withdrawals approved and not
yet in the ledger copy; a retry of the same withdrawal does not count against itself). Money
that backs open positions stays where it is. An account with a position that cannot be valued
(no price) withdraws nothing until it can: its free margin is not known.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Final

from services.platform.access import account_not_found
from services.platform.errors import DomainError
from services.risk.state import RiskState
from services.risk.valuation import AccountValuation
from services.risk.valuation import value_account
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.trading.money import exact_difference
from tradingmesh.trading.money import money_text

__all__ = ["WithdrawalDecision", "decide_withdrawal"]

_R = ErrorReason
_ZERO: Final = Decimal(0)


@dataclass(frozen=True, slots=True)
class WithdrawalDecision:
    """A ReserveWithdrawalResponse without the figures' message."""

    approved: bool
    reason: ErrorReason.ValueType
    message: str
    withdrawable: Decimal  # before this withdrawal, reservations deducted
    valuation: AccountValuation


def decide_withdrawal(
    state: RiskState,
    account_id: str,
    withdrawal_id: str,
    amount: Decimal,
    now: datetime,
    max_quote_age: timedelta | None,
) -> WithdrawalDecision:
    """Decides the withdrawal; raises DomainError only when there is nothing to decide on (an
    account risk does not know, or whose group it does not know yet)."""
    account = state.accounts.get(account_id)
    if account is None:
        raise account_not_found(account_id)
    valuation = value_account(state, account, now, max_quote_age)
    if valuation is None:
        raise DomainError(
            _R.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
            f"the client group of account {account_id} is not known to the risk service yet",
            retry_after=timedelta(seconds=1),
        )
    currency = account.currency
    if not valuation.complete:
        unpriced = sorted({v.position.symbol for v in valuation.positions if not v.priced})
        return WithdrawalDecision(
            False,
            _R.ERROR_REASON_PRICE_UNAVAILABLE,
            f"no price for the account's open positions in {', '.join(unpriced)}:"
            " its free margin cannot be known",
            _ZERO,
            valuation,
        )
    reserved = state.holds.reserved(account_id, now, excluding_withdrawal=withdrawal_id)
    figures = valuation.figures
    withdrawable = max(
        _ZERO,
        min(
            exact_difference(figures.balance, reserved.withdrawals),
            exact_difference(figures.free_margin, reserved.total),
        ),
    )
    if amount > withdrawable:
        held = (
            f" ({money_text(reserved.total, currency)} {currency} is held by orders and"
            " withdrawals in progress)"
            if reserved.total
            else ""
        )
        return WithdrawalDecision(
            False,
            _R.ERROR_REASON_INSUFFICIENT_FUNDS,
            f"{money_text(amount, currency)} {currency} exceeds the withdrawable"
            f" {money_text(withdrawable, currency)} {currency}: the balance less the margin"
            f" that backs open positions{held}",
            withdrawable,
            valuation,
        )
    return WithdrawalDecision(True, _R.ERROR_REASON_UNSPECIFIED, "", withdrawable, valuation)

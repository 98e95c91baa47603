"""The pre-trade check (RiskInternalService.CheckOrder): pure decision logic over `RiskState`.

In the contract's order, the first refusal wins:

1. the instrument halted (INSTRUMENT_HALTED) or outside its sessions (MARKET_CLOSED), for every
   order, reducing or not;
2. the account's status (ACCOUNT_DISABLED): an account that is not ACTIVE (CLOSE_ONLY, DISABLED,
   CLOSED) and an order that is not reducing (the contract exempts reducing orders from the
   status; the OMS, which owns order entry, may refuse more for a DISABLED account);
3. the account in stop-out (ACCOUNT_IN_STOP_OUT) and the order not reducing;

   an order that only reduces a position is approved from here on (required margin "0");

4. the group's instrument settings: order size (MAX_ORDER_SIZE_EXCEEDED) and the position after
   the order (POSITION_LIMIT_EXCEEDED; netting: its absolute size, hedging: the sum of every
   open position in the instrument plus the order);
5. the account's AccountRiskLimits (ACCOUNT_LIMIT_EXCEEDED): open orders (a new order, purpose
   PLACE), open positions (an order that opens one), gross notional (needs prices, so it comes
   after the price check);
6. prices (PRICE_UNAVAILABLE): the order needs a valuation price (its own price, else the live
   ask for a buy, bid for a sell), its currency a conversion, and every open position of the
   account a price, or the figures would be wrong;
7. margin (INSUFFICIENT_MARGIN): the margin the order adds once filled (netting: only the lots
   by which it grows the position, `added_exposure`; hedging: its whole quantity unless it closes
   a position) against the account's free margin less what approved orders and withdrawals
   still hold (`holds.py`); the server reserves an approved order's margin the same way.

"Reducing" means the order adds no exposure: netting, a side opposite to the position and at most
its size; hedging, it names an open position of the account on the other side, at most its size.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Final

import grpc

from services.platform.access import account_not_found
from services.platform.errors import DomainError
from services.risk.model import Account
from services.risk.model import Instrument
from services.risk.model import PositionMode
from services.risk.model import Side
from services.risk.state import RiskState
from services.risk.valuation import AccountValuation
from services.risk.valuation import conversion
from services.risk.valuation import is_live
from services.risk.valuation import open_price
from services.risk.valuation import rule_for
from services.risk.valuation import value_account
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.exact import plain_decimal
from tradingmesh.trading.margin import RiskStatus
from tradingmesh.trading.margin import added_exposure
from tradingmesh.trading.margin import notional
from tradingmesh.trading.margin import required_margin
from tradingmesh.trading.money import exact_difference
from tradingmesh.trading.money import exact_sum
from tradingmesh.trading.money import money_text
from tradingmesh.trading.money import round_money

__all__ = ["Decision", "OrderCheck", "Purpose", "check_order"]

_R = ErrorReason
_ZERO: Final = Decimal(0)


class Purpose(enum.StrEnum):
    """Why the OMS asks (CheckPurpose)."""

    PLACE = "PLACE"
    AMEND = "AMEND"
    TRIGGER = "TRIGGER"


@dataclass(frozen=True, slots=True)
class OrderCheck:
    """A CheckOrderRequest, parsed."""

    account_id: str
    order_id: str
    purpose: Purpose
    symbol: str
    side: Side
    quantity: Decimal
    remaining_quantity: Decimal
    price: Decimal | None = None
    position_id: str | None = None
    open_order_count: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """A CheckOrderResponse without its check_id. Amounts are in `currency`, rounded."""

    approved: bool
    reason: ErrorReason.ValueType
    message: str
    currency: str
    required_margin: Decimal
    free_margin: Decimal
    free_margin_after: Decimal
    margin_level_after: Decimal | None
    valuation_price: Decimal | None


@dataclass(frozen=True, slots=True)
class _Exposure:
    """What the order does to the account's exposure in its instrument."""

    reducing: bool  # it only reduces (or closes) a position
    added: Decimal  # lots of new exposure, for margin; 0 for a reducing order
    position_after: Decimal  # the size the group's max_position limits
    opens_position: bool  # one more open position (max_open_positions)


def _exposure(state: RiskState, account: Account, order: OrderCheck) -> _Exposure:
    held = [p for p in state.positions_of(account.id) if p.symbol == order.symbol]
    quantity = order.remaining_quantity
    if account.position_mode is PositionMode.NETTING:
        net = exact_sum(*(p.signed_quantity for p in held))
        signed = quantity if order.side is Side.BUY else quantity.copy_negate()
        opposite = (net > 0 and order.side is Side.SELL) or (net < 0 and order.side is Side.BUY)
        return _Exposure(
            reducing=opposite and quantity <= net.copy_abs(),
            added=added_exposure(net, signed),
            position_after=exact_sum(net, signed).copy_abs(),
            opens_position=net == 0,
        )
    gross = exact_sum(*(p.quantity for p in held))
    closing = state.positions.get(order.position_id or "")
    if (
        closing is not None
        and closing.account_id == account.id
        and closing.symbol == order.symbol
        and closing.side is not order.side
        and quantity <= closing.quantity
    ):
        return _Exposure(True, _ZERO, gross, opens_position=False)
    return _Exposure(False, quantity, exact_sum(gross, quantity), opens_position=True)


def _refusal_of_trading(
    instrument: Instrument, now: datetime
) -> tuple[ErrorReason.ValueType, str] | None:
    if instrument.halted:
        return _R.ERROR_REASON_INSTRUMENT_HALTED, f"{instrument.symbol} is halted"
    if not instrument.is_open(now):
        return _R.ERROR_REASON_MARKET_CLOSED, f"{instrument.symbol} is outside its trading hours"
    return None


def check_order(
    state: RiskState, order: OrderCheck, now: datetime, max_quote_age: timedelta | None
) -> Decision:
    """Decides the order. Raises DomainError only when there is nothing to decide on: an account
    or instrument risk does not know (NOT_FOUND, UNKNOWN_INSTRUMENT), or one its group does not
    offer and the order is not reducing."""
    account = state.accounts.get(order.account_id)
    if account is None:
        raise account_not_found(order.account_id)
    instrument = state.instruments.get(order.symbol)
    if instrument is None:
        raise _unknown_instrument(order.symbol)
    valuation = value_account(state, account, now, max_quote_age)
    if valuation is None:
        raise DomainError(
            _R.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
            f"the client group of account {account.id} is not known to the risk service yet",
        )
    exposure = _exposure(state, account, order)
    group = valuation.group
    settings = state.group_instruments.get((group.id, order.symbol))
    if (settings is None or not settings.enabled) and not exposure.reducing:
        raise _unknown_instrument(order.symbol)
    outcome = _Outcome(valuation, state.holds.reserved(account.id, now).total)
    quote = state.quotes.get((group.id, order.symbol))
    live = quote if is_live(quote, now, max_quote_age) else None
    price = order.price
    if price is None and live is not None:
        price = open_price(order.side, live)
    outcome.valuation_price = price

    if (trading := _refusal_of_trading(instrument, now)) is not None:
        return outcome.refuse(*trading)
    if account.status != "ACTIVE" and not exposure.reducing:
        return outcome.refuse(
            _R.ERROR_REASON_ACCOUNT_DISABLED,
            f"the account is {account.status.lower().replace('_', '-')}:"
            " only orders that reduce a position are taken",
        )
    if state.status_of(account.id) is RiskStatus.STOP_OUT and not exposure.reducing:
        return outcome.refuse(
            _R.ERROR_REASON_ACCOUNT_IN_STOP_OUT,
            "the account is in stop-out: only reducing orders are taken",
        )

    if exposure.reducing:
        return outcome.approve()

    max_size = settings.max_order_size if settings is not None else None
    if max_size is not None and order.quantity > max_size:
        return outcome.refuse(
            _R.ERROR_REASON_MAX_ORDER_SIZE_EXCEEDED,
            f"quantity {plain_decimal(order.quantity)} exceeds the maximum order size"
            f" {plain_decimal(max_size)} of {order.symbol}",
        )
    max_position = settings.max_position if settings is not None else None
    if max_position is not None and exposure.position_after > max_position:
        return outcome.refuse(
            _R.ERROR_REASON_POSITION_LIMIT_EXCEEDED,
            f"a position of {plain_decimal(exposure.position_after)} lots would exceed the"
            f" maximum position {plain_decimal(max_position)} of {order.symbol}",
        )
    limits = state.limits_of(account.id)
    new_order = order.purpose is Purpose.PLACE
    if limits.max_open_orders and new_order and order.open_order_count >= limits.max_open_orders:
        return outcome.refuse(
            _R.ERROR_REASON_ACCOUNT_LIMIT_EXCEEDED,
            f"the account may have at most {limits.max_open_orders} open orders",
        )
    opens_one_too_many = len(valuation.positions) >= limits.max_open_positions
    if limits.max_open_positions and exposure.opens_position and opens_one_too_many:
        return outcome.refuse(
            _R.ERROR_REASON_ACCOUNT_LIMIT_EXCEEDED,
            f"the account may have at most {limits.max_open_positions} open positions",
        )

    if price is None:
        return outcome.refuse(
            _R.ERROR_REASON_PRICE_UNAVAILABLE, f"no live price for {order.symbol}"
        )
    convert = conversion(state, group.id, instrument.quote_currency, account.currency)
    if convert is None:
        return outcome.refuse(
            _R.ERROR_REASON_PRICE_UNAVAILABLE,
            f"no price to convert {instrument.quote_currency} to {account.currency}",
        )
    unpriced = sorted({v.position.symbol for v in valuation.positions if not v.priced})
    if unpriced:
        return outcome.refuse(
            _R.ERROR_REASON_PRICE_UNAVAILABLE,
            f"no price for the account's open positions in {', '.join(unpriced)}",
        )
    size = instrument.contract_size
    outcome.required = required_margin(
        exposure.added,
        size,
        price,
        rule_for(state, group, instrument),
        account.currency,
        convert,
    )
    if limits.max_gross_notional is not None:
        added = round_money(
            convert.to_account(notional(exposure.added, size, price)), account.currency
        )
        gross = exact_sum(valuation.gross_notional, added)
        if gross > limits.max_gross_notional:
            return outcome.refuse(
                _R.ERROR_REASON_ACCOUNT_LIMIT_EXCEEDED,
                f"gross notional {money_text(gross, account.currency)} {account.currency} would"
                f" exceed the account's limit"
                f" {money_text(limits.max_gross_notional, account.currency)} {account.currency}",
            )
    free = outcome.free_margin
    if outcome.required > free:
        currency = account.currency
        return outcome.refuse(
            _R.ERROR_REASON_INSUFFICIENT_MARGIN,
            f"required margin {money_text(outcome.required, currency)} {currency}"
            f" exceeds free margin {money_text(free, currency)} {currency}",
        )
    return outcome.approve()


class _Outcome:
    """The figures gathered so far, turned into a Decision at the first refusal or at the end."""

    def __init__(self, valuation: AccountValuation, reserved: Decimal) -> None:
        self.valuation = valuation
        self.reserved = reserved
        self.required = _ZERO
        self.valuation_price: Decimal | None = None

    @property
    def free_margin(self) -> Decimal:
        """The free margin this order may use: what approved orders and withdrawals still
        hold is spent already."""
        return exact_difference(self.valuation.figures.free_margin, self.reserved)

    def _decision(self, approved: bool, reason: ErrorReason.ValueType, message: str) -> Decision:
        figures = self.valuation.figures
        after = figures.with_added_margin(self.required)
        return Decision(
            approved=approved,
            reason=reason,
            message=message,
            currency=self.valuation.account.currency,
            required_margin=self.required,
            free_margin=self.free_margin,
            free_margin_after=exact_difference(after.free_margin, self.reserved),
            margin_level_after=after.margin_level,
            valuation_price=self.valuation_price,
        )

    def approve(self) -> Decision:
        return self._decision(True, _R.ERROR_REASON_UNSPECIFIED, "")

    def refuse(self, reason: ErrorReason.ValueType, message: str) -> Decision:
        return self._decision(False, reason, message)


def _unknown_instrument(symbol: str) -> DomainError:
    return DomainError(
        _R.ERROR_REASON_UNKNOWN_INSTRUMENT,
        f"{symbol} is not an instrument the account's group trades",
        metadata={"symbol": symbol},
        field_violations=[("symbol", "not an instrument the account's group trades")],
        status=grpc.StatusCode.INVALID_ARGUMENT,
    )

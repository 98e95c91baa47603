"""A fill, booked: the order, the trade, the position, their audit rows and events (ADR 0007).

Every fill, whatever made it (instant or market execution at placement, a triggered working
order, a stop-out close, later an STP allocation), goes through `book_fill` inside the
account's `AccountChange`, so all of them obey one set of rules:

- the position effect, average price and realized P&L come from `domain.positions` (netting:
  the account's one open position in the instrument; hedging: the order's position_id, or a new
  position);
- the commission is quantity x commission per lot (the group's instrument setting, else the
  group's), rounded once to the account currency's minor unit (`money.commission`);
- P&L arising in the instrument's quote currency is converted to the account currency with the
  conversion the caller took from live prices (ADR 0007 "Conversion");
- a position's `used_margin` is the margin of its open quantity at its open price
  (`margin.required_margin` with the group's margin rule), converted the same way; 0 once
  closed. The risk service values margin from live prices itself;
- events: `oms.trade.executed` (TradeExecuted with realized_pnl, commission and the account
  currency: the account service books it to the ledger), `oms.position.opened` / `.changed` /
  `.closed`, and the order's `oms.order.partially_filled` / `.filled` carrying the trade.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace
from decimal import Decimal
from typing import Final

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.domain import positions as domain
from services.oms.domain.positions import Execution
from services.oms.domain.positions import PnlTerms
from services.oms.domain.positions import PositionEffect
from services.oms.domain.positions import PositionMode
from services.oms.domain.state import Fill
from services.oms.entry import execution
from services.oms.entry.execution import LiveQuote
from services.oms.model import Instrument
from services.oms.model import OrderRow
from services.oms.model import PositionRow
from services.oms.model import TradeRow
from services.oms.model import TradingTerms
from services.oms.store.changes import AccountChange
from services.oms.store.changes import get_position
from services.oms.store.changes import offered_instruments
from services.oms.store.rows import found
from services.platform.enums import enum_name
from tradingmesh.oms.v1 import oms_events_pb2 as ev
from tradingmesh.trading.margin import margin_rule
from tradingmesh.trading.margin import required_margin
from tradingmesh.trading.money import IDENTITY
from tradingmesh.trading.money import Conversion
from tradingmesh.trading.money import average_price
from tradingmesh.trading.money import commission
from tradingmesh.trading.money import exact_sum

__all__ = ["BookedFill", "FillTerms", "book_fill", "position_margin"]

_ZERO: Final = Decimal(0)
_CHANGE_TYPES: Final = {
    PositionEffect.INCREASE: ev.POSITION_CHANGE_TYPE_INCREASED,
    PositionEffect.REDUCE: ev.POSITION_CHANGE_TYPE_REDUCED,
    PositionEffect.REVERSE: ev.POSITION_CHANGE_TYPE_REVERSED,
}


@dataclass(frozen=True)
class FillTerms:
    """What a fill needs besides the order: the instrument, the group's terms for it and the
    conversion from the instrument's quote currency to the account currency."""

    instrument: Instrument
    terms: TradingTerms
    conversion: Conversion = IDENTITY


async def converted_fill_terms(
    session: AsyncSession,
    instrument: Instrument,
    terms: TradingTerms,
    account_currency: str,
    live: Callable[[str, str], LiveQuote | None],
) -> FillTerms | None:
    """The fill terms with the conversion from the instrument's quote currency to the account
    currency at the live price (`live(group_id, symbol)`) of the pair offered to the group that
    joins them; None when no live price gives it."""
    conversion: Conversion | None = IDENTITY
    if instrument.quote_currency != account_currency:
        pair = execution.conversion_pair(
            instrument.quote_currency,
            account_currency,
            await offered_instruments(session, terms.group_id),
        )
        quote = None if pair is None else live(terms.group_id, pair[0])
        conversion = (
            None if quote is None or pair is None else execution.conversion_at(quote, pair[1])
        )
    return None if conversion is None else FillTerms(instrument, terms, conversion)


@dataclass(frozen=True)
class BookedFill:
    order: OrderRow
    trade: TradeRow
    position: PositionRow


def position_margin(
    quantity: Decimal, open_price: Decimal, currency: str, fill: FillTerms
) -> Decimal:
    """The margin an open quantity holds at its open price, in the account currency."""
    if quantity <= 0:
        return _ZERO
    instrument_rate = fill.instrument.margin_rate if fill.instrument.margin_rate > 0 else None
    rule = margin_rule(fill.terms.leverage, instrument_rate, fill.terms.margin_rate)
    return required_margin(
        quantity, fill.instrument.contract_size, open_price, rule, currency, fill.conversion
    )


def _domain_position(row: PositionRow | None) -> domain.Position | None:
    if row is None:
        return None
    return domain.Position(row.id, row.side, row.quantity, row.open_price, row.realized_pnl)


async def _current_position(change: AccountChange, order: OrderRow) -> PositionRow | None:
    account = change.account
    if account.position_mode is PositionMode.NETTING:
        return await change.netting_position(order.symbol)
    if order.position_id is None:
        return None
    position = await get_position(change.session, account.account_id, order.position_id, lock=True)
    return found(position, "position", order.position_id)


async def book_fill(
    change: AccountChange,
    order: OrderRow,
    quantity: Decimal,
    price: Decimal,
    fill: FillTerms,
    *,
    hedge_order_id: str | None = None,
) -> BookedFill:
    """Fills `quantity` lots of `order` at `price`; everything in `change`'s transaction."""
    account = change.account
    currency = account.currency
    now = change.now
    before = await _current_position(change, order)
    result = domain.apply_fill(
        account.position_mode,
        _domain_position(before),
        Execution(order.side, quantity, price),
        PnlTerms(fill.instrument.contract_size, currency, fill.conversion),
        new_position_id=str(uuid.uuid4()),
    )
    charged = commission(quantity, fill.terms.commission_per_lot, currency)
    after_domain = result.position
    used = position_margin(after_domain.quantity, after_domain.open_price, currency, fill)
    closed = not after_domain.is_open
    if before is None or result.effect is PositionEffect.OPEN:
        position = PositionRow(
            id=after_domain.id,
            account_id=account.account_id,
            symbol=order.symbol,
            netting=account.position_mode is PositionMode.NETTING,
            side=after_domain.side,
            quantity=after_domain.quantity,
            open_price=after_domain.open_price,
            commission=charged,
            stop_loss=order.stop_loss,
            take_profit=order.take_profit,
            used_margin=used,
            open_order_id=order.id,
            open_time=now,
            update_time=now,
            version=1,
        )
        await change.insert_position(position)
    else:
        # Stops an increasing order sets replace the position's (netting, Order.stop_loss); a
        # reversal takes the order's or none (the old ones are on the wrong side of the new
        # position); a reduction keeps the position's.
        stop_loss, take_profit = before.stop_loss, before.take_profit
        if result.effect is PositionEffect.REVERSE:
            stop_loss, take_profit = order.stop_loss, order.take_profit
        elif result.effect is PositionEffect.INCREASE:
            stop_loss = order.stop_loss or before.stop_loss
            take_profit = order.take_profit or before.take_profit
        position = replace(
            before,
            side=after_domain.side,
            quantity=after_domain.quantity,
            open_price=after_domain.open_price,
            realized_pnl=after_domain.realized_pnl,
            commission=exact_sum(before.commission, charged),
            stop_loss=stop_loss,
            take_profit=take_profit,
            used_margin=used,
            update_time=now,
            close_time=now if closed else None,
            version=before.version + 1,
        )
        await change.update_position(position, before.version)
    trade = TradeRow(
        id=str(uuid.uuid4()),
        order_id=order.id,
        client_order_id=order.client_order_id,
        account_id=account.account_id,
        symbol=order.symbol,
        side=order.side,
        quantity=quantity,
        price=price,
        commission=charged,
        realized_pnl=result.realized_pnl,
        currency=currency,
        position_id=position.id,
        position_effect=result.effect.value,
        origin=order.origin,
        hedge_order_id=hedge_order_id,
        fill_time=now,
    )
    await change.insert_trade(trade)
    average = (
        price
        if order.average_fill_price is None
        else average_price(order.filled_quantity, order.average_fill_price, quantity, price)
    )
    filled = await change.apply(
        order,
        Fill(quantity),
        changes={
            "average_fill_price": average,
            "commission": exact_sum(order.commission, charged),
        },
        trade=trade,
    )
    await _position_recorded(change, before, position, result.effect, trade)
    await change.emit(
        "oms.trade.executed",
        ev.TradeExecuted(metadata=change.metadata(1), trade=trade.to_proto(), currency=currency),
    )
    return BookedFill(filled, trade, position)


async def _position_recorded(
    change: AccountChange,
    before: PositionRow | None,
    position: PositionRow,
    effect: PositionEffect,
    trade: TradeRow,
) -> None:
    currency = change.account.currency
    message = position.to_proto(currency)
    meta = change.metadata(position.version)
    opened = before is None or effect is PositionEffect.OPEN
    event: Message
    if opened:
        subject, event, name = (
            "oms.position.opened",
            ev.PositionOpened(metadata=meta, position=message, trade_id=trade.id),
            "OPENED",
        )
    elif not position.is_open:
        subject, event, name = (
            "oms.position.closed",
            ev.PositionClosed(metadata=meta, position=message, trade_id=trade.id),
            "CLOSED",
        )
    else:
        change_type = _CHANGE_TYPES[effect]
        subject, event, name = (
            "oms.position.changed",
            ev.PositionChanged(
                metadata=meta, position=message, change_type=change_type, trade_id=trade.id
            ),
            enum_name(ev.PositionChangeType, change_type),
        )
    await change.audit_position(None if opened else before, position, name, f"trade {trade.id}")
    await change.emit(subject, event)

"""The broker's exposure per instrument (RiskAdminService.GetExposure), pure.

Per symbol: the clients' long, short and net quantity from the open positions, the coverage at
LPs from STP hedge fills (only without a group filter: hedges are not attributed to groups), and
the broker's own net = coverage - client net. Values are at the raw mid (the LP prices behind the
newest published price, without any group's markup), in the broker's reporting currency,
converted at the raw mid of the pair joining the instrument's quote currency and it. The clients'
unrealized P&L is each position's, at its own group's price (long at the bid, short at the ask),
converted the same way. Amounts that cannot be converted (no such pair priced) are left out.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from services.risk.model import Position
from services.risk.model import Side
from services.risk.state import RiskState
from services.risk.valuation import close_price
from tradingmesh.trading.margin import notional
from tradingmesh.trading.margin import position_pnl
from tradingmesh.trading.money import IDENTITY
from tradingmesh.trading.money import Conversion
from tradingmesh.trading.money import exact_difference
from tradingmesh.trading.money import exact_sum
from tradingmesh.trading.money import round_money

__all__ = ["InstrumentExposure", "exposures", "reporting_conversion"]

_ZERO: Final = Decimal(0)


@dataclass(frozen=True, slots=True)
class InstrumentExposure:
    symbol: str
    client_long: Decimal
    client_short: Decimal
    coverage_net: Decimal
    mid_price: Decimal | None
    client_net_notional: Decimal | None
    broker_net_notional: Decimal | None
    client_unrealized_pnl: Decimal | None

    @property
    def client_net(self) -> Decimal:
        return exact_difference(self.client_long, self.client_short)

    @property
    def broker_net(self) -> Decimal:
        return exact_difference(self.coverage_net, self.client_net)


def reporting_conversion(
    state: RiskState, quote_currency: str, reporting: str
) -> Conversion | None:
    """quote currency -> reporting currency at the raw mid of the joining pair."""
    if quote_currency == reporting:
        return IDENTITY
    direct = state.pair(quote_currency, reporting)
    if direct is not None and (quote := state.raw_quotes.get(direct)) is not None:
        return Conversion(quote.raw_mid)
    inverse = state.pair(reporting, quote_currency)
    if inverse is not None and (quote := state.raw_quotes.get(inverse)) is not None:
        return Conversion(quote.raw_mid, inverse=True)
    return None


def exposures(
    state: RiskState, reporting: str, *, symbol: str = "", group_id: str = ""
) -> list[InstrumentExposure]:
    """One entry per instrument with open positions (of the group, if given) or, without a
    group, with coverage; ordered by symbol."""
    held: defaultdict[str, list[Position]] = defaultdict(list)
    for position in state.positions.values():
        if symbol and position.symbol != symbol:
            continue
        account = state.accounts.get(position.account_id)
        if group_id and (account is None or account.group_id != group_id):
            continue
        held[position.symbol].append(position)
    symbols = set(held)
    if not group_id:
        symbols |= {s for s, q in state.coverage.items() if q and (not symbol or s == symbol)}
    return [_exposure(state, reporting, s, held.get(s, []), group_id) for s in sorted(symbols)]


def _exposure(
    state: RiskState, reporting: str, symbol: str, positions: list[Position], group_id: str
) -> InstrumentExposure:
    long = exact_sum(*(p.quantity for p in positions if p.side is Side.BUY))
    short = exact_sum(*(p.quantity for p in positions if p.side is Side.SELL))
    coverage = _ZERO if group_id else state.coverage.get(symbol, _ZERO)
    instrument = state.instruments.get(symbol)
    quote = state.raw_quotes.get(symbol)
    convert = (
        reporting_conversion(state, instrument.quote_currency, reporting)
        if instrument is not None
        else None
    )
    if instrument is None or quote is None or convert is None:
        return InstrumentExposure(
            symbol, long, short, coverage, quote.raw_mid if quote else None, None, None, None
        )
    mid, size = quote.raw_mid, instrument.contract_size
    client_net = exact_difference(long, short)
    broker_net = exact_difference(coverage, client_net)

    def value(quantity: Decimal) -> Decimal:
        return round_money(convert.to_account(notional(quantity, size, mid)), reporting)

    pnl = _ZERO
    for position in positions:
        account = state.accounts.get(position.account_id)
        group_quote = state.quotes.get((account.group_id, symbol)) if account else None
        at = close_price(position.side, group_quote or quote)
        pnl = exact_sum(
            pnl,
            position_pnl(
                position.side is Side.BUY, position.open_price, at, position.quantity, size
            ),
        )
    return InstrumentExposure(
        symbol,
        long,
        short,
        coverage,
        mid,
        value(client_net),
        value(broker_net),
        round_money(convert.to_account(pnl), reporting),
    )

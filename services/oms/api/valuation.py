"""Positions valued at live prices: current_price and unrealized_pnl (PositionService).

A long position is valued at the group's bid (where it would close), a short one at the ask,
including the group's markup; the P&L is converted to the account currency at the mid of the
pair joining the currencies and rounded once (`domain.positions.unrealized_pnl`, ADR 0007).
Without a live price (or conversion) current_price stays empty and unrealized_pnl "0".
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime

from services.oms.api.formats import FORMATS
from services.oms.domain import positions as domain
from services.oms.entry import execution
from services.oms.feeds.quotes import QuoteBook
from services.oms.model import Account
from services.oms.model import Instrument
from services.oms.model import PositionRow
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.trading.money import IDENTITY
from tradingmesh.trading.money import money_text

__all__ = ["Valuer"]


class Valuer:
    def __init__(
        self, quotes: QuoteBook, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.quotes = quotes
        self.clock = clock

    def value(
        self,
        account: Account,
        positions: Iterable[PositionRow],
        instruments: dict[str, Instrument],
    ) -> list[oms_pb2.Position]:
        now = self.clock()
        return [self._one(account, p, instruments, now) for p in positions]

    def value_page(
        self,
        accounts: Mapping[str, Account],
        items: Iterable[tuple[PositionRow, str]],
        instruments: dict[str, Instrument],
    ) -> list[oms_pb2.Position]:
        """Each (position, its account currency) valued for its account; one whose account is
        not in `accounts`, unvalued."""
        now = self.clock()
        return [
            position.to_proto(currency)
            if (account := accounts.get(position.account_id)) is None
            else self._one(account, position, instruments, now)
            for position, currency in items
        ]

    def _one(
        self,
        account: Account,
        position: PositionRow,
        instruments: dict[str, Instrument],
        now: datetime,
    ) -> oms_pb2.Position:
        message = position.to_proto(account.currency)
        instrument = instruments.get(position.symbol)
        if not position.is_open or instrument is None:
            return message
        quote = self.quotes.live(account.group_id, position.symbol, now)
        if quote is None:
            return message
        conversion = IDENTITY
        if instrument.quote_currency != account.currency:
            route = execution.conversion_pair(
                instrument.quote_currency, account.currency, instruments.values()
            )
            pair = None if route is None else self.quotes.live(account.group_id, route[0], now)
            if route is None or pair is None:
                return message
            conversion = execution.conversion_at(pair, route[1])
        pnl = domain.unrealized_pnl(
            domain.Position(position.id, position.side, position.quantity, position.open_price),
            quote.bid,
            quote.ask,
            domain.PnlTerms(instrument.contract_size, account.currency, conversion),
        )
        message.current_price = FORMATS.price(
            position.symbol, domain.close_price(position.side, quote.bid, quote.ask)
        )
        message.unrealized_pnl = money_text(pnl, account.currency)
        message.valuation_time.FromDatetime(now)
        return message

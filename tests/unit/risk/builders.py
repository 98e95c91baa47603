"""A small broker in memory for the risk service's pure tests: one USD group at 1:100 with
margin-call and stop-out levels 100 % and 50 %, EURUSD, USDJPY and EURGBP, and helpers to open
accounts and positions and to set prices."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal

from services.platform.schedule import Session
from services.risk.model import Account
from services.risk.model import Group
from services.risk.model import GroupInstrument
from services.risk.model import Instrument
from services.risk.model import Position
from services.risk.model import PositionMode
from services.risk.model import Quote
from services.risk.model import Side
from services.risk.state import RiskState

D = Decimal
NOW = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)  # a Monday
GROUP = "00000000-0000-4000-8000-000000000001"
USER = "00000000-0000-4000-8000-0000000000aa"
ALL_WEEK = tuple(Session(day, 0, 1440) for day in range(1, 8))


def instrument(
    symbol: str,
    base: str,
    quote: str,
    *,
    contract_size: str = "100000",
    margin_rate: str | None = "0.01",
    sessions: tuple[Session, ...] = ALL_WEEK,
    halted: bool = False,
) -> Instrument:
    return Instrument(
        symbol=symbol,
        base_currency=base,
        quote_currency=quote,
        contract_size=D(contract_size),
        margin_rate=D(margin_rate) if margin_rate is not None else None,
        sessions=sessions,
        halted=halted,
        version=1,
    )


def broker(leverage: int = 100) -> RiskState:
    state = RiskState()
    state.put_group(Group(GROUP, "USD", leverage, D(100), D(50), 1))
    for item in (
        instrument("EURUSD", "EUR", "USD"),
        instrument("USDJPY", "USD", "JPY"),
        instrument("EURGBP", "EUR", "GBP"),
    ):
        state.put_instrument(item)
        state.put_group_instrument(GroupInstrument(GROUP, item.symbol, True, None, None, None, 1))
    price(state, "EURUSD", "1.10000", "1.10020")
    return state


def account(
    state: RiskState,
    balance: str = "1500.00",
    *,
    account_id: str = "00000000-0000-4000-8000-0000000000a1",
    mode: PositionMode = PositionMode.NETTING,
    status: str = "ACTIVE",
) -> Account:
    created = Account(account_id, USER, GROUP, "USD", mode, status, 1, D(balance), 1)
    state.put_account(created)
    return created


def price(
    state: RiskState,
    symbol: str,
    bid: str,
    ask: str,
    *,
    at: datetime = NOW,
    raw: tuple[str, str] | None = None,
    group: str = GROUP,
) -> Quote:
    held = state.quotes.get((group, symbol))
    raw_bid, raw_ask = raw or (bid, ask)
    quote = Quote(D(bid), D(ask), D(raw_bid), D(raw_ask), at, (held.version + 1) if held else 1)
    if held is not None and held.time > at:  # a test setting an older price on purpose
        state.quotes.pop((group, symbol))
    assert state.put_quote(group, symbol, quote)
    return quote


def position(
    state: RiskState,
    owner: Account,
    symbol: str,
    side: Side,
    quantity: str,
    open_price: str,
    *,
    position_id: str | None = None,
    age_minutes: int = 60,
) -> Position:
    opened = Position(
        id=position_id or f"00000000-0000-4000-9000-{len(state.positions) + 1:012d}",
        account_id=owner.id,
        symbol=symbol,
        side=side,
        quantity=D(quantity),
        open_price=D(open_price),
        open_time=NOW - timedelta(minutes=age_minutes),
        version=1,
    )
    state.put_position(opened)
    return opened

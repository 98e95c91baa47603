"""The margin watcher's fast valuation (`pass_valuation`) gives the very figures of the reference
one (`valuation.value_account`, the SDK's functions): equity, used margin, margin level and
status of every account of varied random states, digit for digit, and refuses what the reference
refuses."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from decimal import ROUND_HALF_EVEN
from decimal import Decimal

import pytest

from services.risk.model import Account
from services.risk.model import Group
from services.risk.model import GroupInstrument
from services.risk.model import Position
from services.risk.model import PositionMode
from services.risk.model import Quote
from services.risk.model import Side
from services.risk.model import UnbookedTrade
from services.risk.pass_valuation import PassValuer
from services.risk.state import RiskState
from services.risk.valuation import value_account
from tests.unit.risk.builders import NOW
from tests.unit.risk.builders import instrument
from tradingmesh.trading.margin import RiskStatus
from tradingmesh.trading.money import minor_unit

D = Decimal
CURRENCIES = ("EUR", "GBP", "USD", "CHF", "JPY", "KWD")  # base before quote, in this order
# Leverages whose share 1/leverage does not terminate (3, 30, 33, 300): the margin is a
# 60-digit quotient, converted by multiplying at 60 digits by both paths alike.
LEVERAGES = (1, 2, 3, 30, 33, 50, 100, 200, 300, 400, 500)
MARGIN_RATES = (None, "0", "0.01", "0.02", "0.05", "0.5", "0.3333")
CONTRACT_SIZES = ("100000", "1000", "100", "1", "0.5")
GROUPS = 8


def _price(rng: random.Random) -> tuple[Decimal, Decimal]:
    """A positive price with 0-7 decimals, and its point."""
    point = D(1).scaleb(-rng.randint(0, 7))
    return D(rng.randint(1, 3_000_000)) * point + point, point


def random_state(seed: int, accounts: int) -> RiskState:
    """Groups, instruments, prices (some missing), accounts (some in an unknown group) and
    positions of every kind, balances spread around the margin levels."""
    rng = random.Random(seed)
    state = RiskState()
    symbols = []
    for i, base in enumerate(CURRENCIES):
        for quote in CURRENCIES[i + 1 :]:
            if rng.random() < 0.85:
                symbols.append(base + quote)
    symbols.append("XAUUSD")
    for symbol in symbols:
        state.put_instrument(
            instrument(
                symbol,
                symbol[:3],
                symbol[3:],
                contract_size=rng.choice(CONTRACT_SIZES),
                margin_rate=rng.choice(MARGIN_RATES),
            )
        )
    groups = []
    for number in range(GROUPS):
        stop_out = D(rng.choice(("50", "30", "20.5", "0")))
        group = Group(
            f"group-{number}",
            "USD",
            rng.choice(LEVERAGES),
            stop_out + D(rng.choice(("0", "30", "50", "70.25"))),
            stop_out,
            1,
        )
        groups.append(group)
        state.put_group(group)
        for symbol in symbols:
            if rng.random() < 0.3:
                state.put_group_instrument(
                    GroupInstrument(
                        group.id, symbol, True, None, None, rng.choice((None, D("0.02"))), 1
                    )
                )
            if rng.random() < 0.95:  # some prices are missing
                bid, point = _price(rng)
                ask = bid + rng.randint(0, 50) * point
                state.put_quote(group.id, symbol, Quote(bid, ask, bid, ask, NOW, 1))
    for number in range(accounts):
        _random_account(state, rng, number, groups, symbols)
    return state


def _random_account(
    state: RiskState, rng: random.Random, number: int, groups: list[Group], symbols: list[str]
) -> None:
    currency = rng.choice(CURRENCIES)
    group_id = rng.choice(groups).id if rng.random() < 0.98 else "no-such-group"
    account = Account(
        f"account-{number}", "user", group_id, currency, PositionMode.HEDGING, "ACTIVE", 1
    )
    for index in range(rng.choice((0, 1, 1, 1, 2, 3, 5))):
        symbol = rng.choice(symbols)
        mid = state.quotes.get((group_id, symbol))
        reference = mid.bid if mid is not None else _price(rng)[0]
        # Average open prices carry up to 12 decimals.
        open_price = reference * D(rng.randint(9_000, 11_000)) / 10_000
        open_price = open_price.quantize(D(1).scaleb(-rng.randint(0, 12)))
        if open_price <= 0:
            open_price = reference
        state.put_position(
            Position(
                f"position-{number}-{index}",
                account.id,
                symbol,
                rng.choice((Side.BUY, Side.SELL)),
                D(rng.randint(1, 5000)).scaleb(-2),
                open_price,
                NOW,
                1,
            )
        )
    if rng.random() < 0.1:
        state.put_unbooked(
            UnbookedTrade(
                f"trade-{number}",
                account.id,
                "order",
                D(rng.randint(-100_000, 100_000)).scaleb(-2),
                D(rng.randint(0, 500)).scaleb(-2),
            )
        )
    state.put_account(replace(account, balance=_balance(state, account, rng)))


def _balance(state: RiskState, account: Account, rng: random.Random) -> Decimal:
    """A balance around a margin level of the group: below stop-out, between, above, or exactly
    at a level when the cents allow it."""
    minor = D(1).scaleb(-minor_unit(account.currency))
    try:
        valuation = value_account(state, account, NOW, None)
    except ArithmeticError:
        return D(rng.randint(-10_000, 1_000_000)).scaleb(-2).quantize(minor)
    if valuation is None or not valuation.figures.used_margin:
        return D(rng.randint(-10_000, 1_000_000)).scaleb(-2).quantize(minor)
    group, figures = valuation.group, valuation.figures
    level = rng.choice(
        (
            group.stop_out_level,
            group.margin_call_level,
            group.stop_out_level * D(rng.randint(1, 99)) / 100,
            group.margin_call_level * D(rng.randint(100, 3000)) / 100,
            (group.stop_out_level + group.margin_call_level) / 2,
        )
    )
    exact = (
        level * figures.used_margin / 100
        - figures.unrealized_pnl
        - state.unbooked_amount(account.id)
    )
    return exact.quantize(minor, rounding=ROUND_HALF_EVEN)


def outcome(state: RiskState, account: Account, valuer: PassValuer) -> tuple[object, object]:
    """(reference, fast): each the figures as (equity, used, level, status) with their exact
    digits, None for no decision, or the kind of error raised."""
    try:
        valuation = value_account(state, account, NOW, None)
        reference: object = None
        if valuation is not None and valuation.complete:
            f = valuation.figures
            reference = (
                f.equity.as_tuple(),
                f.used_margin.as_tuple(),
                f.margin_level,
                valuation.status,
            )
    except (ArithmeticError, ValueError) as error:
        reference = type(error)
    try:
        figures = valuer.figures(account)
        fast: object = None
        if figures is not None:
            fast = (
                figures.equity.as_tuple(),
                figures.used_margin.as_tuple(),
                figures.margin_level,
                figures.status,
            )
    except (ArithmeticError, ValueError) as error:
        fast = type(error)
    return reference, fast


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_every_account_gets_the_reference_figures_and_status(seed: int) -> None:
    state = random_state(seed, 1500)
    valuer = PassValuer(state)
    kinds: Counter[object] = Counter()

    for account in list(state.accounts.values()):
        reference, fast = outcome(state, account, valuer)

        assert fast == reference, account.id
        kinds[reference[-1] if isinstance(reference, tuple) else reference] += 1

    # The states cover every outcome: each status, and no decision; nothing is refused.
    assert {*kinds} >= {*RiskStatus, None}
    assert not [k for k in kinds if isinstance(k, type)]


def test_the_figures_follow_the_state_after_a_refresh() -> None:
    state = random_state(5, 600)
    valuer = PassValuer(state)
    accounts = list(state.accounts.values())
    for account in accounts:
        outcome(state, account, valuer)
    rng = random.Random(6)
    # New prices, a changed group, a new margin rate: every leg they touch must be made again.
    for (group_id, symbol), quote in list(state.quotes.items()):
        if rng.random() < 0.5:
            bid = quote.bid * D(rng.randint(900, 1100)) / 1000
            state.put_quote(
                group_id,
                symbol,
                Quote(bid, bid + (quote.ask - quote.bid), bid, bid, NOW, quote.version + 1),
            )
    group = next(iter(state.groups.values()))
    state.put_group(replace(group, leverage=500, stop_out_level=D(75), margin_call_level=D(90)))
    symbol = next(iter(state.instruments))
    state.put_group_instrument(GroupInstrument(group.id, symbol, True, None, None, D("0.1"), 2))

    valuer.refresh()

    for account in accounts:
        reference, fast = outcome(state, account, valuer)
        assert fast == reference, account.id

"""The LP simulator's prices and executions, without FIX."""

from __future__ import annotations

from decimal import Decimal

import pytest

from simulators.lp.catalogue import BY_SYMBOL
from simulators.lp.catalogue import CATALOGUE
from simulators.lp.market import Market
from simulators.lp.market import Order
from simulators.lp.market import Profile
from simulators.lp.market import Side
from simulators.lp.market import TimeInForce
from simulators.lp.market import execute


def market(**profile: object) -> Market:
    return Market(CATALOGUE, Profile(name="lp-test", seed=7, **profile))  # type: ignore[arg-type]


def order(
    quantity: str,
    side: Side = Side.BUY,
    limit: str | None = None,
    tif: TimeInForce = TimeInForce.IOC,
    symbol: str = "EURUSD",
) -> Order:
    return Order("c1", symbol, side, Decimal(quantity), Decimal(limit) if limit else None, tif)


def test_quotes_are_exact_to_the_instruments_digits_and_never_crossed() -> None:
    m = market(gap_per_million=0)
    for _ in range(2000):
        for symbol in m.symbols:
            quote = m.step(symbol)
            assert quote is not None
            digits = BY_SYMBOL[symbol].digits
            assert quote.bid.as_tuple().exponent == -digits
            assert quote.ask.as_tuple().exponent == -digits
            assert quote.ask > quote.bid > 0


def test_the_walk_stays_near_the_reference_mid() -> None:
    m = market(gap_per_million=0)
    eurusd = BY_SYMBOL["EURUSD"]
    quote = m.quote("EURUSD")
    for _ in range(20_000):
        step = m.step("EURUSD")
        assert step is not None
        quote = step
    mid = (quote.bid + quote.ask) / 2
    assert abs(mid - eurusd.reference_mid) < Decimal("0.005")  # within 50 pips after 20k moves


def test_two_lps_with_different_seeds_and_spreads_disagree() -> None:
    a = Market(CATALOGUE, Profile(name="a", seed=1))
    b = Market(CATALOGUE, Profile(name="b", seed=2, spread_factor=Decimal(2)))
    qa, qb = a.quote("EURUSD"), b.quote("EURUSD")
    assert (qb.ask - qb.bid) == 2 * (qa.ask - qa.bid)
    assert (qa.bid, qa.ask) != (qb.bid, qb.ask)


def test_the_same_seed_gives_the_same_prices() -> None:
    a, b = market(), market()
    assert [a.step("GBPUSD") for _ in range(100)] == [b.step("GBPUSD") for _ in range(100)]


def test_gaps_make_an_lp_quiet_for_a_while() -> None:
    m = market(gap_per_million=1_000_000, gap_updates=3)
    assert [m.step("EURUSD") for _ in range(4)] == [None] * 4  # a gap, then at once another


def test_a_pinned_quote_is_quoted_exactly_without_walk_or_gaps_until_unpinned() -> None:
    m = market(gap_per_million=1_000_000)  # it would otherwise go quiet at once
    quote = m.pin("EURUSD", Decimal("1.10000"), Decimal("1.10020"))
    assert (quote.bid, quote.ask) == (Decimal("1.10000"), Decimal("1.10020"))
    assert [m.step("EURUSD") for _ in range(50)] == [quote] * 50
    assert execute(m, order("1")).fills[0].price == Decimal("1.10020")  # fills use it too
    assert m.pins() == {"EURUSD": quote}
    m.unpin("EURUSD")
    assert m.pins() == {}
    m = market(gap_per_million=0)
    m.pin("EURUSD", Decimal("1.10000"), Decimal("1.10020"))
    m.unpin("EURUSD")
    walked = m.step("EURUSD")
    assert walked is not None
    assert walked.ask - walked.bid == Decimal("0.00006")  # its own spread again
    assert walked.bid < Decimal("1.10000")  # pulled back towards the reference, 1.08500


@pytest.mark.parametrize(
    ("symbol", "bid", "ask", "error"),
    [
        ("NOPE", "1", "2", "unknown symbol"),
        ("EURUSD", "1.100001", "1.10002", "decimals"),
        ("EURUSD", "1.10002", "1.10002", "bid < ask"),
        ("EURUSD", "1.10003", "1.10002", "bid < ask"),
        ("EURUSD", "0", "1.10002", "bid < ask"),
    ],
)
def test_a_bad_pin_is_refused_and_changes_nothing(
    symbol: str, bid: str, ask: str, error: str
) -> None:
    m = market()
    before = m.quote("EURUSD")
    with pytest.raises(ValueError, match=error):
        m.pin(symbol, Decimal(bid), Decimal(ask))
    assert m.pins() == {}
    assert m.quote("EURUSD") == before


def test_a_market_buy_fills_at_the_ask_in_pieces() -> None:
    m = market(fill_lots=Decimal(5))
    ask = m.quote("EURUSD").ask
    execution = execute(m, order("12"))
    assert [f.quantity for f in execution.fills] == [Decimal(5), Decimal(5), Decimal(2)]
    assert {f.price for f in execution.fills} == {ask}
    assert execution.fills_total == Decimal(12)
    assert execution.cancelled == 0
    assert execution.reject_reason is None


def test_a_sell_fills_at_the_bid() -> None:
    m = market()
    bid = m.quote("EURUSD").bid
    assert execute(m, order("1", side=Side.SELL)).fills[0].price == bid


def test_ioc_fills_what_is_available_and_cancels_the_rest() -> None:
    m = market(max_order_lots=Decimal(1000))
    size = m.quote("EURUSD").ask_size
    execution = execute(m, order(str(size + 7)))
    assert execution.fills_total == size
    assert execution.cancelled == Decimal(7)


def test_fok_without_full_liquidity_fills_nothing_and_is_cancelled() -> None:
    m = market(max_order_lots=Decimal(1000))
    size = m.quote("EURUSD").ask_size
    execution = execute(m, order(str(size + 1), tif=TimeInForce.FOK))
    assert execution.fills == ()
    assert execution.cancelled == size + 1
    assert execution.reject_reason is None
    assert "fill or kill" in execution.cancel_reason


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (order("1", symbol="NOPE"), "unknown symbol"),
        (order("0"), "positive"),
        (order("51"), "above"),
    ],
)
def test_bad_orders_are_rejected(bad: Order, reason: str) -> None:
    execution = execute(market(), bad)
    assert execution.reject_reason is not None
    assert reason in execution.reject_reason
    assert execution.fills == ()


def test_a_limit_order_fills_only_at_or_better_than_its_limit_else_is_cancelled() -> None:
    m = market()
    point = BY_SYMBOL["EURUSD"].point
    quote = m.pin("EURUSD", Decimal("1.10000"), Decimal("1.10010"))
    at_the_ask = execute(m, order("1", limit="1.10010"))
    above_the_ask = execute(m, order("1", limit="1.10030"))
    assert [f.price for f in at_the_ask.fills] == [quote.ask]
    assert [f.price for f in above_the_ask.fills] == [quote.ask]  # better than its limit
    below = execute(m, order("1", limit=str(quote.ask - point)))
    assert (below.fills, below.cancelled, below.reject_reason) == ((), Decimal(1), None)
    assert "price moved" in below.cancel_reason
    sell = execute(m, order("1", side=Side.SELL, limit=str(quote.bid + point)))
    assert (sell.fills, sell.cancelled) == ((), Decimal(1))
    sold = execute(m, order("1", side=Side.SELL, limit=str(quote.bid - point)))
    assert [f.price for f in sold.fills] == [quote.bid]


def test_a_limit_order_takes_only_the_quoted_size_and_the_rest_is_cancelled() -> None:
    m = market()
    m.pin("EURUSD", Decimal("1.10000"), Decimal("1.10010"), size=Decimal("0.5"))
    ioc = execute(m, order("1.2", limit="1.10010"))
    assert (ioc.fills_total, ioc.cancelled) == (Decimal("0.5"), Decimal("0.7"))
    assert ioc.cancel_reason == "0.7 lots not filled: no liquidity"
    fok = execute(m, order("1.2", limit="1.10010", tif=TimeInForce.FOK))
    assert (fok.fills_total, fok.cancelled) == (Decimal(0), Decimal("1.2"))


def test_a_limit_price_that_is_not_positive_is_rejected() -> None:
    execution = execute(market(), order("1", limit="-1"))
    assert execution.reject_reason is not None
    assert "limit price" in execution.reject_reason

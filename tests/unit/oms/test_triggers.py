"""The trigger rules and the trigger index (services/oms/domain/triggers.py; ADR 0007)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.oms.domain.positions import Side
from services.oms.domain.triggers import Kind
from services.oms.domain.triggers import OrderKind
from services.oms.domain.triggers import PositionStops
from services.oms.domain.triggers import TriggerIndex
from services.oms.domain.triggers import WorkingOrder
from services.oms.domain.triggers import order_hit
from services.oms.domain.triggers import position_hit

D = Decimal
GROUP = "g1"


def order(
    kind: OrderKind,
    side: Side,
    *,
    price: str | None = None,
    stop: str | None = None,
    triggered: bool = False,
    version: int = 5,
    order_id: str = "o1",
    group: str = GROUP,
) -> WorkingOrder:
    return WorkingOrder(
        order_id,
        "a1",
        group,
        "EURUSD",
        side,
        kind,
        version,
        None if price is None else D(price),
        None if stop is None else D(stop),
        triggered,
    )


def position(
    side: Side, *, sl: str | None = None, tp: str | None = None, version: int = 2
) -> PositionStops:
    return PositionStops(
        "p1",
        "a1",
        GROUP,
        "EURUSD",
        side,
        version,
        None if sl is None else D(sl),
        None if tp is None else D(tp),
    )


@pytest.mark.parametrize(
    ("side", "bid", "ask", "expected"),
    [
        (Side.BUY, "1.0990", "1.1000", Kind.LIMIT),  # ask == limit
        (Side.BUY, "1.0980", "1.0990", Kind.LIMIT),  # ask below
        (Side.BUY, "1.0991", "1.1001", None),  # ask above
        (Side.SELL, "1.1000", "1.1010", Kind.LIMIT),  # bid == limit
        (Side.SELL, "1.0999", "1.1000", None),  # bid below; the ask does not count
    ],
)
def test_a_limit_fills_at_an_ask_at_or_below_a_buy_and_a_bid_at_or_above_a_sell(
    side: Side, bid: str, ask: str, expected: Kind | None
) -> None:
    assert order_hit(order(OrderKind.LIMIT, side, price="1.1000"), D(bid), D(ask)) is expected


@pytest.mark.parametrize(
    ("side", "bid", "ask", "expected"),
    [
        (Side.BUY, "1.0990", "1.1000", Kind.STOP),  # ask == stop
        (Side.BUY, "1.0999", "1.0999", None),  # ask below
        (Side.BUY, "1.1000", "1.0999", None),  # a bid at the stop does not trigger a buy
        (Side.SELL, "1.1000", "1.1010", Kind.STOP),  # bid == stop
        (Side.SELL, "1.1001", "1.1000", None),  # bid above; the ask does not count
    ],
)
def test_a_stop_triggers_at_an_ask_at_or_above_a_buy_and_a_bid_at_or_below_a_sell(
    side: Side, bid: str, ask: str, expected: Kind | None
) -> None:
    assert order_hit(order(OrderKind.STOP, side, stop="1.1000"), D(bid), D(ask)) is expected


def test_a_stop_limit_triggers_on_its_stop_then_works_as_a_limit_at_its_price() -> None:
    waiting = order(OrderKind.STOP_LIMIT, Side.BUY, price="1.1005", stop="1.1000")
    assert order_hit(waiting, D("1.0990"), D("1.0999")) is None
    assert order_hit(waiting, D("1.0998"), D("1.1008")) is Kind.STOP_LIMIT
    triggered = order(OrderKind.STOP_LIMIT, Side.BUY, price="1.1005", stop="1.1000", triggered=True)
    assert order_hit(triggered, D("1.0998"), D("1.1008")) is None  # above its limit
    assert order_hit(triggered, D("1.0995"), D("1.1005")) is Kind.LIMIT
    assert order_hit(triggered, D("1.0980"), D("1.0990")) is Kind.LIMIT  # below its stop too


@pytest.mark.parametrize(
    ("bid", "ask", "expected"),
    [
        ("1.0950", "1.2000", Kind.STOP_LOSS),  # bid == SL; the ask does not count
        ("1.0940", "1.0941", Kind.STOP_LOSS),
        ("1.0951", "1.0000", None),
        ("1.1050", "1.1060", Kind.TAKE_PROFIT),  # bid == TP
        ("1.1049", "1.2000", None),
    ],
)
def test_a_long_closes_at_the_bid_at_or_below_its_stop_loss_or_at_or_above_its_take_profit(
    bid: str, ask: str, expected: Kind | None
) -> None:
    long = position(Side.BUY, sl="1.0950", tp="1.1050")
    assert position_hit(long, D(bid), D(ask)) is expected


@pytest.mark.parametrize(
    ("bid", "ask", "expected"),
    [
        ("1.0000", "1.1050", Kind.STOP_LOSS),  # ask == SL; the bid does not count
        ("1.1040", "1.1049", None),
        ("1.2000", "1.0950", Kind.TAKE_PROFIT),  # ask == TP
        ("1.0900", "1.0951", None),
    ],
)
def test_a_short_closes_at_the_ask_at_or_above_its_stop_loss_or_at_or_below_its_take_profit(
    bid: str, ask: str, expected: Kind | None
) -> None:
    short = position(Side.SELL, sl="1.1050", tp="1.0950")
    assert position_hit(short, D(bid), D(ask)) is expected


def test_a_position_with_only_a_take_profit_has_no_stop_loss_hit() -> None:
    assert position_hit(position(Side.BUY, tp="1.2000"), D("0.5"), D("0.6")) is None


def test_the_index_checks_only_the_quotes_group_and_symbol() -> None:
    index = TriggerIndex()
    index.put_order(order(OrderKind.LIMIT, Side.BUY, price="1.1000"))
    index.put_order(order(OrderKind.LIMIT, Side.BUY, price="1.1000", order_id="o2", group="g2"))
    index.put_position(position(Side.BUY, sl="1.0950"))
    hits = list(index.hits(GROUP, "EURUSD", D("1.0900"), D("1.0910")))
    assert [(h.kind, h.id) for h in hits] == [(Kind.LIMIT, "o1"), (Kind.STOP_LOSS, "p1")]
    assert list(index.hits(GROUP, "GBPUSD", D("1.0900"), D("1.0910"))) == []
    assert [h.id for h in index.hits("g2", "EURUSD", D("1.0900"), D("1.0910"))] == ["o2"]
    assert index.sizes == (2, 1)


def test_an_older_copy_never_replaces_a_newer_one() -> None:
    index = TriggerIndex()
    assert index.put_order(order(OrderKind.LIMIT, Side.BUY, price="1.1000", version=6))
    assert not index.put_order(order(OrderKind.LIMIT, Side.BUY, price="1.2000", version=5))
    held = index.order("o1")
    assert held is not None
    assert held.price == D("1.1000")
    index.discard_order("o1", version=5)  # an older event's removal
    assert index.order("o1") is not None
    index.discard_order("o1", version=7)
    assert index.order("o1") is None
    assert index.sizes == (0, 0)


def test_an_amended_order_moves_and_a_position_without_stops_leaves() -> None:
    index = TriggerIndex()
    index.put_order(order(OrderKind.LIMIT, Side.BUY, price="1.0900", version=5))
    index.put_order(order(OrderKind.LIMIT, Side.BUY, price="1.1000", version=6))
    assert [h.id for h in index.hits(GROUP, "EURUSD", D("1.0990"), D("1.1000"))] == ["o1"]
    index.put_position(position(Side.BUY, sl="1.0950", version=2))
    assert index.position("p1") is not None
    index.put_position(position(Side.BUY, version=3))  # stops removed (ModifyPosition)
    assert index.position("p1") is None
    assert index.sizes == (1, 0)


def test_clear_empties_the_index() -> None:
    index = TriggerIndex()
    index.put_order(order(OrderKind.STOP, Side.SELL, stop="1.0"))
    index.put_position(position(Side.SELL, tp="1.0"))
    index.clear()
    assert index.sizes == (0, 0)

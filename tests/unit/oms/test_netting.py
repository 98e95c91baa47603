"""STP netting: one hedge for a window's net, and each client order's own fill (ADR 0007)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.oms.domain.netting import Allocation
from services.oms.domain.netting import AllocationOutcome
from services.oms.domain.netting import HedgeResult
from services.oms.domain.netting import RawPrices
from services.oms.domain.netting import WindowOrder
from services.oms.domain.netting import WindowTimeInForce
from services.oms.domain.netting import allocate
from services.oms.domain.netting import client_price
from services.oms.domain.netting import net_of
from services.oms.domain.positions import Side

D = Decimal
IOC, FOK = WindowTimeInForce.IOC, WindowTimeInForce.FOK
FILLED, PARTIAL, NOT_FILLED = (
    AllocationOutcome.FILLED,
    AllocationOutcome.PARTIALLY_FILLED,
    AllocationOutcome.NOT_FILLED,
)
RAW = RawPrices(bid=D("1.10000"), ask=D("1.10010"))


def order(
    order_id: str,
    side: Side,
    quantity: str,
    tif: WindowTimeInForce = IOC,
    markup: str = "0.00005",
) -> WindowOrder:
    return WindowOrder(order_id, side, D(quantity), tif, D(markup), D(markup))


def test_three_clients_net_to_one_hedge_on_the_larger_side() -> None:
    window = [
        order("a", Side.BUY, "1.00"),
        order("b", Side.SELL, "0.30"),
        order("c", Side.BUY, "0.50"),
    ]

    net = net_of(window)

    assert (net.side, net.quantity) == (Side.BUY, D("1.20"))
    assert (net.gross_buy, net.gross_sell, net.internalized) == (D("1.50"), D("0.30"), D("0.30"))


def test_a_window_that_nets_to_zero_needs_no_hedge_and_fills_at_the_raw_prices() -> None:
    window = [order("a", Side.BUY, "0.40"), order("b", Side.SELL, "0.40", markup="0")]

    assert net_of(window).side is None
    assert allocate(window, None, RAW, 5) == [
        Allocation("a", FILLED, D("0.40"), D("1.10015")),
        Allocation("b", FILLED, D("0.40"), D("1.10000")),
    ]


def test_a_filled_hedge_fills_everyone_each_at_its_own_price() -> None:
    window = [
        order("a", Side.BUY, "1.00"),
        order("b", Side.SELL, "0.30", markup="0.00002"),
        order("c", Side.BUY, "0.50", markup="0"),
    ]

    allocations = allocate(window, HedgeResult(D("1.20"), D("1.100125")), RAW, 5)

    assert allocations == [
        # The hedge's average plus a's markup, rounded up against the buyer.
        Allocation("a", FILLED, D("1.00"), D("1.10018")),
        # The other side is internalized at the raw bid less its own markup.
        Allocation("b", FILLED, D("0.30"), D("1.09998")),
        Allocation("c", FILLED, D("0.50"), D("1.10013")),
    ]


def test_a_partly_filled_hedge_is_shared_first_come_first_served() -> None:
    window = [
        order("a", Side.BUY, "1.00"),
        order("b", Side.SELL, "0.30"),
        order("c", Side.BUY, "0.50"),
    ]

    # Pool: 0.30 internalized + 0.90 from the provider = 1.20 of the 1.50 bought.
    allocations = allocate(window, HedgeResult(D("0.90"), D("1.10010")), RAW, 5)

    assert [(a.order_id, a.outcome, a.quantity) for a in allocations] == [
        ("a", FILLED, D("1.00")),
        ("b", FILLED, D("0.30")),
        ("c", PARTIAL, D("0.20")),
    ]


def test_a_fok_that_cannot_be_filled_takes_nothing_and_leaves_its_share_to_later_orders() -> None:
    window = [
        order("a", Side.SELL, "1.00", FOK),
        order("b", Side.SELL, "0.40", IOC),
        order("c", Side.BUY, "0.20"),
    ]

    allocations = allocate(window, HedgeResult(D("0.50"), D("1.09990")), RAW, 5)

    assert allocations == [
        Allocation("a", NOT_FILLED, D("0"), None),
        Allocation("b", FILLED, D("0.40"), D("1.09985")),
        Allocation("c", FILLED, D("0.20"), D("1.10015")),
    ]


def test_a_rejected_hedge_still_fills_the_internalized_part_at_the_raw_price() -> None:
    window = [order("a", Side.BUY, "1.00"), order("b", Side.SELL, "0.25")]

    allocations = allocate(window, HedgeResult(D("0"), None), RAW, 5)

    assert allocations == [
        Allocation("a", PARTIAL, D("0.25"), D("1.10015")),
        Allocation("b", FILLED, D("0.25"), D("1.09995")),
    ]


def test_with_nothing_internalized_a_rejected_hedge_fills_nobody() -> None:
    window = [order("a", Side.BUY, "1.00"), order("b", Side.BUY, "0.10", FOK)]

    allocations = allocate(window, HedgeResult(D("0"), None), RAW, 5)

    assert [a.outcome for a in allocations] == [NOT_FILLED, NOT_FILLED]


@pytest.mark.parametrize(
    ("side", "raw", "price"),
    [
        (Side.BUY, "1.100001", "1.10006"),  # up for a buyer
        (Side.SELL, "1.100009", "1.09995"),  # down for a seller
        (Side.BUY, "1.10000", "1.10005"),
    ],
)
def test_a_client_price_is_rounded_to_the_digits_against_the_client(
    side: Side, raw: str, price: str
) -> None:
    assert client_price(D(raw), order("x", side, "1"), 5) == D(price)


@pytest.mark.parametrize(
    ("hedge", "problem"),
    [
        (None, "needs its hedge"),
        (HedgeResult(D("2"), D("1.1")), "filled 2 of"),
        (HedgeResult(D("0.5"), None), "average price"),
        (HedgeResult(D("0"), D("1.1")), "average price"),
    ],
)
def test_an_impossible_hedge_result_is_refused(hedge: HedgeResult | None, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        allocate([order("a", Side.BUY, "1")], hedge, RAW, 5)

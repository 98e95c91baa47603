"""STP execution against the real stack (issue #6, ADR 0007 "Execution modes"): the OMS's own
FIX sessions to the LP simulators, netting windows, hedge orders and their allocation.

Traders are in the seeded "pro-stp" group (STP, hedging positions, no markup, commission 3.50
per lot). Both LP simulators are pinned, lp-alpha at the better price on both sides, so every
hedge goes to lp-alpha and every price is known; the quoted size is pinned too where a test
needs the provider to run short of liquidity.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import grpc
import pytest

from simulators.lp.control import ControlClient
from tests.integration.callers import Who
from tests.integration.events import events_on
from tests.integration.events import published
from tests.integration.support.components import kill_oms
from tests.integration.support.components import start_oms
from tests.integration.support.orders import Oms
from tests.integration.support.orders import Trader
from tests.integration.support.orders import new_group
from tests.integration.support.orders import new_trader
from tests.integration.support.orders import place
from tests.integration.support.stp import ALPHA
from tests.integration.support.stp import BETA
from tests.integration.support.stp import S
from tests.integration.support.stp import await_group_price
from tests.integration.support.stp import await_pinned_price
from tests.integration.support.stp import ended
from tests.integration.support.stp import get_order
from tests.integration.support.stp import hedges_of
from tests.integration.support.stp import lp_order_reports
from tests.integration.support.stp import lp_reports
from tests.integration.support.stp import pin_both
from tests.integration.support.stp import stp_trader
from tests.integration.support.stp import trades
from tests.integration.support.waiting import eventually
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import details_of
from tradingmesh.oms.v1 import oms_events_pb2
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_admin_service_pb2
from tradingmesh.oms.v1 import order_admin_service_pb2_grpc
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.oms.v1 import position_service_pb2

R = ErrorReason
D = Decimal


@pytest.fixture
def both_pinned(lps: dict[str, ControlClient]) -> Callable[[str | None], None]:
    """Pins EURUSD at both LPs (lp-alpha better on both sides), with `size` lots quoted on
    each side (None: the simulator's usual 50); the conftest's `lps` restores them."""
    return lambda size: pin_both(lps, size=size)


def linked_orders(oms: Oms, hedge_id: str) -> set[str]:
    rows = oms.rows(
        "SELECT order_id::text FROM oms.hedge_order_orders WHERE hedge_order_id = %s", hedge_id
    )
    return {r[0] for r in rows}


def _hedge_events(oms: Oms) -> list[tuple[str, str]]:
    """Every hedge order event published so far in the OMS stream's envelopes, in order:
    (subject, hedge order id)."""
    kinds: dict[str, Any] = {
        "oms.hedge_order.sent": oms_events_pb2.HedgeOrderSent,
        "oms.hedge_order.filled": oms_events_pb2.HedgeOrderFilled,
    }
    messages = asyncio.run(published(oms.stack, "OMS", "oms.>"))
    return [
        (event.subject, kinds[event.subject].FromString(event.data).hedge_order.id)
        for _, event in events_on(messages, "oms.hedge_order.*")
        if event.subject in kinds
    ]


def place_together(oms: Oms, orders: list[tuple[Trader, dict[str, Any]]]) -> list[oms_pb2.Order]:
    """Places the orders at the same moment, one thread each."""
    start = threading.Barrier(len(orders))

    def one(item: tuple[Trader, dict[str, Any]]) -> oms_pb2.Order:
        trader, fields = item
        start.wait()
        return place(oms, trader, **fields)

    with ThreadPoolExecutor(len(orders)) as pool:
        return list(pool.map(one, orders))


def test_orders_of_three_clients_in_one_window_make_one_net_hedge_order_at_the_lp(
    oms: Oms, both_pinned: Callable[[str | None], None]
) -> None:
    a, b, c = (stp_trader(oms) for _ in range(3))
    both_pinned(None)
    await_pinned_price(oms, a)

    # Three orders at the same moment. Their commits normally fall within the 50 ms window;
    # on a crowded machine they may not, and each window then hedges its own orders: only
    # that (more than one hedge) repeats the round, at most three times.
    rounds: list[int] = []
    for _ in range(3):
        placed = place_together(
            oms,
            [
                (a, {"side": types_pb2.SIDE_BUY, "quantity": "1.00"}),
                (b, {"side": types_pb2.SIDE_BUY, "quantity": "0.50"}),
                (c, {"side": types_pb2.SIDE_SELL, "quantity": "0.30"}),
            ],
        )
        # The answer: accepted and working, in STP; the fills come from the hedge.
        for order in placed:
            assert order.status == S.ORDER_STATUS_WORKING, (
                order.status_reason,
                order.status_message,
            )
            assert order.execution_mode == types_pb2.EXECUTION_MODE_STP
        ids = [o.id for o in placed]
        buy_a, buy_b, sell_c = (
            ended(oms, trader, order.id) for trader, order in zip((a, b, c), placed, strict=True)
        )
        found = hedges_of(oms, ids)
        rounds.append(len(found))
        if len(found) == 1:
            break
    assert rounds[-1] == 1, f"hedge orders per round: {rounds}"

    # One hedge order for the net, 1.50 bought less 0.30 sold, at the best ask's LP.
    (hedge,) = found
    assert linked_orders(oms, hedge["id"]) == set(ids)
    assert (hedge["side"], hedge["quantity"], hedge["status"]) == ("BUY", D("1.2"), "FILLED")
    assert (hedge["gross_buy_quantity"], hedge["gross_sell_quantity"]) == (D("1.5"), D("0.3"))
    assert (hedge["filled_quantity"], hedge["average_price"]) == (D("1.2"), D("1.1001"))
    assert hedge["liquidity_provider_id"] == "lp-alpha"

    # The LP saw exactly that one order: 1.2 lots bought, under the hedge's id, and no client's.
    reports = lp_reports(oms, "lp-alpha")
    ours = [r for r in reports if r.get(11) == hedge["id"]]
    assert ours, "lp-alpha answered the hedge order"
    assert {(r[54], D(r[38])) for r in ours} == {("1", D("1.2"))}
    assert not [r for r in reports if r.get(11) in ids]
    assert not [r for r in lp_reports(oms, "lp-beta") if r.get(11) in {*ids, hedge["id"]}]

    # Each client fills in full at its own price: the buys at the hedge's price (no markup in
    # pro-stp), the internalized sell at the raw best bid when the hedge left.
    for order, quantity, price in (
        (buy_a, "1.00", "1.1001"),
        (buy_b, "0.50", "1.1001"),
        (sell_c, "0.30", "1.1"),
    ):
        assert order.status == S.ORDER_STATUS_FILLED, (order.status_reason, order.status_message)
        assert (D(order.filled_quantity), D(order.average_fill_price)) == (D(quantity), D(price))
    for trader, order, commission in (
        (a, buy_a, "3.50"),
        (b, buy_b, "1.75"),
        (c, sell_c, "1.05"),
    ):
        (trade,) = trades(oms, trader, order.id)
        assert trade.hedge_order_id == hedge["id"]
        assert D(trade.commission) == D(commission)  # 3.50 per lot
        assert trade.position_effect == S.POSITION_EFFECT_OPEN  # hedging: its own position
        (position,) = [
            p
            for p in oms.positions.ListPositions(
                position_service_pb2.ListPositionsRequest(account_id=trader.account_id),
                metadata=trader.md,
            ).positions
            if p.id == trade.position_id
        ]
        assert (position.quantity, position.open_price) == (trade.quantity, trade.price)

    # The hedge order's life went out as events: sent, then its fill(s).
    def sent_and_filled() -> list[str] | None:
        seen = [subject for subject, hedge_id in _hedge_events(oms) if hedge_id == hedge["id"]]
        return seen if "oms.hedge_order.filled" in seen else None

    subjects = eventually(sent_and_filled, 15, "the hedge order's events")
    assert subjects.count("oms.hedge_order.sent") == 1


def test_staff_find_hedge_orders_by_their_client_orders_and_filters_and_page_through_them(
    oms: Oms, both_pinned: Callable[[str | None], None]
) -> None:
    trader = stp_trader(oms)
    both_pinned(None)
    await_pinned_price(oms, trader)
    placed = []
    for _ in range(2):  # one after the other: two windows, two hedge orders
        placed.append(place(oms, trader, side=types_pb2.SIDE_BUY, quantity="0.10"))
        ended(oms, trader, placed[-1].id)
    admin = order_admin_service_pb2_grpc.OrderAdminServiceStub(oms.channel)
    dealer = oms.stack.as_(Who(str(uuid.uuid4()), "dealer"))
    (hedge,) = hedges_of(oms, [placed[1].id])

    by_order = admin.ListHedgeOrders(
        order_admin_service_pb2.ListHedgeOrdersRequest(order_id=placed[1].id), metadata=dealer
    ).hedge_orders
    assert [(h.id, list(h.order_ids)) for h in by_order] == [(hedge["id"], [placed[1].id])]
    got = admin.GetHedgeOrder(
        order_admin_service_pb2.GetHedgeOrderRequest(hedge_order_id=hedge["id"]), metadata=dealer
    ).hedge_order
    assert got == by_order[0]
    assert got.status == oms_pb2.HEDGE_ORDER_STATUS_FILLED

    # Every filter at once, a page at a time: newest first, each page after the one before.
    since = types_pb2.TimeRange()
    since.start_time.FromSeconds(int(time.time()) - 3600)
    seen: list[str] = []
    token = ""
    for _ in range(2):
        assert token or not seen
        page = admin.ListHedgeOrders(
            order_admin_service_pb2.ListHedgeOrdersRequest(
                symbol="EURUSD",
                liquidity_provider_id="lp-alpha",
                statuses=[oms_pb2.HEDGE_ORDER_STATUS_FILLED],
                time_range=since,
                page_size=1,
                page_token=token,
            ),
            metadata=dealer,
        )
        (one,) = page.hedge_orders
        assert (one.symbol, one.liquidity_provider_id) == ("EURUSD", "lp-alpha")
        assert one.status == oms_pb2.HEDGE_ORDER_STATUS_FILLED
        seen.append(one.id)
        token = page.next_page_token
    created = dict(oms.rows("SELECT id::text, created_at FROM oms.hedge_orders"))
    assert seen[0] != seen[1]
    assert created[seen[0]] >= created[seen[1]]

    with pytest.raises(grpc.RpcError) as missing:
        admin.GetHedgeOrder(
            order_admin_service_pb2.GetHedgeOrderRequest(hedge_order_id=str(uuid.uuid4())),
            metadata=dealer,
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_fok_order_larger_than_the_lps_liquidity_is_rejected_for_no_liquidity(
    oms: Oms, both_pinned: Callable[[str | None], None]
) -> None:
    trader = stp_trader(oms)
    both_pinned("1.00")  # the LPs quote 1 lot a side
    await_pinned_price(oms, trader)

    placed = place(oms, trader, quantity="1.50", time_in_force=S.TIME_IN_FORCE_FOK)

    assert placed.status == S.ORDER_STATUS_WORKING
    order = ended(oms, trader, placed.id)
    assert order.status == S.ORDER_STATUS_REJECTED
    assert order.status_reason == R.ERROR_REASON_NO_LIQUIDITY, order.status_message
    assert D(order.filled_quantity) == 0
    assert trades(oms, trader, order.id) == []
    # The provider filled what it had of the IOC hedge and cancelled the rest.
    (hedge,) = hedges_of(oms, [order.id])
    assert (hedge["status"], hedge["quantity"], hedge["filled_quantity"]) == (
        "CANCELLED",
        D("1.5"),
        D("1"),
    )


def test_an_ioc_order_larger_than_the_lps_liquidity_fills_what_it_can_and_cancels_the_rest(
    oms: Oms, both_pinned: Callable[[str | None], None]
) -> None:
    trader = stp_trader(oms)
    both_pinned("1.00")
    await_pinned_price(oms, trader)

    placed = place(oms, trader, quantity="1.50", time_in_force=S.TIME_IN_FORCE_IOC)

    assert placed.status == S.ORDER_STATUS_WORKING
    order = ended(oms, trader, placed.id)
    assert order.status == S.ORDER_STATUS_CANCELLED
    assert order.status_reason == R.ERROR_REASON_NO_LIQUIDITY, order.status_message
    assert (D(order.filled_quantity), D(order.average_fill_price)) == (D("1"), D("1.1001"))
    (trade,) = trades(oms, trader, order.id)
    (hedge,) = hedges_of(oms, [order.id])
    assert trade.hedge_order_id == hedge["id"]
    assert (D(trade.quantity), D(trade.commission)) == (D("1"), D("3.50"))
    assert (hedge["status"], hedge["filled_quantity"]) == ("CANCELLED", D("1"))


def test_buys_and_sells_that_net_to_zero_fill_at_the_raw_prices_without_a_hedge(
    oms: Oms, both_pinned: Callable[[str | None], None]
) -> None:
    buyer, seller = stp_trader(oms), stp_trader(oms)
    both_pinned(None)
    await_pinned_price(oms, buyer)

    rounds: list[int] = []
    for _ in range(3):  # again only when the two fell into different windows (see above)
        placed = place_together(
            oms,
            [
                (buyer, {"side": types_pb2.SIDE_BUY, "quantity": "0.40"}),
                (seller, {"side": types_pb2.SIDE_SELL, "quantity": "0.40"}),
            ],
        )
        bought, sold = (
            ended(oms, trader, order.id)
            for trader, order in zip((buyer, seller), placed, strict=True)
        )
        rounds.append(len(hedges_of(oms, [o.id for o in placed])))
        if rounds[-1] == 0:
            break
    assert rounds[-1] == 0, f"hedge orders per round: {rounds}"

    assert (bought.status, D(bought.average_fill_price)) == (S.ORDER_STATUS_FILLED, D("1.1001"))
    assert (sold.status, D(sold.average_fill_price)) == (S.ORDER_STATUS_FILLED, D("1.1"))
    (trade,) = trades(oms, buyer, bought.id)
    assert trade.hedge_order_id == ""


# ---- STP limit and stop-limit orders: a hedge order of their own, at their limit -----------------


def markup_group(oms: Oms, points: int) -> str:
    """An STP group of its own (hedging positions, 3.50 commission per lot) whose price is
    `points` wider than the raw best."""
    return new_group(
        oms,
        types_pb2.EXECUTION_MODE_STP,
        positions=types_pb2.POSITION_MODE_HEDGING,
        commission="3.50",
        markup_points=points,
    )


def place_limit(
    oms: Oms,
    trader: Trader,
    price: str,
    quantity: str,
    tif: trading_pb2.TimeInForce.ValueType = S.TIME_IN_FORCE_GTC,
    side: types_pb2.Side.ValueType = types_pb2.SIDE_BUY,
) -> oms_pb2.Order:
    order = place(
        oms,
        trader,
        type=S.ORDER_TYPE_LIMIT,
        side=side,
        price=price,
        quantity=quantity,
        time_in_force=tif,
    )
    assert order.status == S.ORDER_STATUS_WORKING, (order.status_reason, order.status_message)
    assert order.execution_mode == types_pb2.EXECUTION_MODE_STP
    return order


def hedge_at(oms: Oms, order_id: str, statuses: set[str], what: str) -> dict[str, Any]:
    """The order's newest hedge order once it is in one of `statuses`."""

    def probe() -> dict[str, Any] | None:
        found = hedges_of(oms, [order_id])
        return found[-1] if found and found[-1]["status"] in statuses else None

    result: dict[str, Any] = eventually(probe, 20, what)
    return result


def order_audit(oms: Oms, order_id: str) -> list[str]:
    return [
        str(r[0])
        for r in oms.rows(
            "SELECT event FROM oms.audit_records WHERE entity_id = %s ORDER BY sequence", order_id
        )
    ]


def ledger_of(oms: Oms, account_id: str) -> dict[str, list[tuple[str, Decimal]]]:
    """(reason, amount) of the account's ledger entries per trade id."""
    booked: dict[str, list[tuple[str, Decimal]]] = {}
    for reason, amount, trade_id in oms.rows(
        "SELECT reason, amount, trade_id::text FROM account.ledger_entries"
        " WHERE account_id = %s AND trade_id IS NOT NULL ORDER BY sequence",
        account_id,
    ):
        booked.setdefault(trade_id, []).append((reason, amount))
    return booked


def test_an_stp_buy_limit_rests_then_is_hedged_at_its_raw_limit_and_fills_at_or_below_it(
    oms: Oms, lps: dict[str, ControlClient]
) -> None:
    trader = new_trader(oms, markup_group(oms, 4))  # 2 points off the bid, 2 onto the ask
    pin_both(lps, ("1.10000", "1.10010"), ("1.09990", "1.10030"))
    await_group_price(oms, trader, "1.09998", "1.10012")

    order = place_limit(oms, trader, "1.09992", "1.00")

    # Below the ask: it rests, and no hedge order is made.
    time.sleep(1.5)
    assert get_order(oms, trader, order.id).status == S.ORDER_STATUS_WORKING
    assert hedges_of(oms, [order.id]) == []

    # lp-alpha's ask falls to 1.09985: the group's ask 1.09987 reaches the limit.
    pin_both(lps, ("1.09975", "1.09985"), ("1.09960", "1.10000"))
    filled = ended(oms, trader, order.id)

    assert filled.status == S.ORDER_STATUS_FILLED, (filled.status_reason, filled.status_message)
    # The provider's 1.09985 plus the 2-point markup: better than the limit.
    assert (D(filled.filled_quantity), D(filled.average_fill_price)) == (D("1"), D("1.09987"))
    assert D(filled.average_fill_price) <= D("1.09992")
    (hedge,) = hedges_of(oms, [order.id])
    assert (hedge["side"], hedge["quantity"], hedge["status"]) == ("BUY", D("1"), "FILLED")
    assert (hedge["filled_quantity"], hedge["average_price"]) == (D("1"), D("1.09985"))
    assert hedge["liquidity_provider_id"] == "lp-alpha"
    assert linked_orders(oms, hedge["id"]) == {order.id}

    # The provider got a FIX limit order, IOC, at the raw limit: 1.09992 less the 2 points.
    reports = lp_order_reports(oms, hedge["id"])
    assert reports, "lp-alpha answered the hedge order"
    assert {(r[40], D(r[44]), r[59], r[54], D(r[38])) for r in reports} == {
        ("2", D("1.0999"), "3", "1", D("1"))
    }
    fills = [r for r in reports if r[150] == "F"]
    assert [D(r[31]) for r in fills] == [D("1.09985")]

    # The fill's trade, position and ledger, as for any STP fill.
    (trade,) = trades(oms, trader, order.id)
    assert trade.hedge_order_id == hedge["id"]
    assert (D(trade.quantity), D(trade.price), D(trade.commission)) == (
        D("1"),
        D("1.09987"),
        D("3.50"),
    )
    assert trade.position_effect == S.POSITION_EFFECT_OPEN
    (position,) = [
        p
        for p in oms.positions.ListPositions(
            position_service_pb2.ListPositionsRequest(account_id=trader.account_id),
            metadata=trader.md,
        ).positions
        if p.id == trade.position_id
    ]
    assert (D(position.quantity), D(position.open_price)) == (D("1"), D("1.09987"))
    booked = eventually(
        lambda: ledger_of(oms, trader.account_id).get(trade.id), 20, "the trade's ledger entries"
    )
    assert ("COMMISSION", D("-3.50")) in booked
    assert order_audit(oms, order.id)[-1] == "FILLED"


def test_an_stp_limit_larger_than_the_lps_size_keeps_what_it_got_and_tries_again(
    oms: Oms, lps: dict[str, ControlClient]
) -> None:
    trader = stp_trader(oms)
    pin_both(lps, ALPHA, BETA, size="0.50")  # each provider quotes half a lot a side
    await_pinned_price(oms, trader)

    # IOC: the half lot the provider had, then the rest is cancelled.
    ioc = place_limit(oms, trader, "1.10010", "1.00", S.TIME_IN_FORCE_IOC)
    done = ended(oms, trader, ioc.id)
    assert done.status == S.ORDER_STATUS_CANCELLED
    assert done.status_reason == R.ERROR_REASON_NO_LIQUIDITY, done.status_message
    assert (D(done.filled_quantity), D(done.average_fill_price)) == (D("0.5"), D("1.1001"))
    (hedge,) = hedges_of(oms, [ioc.id])
    assert (hedge["status"], hedge["filled_quantity"]) == ("CANCELLED", D("0.5"))

    # FOK: sent to the provider as FOK, which fills all or nothing: nothing.
    fok = place_limit(oms, trader, "1.10010", "1.00", S.TIME_IN_FORCE_FOK)
    done = ended(oms, trader, fok.id)
    assert done.status == S.ORDER_STATUS_REJECTED
    assert done.status_reason == R.ERROR_REASON_NO_LIQUIDITY, done.status_message
    assert trades(oms, trader, fok.id) == []
    (hedge,) = hedges_of(oms, [fok.id])
    assert (hedge["status"], hedge["filled_quantity"]) == ("CANCELLED", D("0"))
    assert {(r[40], r[59]) for r in lp_order_reports(oms, hedge["id"])} == {("2", "4")}

    # GTC: the half lot now, and the rest stays working; the price is still there, so after
    # its pause the order tries again with a hedge order of its own and gets the other half.
    gtc = place_limit(oms, trader, "1.10010", "1.00")
    done = ended(oms, trader, gtc.id)
    assert done.status == S.ORDER_STATUS_FILLED, (done.status_reason, done.status_message)
    first, second = hedges_of(oms, [gtc.id])
    assert (first["status"], first["filled_quantity"]) == ("CANCELLED", D("0.5"))
    assert (second["quantity"], second["filled_quantity"]) == (D("0.5"), D("0.5"))
    assert {t.hedge_order_id for t in trades(oms, trader, gtc.id)} == {first["id"], second["id"]}
    assert order_audit(oms, gtc.id)[-2:] == ["PARTIALLY_FILLED", "FILLED"]


def test_an_stp_limit_whose_price_moves_away_at_the_lp_stays_working_or_is_rejected(
    oms: Oms, lps: dict[str, ControlClient]
) -> None:
    trader = stp_trader(oms)
    pin_both(lps)
    await_pinned_price(oms, trader)
    lps["lp-alpha"].set_fill_delay(3000)  # the provider executes 3 s after the order arrives
    away = (("1.10040", "1.10050"), ("1.10030", "1.10060"))

    # IOC: at the limit when placed; by the time the provider executes, its ask is 1.10050.
    ioc = place_limit(oms, trader, "1.10010", "0.50", S.TIME_IN_FORCE_IOC)
    hedge_at(oms, ioc.id, {"SENT", "WORKING"}, "the IOC's hedge order at the provider")
    pin_both(lps, *away)
    done = ended(oms, trader, ioc.id)
    assert done.status == S.ORDER_STATUS_REJECTED
    assert done.status_reason == R.ERROR_REASON_NO_LIQUIDITY, done.status_message
    (hedge,) = hedges_of(oms, [ioc.id])
    assert (hedge["status"], hedge["filled_quantity"]) == ("CANCELLED", D("0"))
    (cancel,) = [r for r in lp_order_reports(oms, hedge["id"]) if r[150] == "4"]
    assert "price moved" in cancel[58]

    # GTC, the same way: nothing filled, and it stays WORKING.
    pin_both(lps)
    await_pinned_price(oms, trader)
    gtc = place_limit(oms, trader, "1.10010", "0.50")
    hedge_at(oms, gtc.id, {"SENT", "WORKING"}, "the GTC's hedge order at the provider")
    pin_both(lps, *away)
    (hedge,) = [hedge_at(oms, gtc.id, {"CANCELLED"}, "the provider cancels the hedge order")]
    assert hedge["filled_quantity"] == 0
    time.sleep(3)
    still = get_order(oms, trader, gtc.id)
    assert (still.status, D(still.filled_quantity)) == (S.ORDER_STATUS_WORKING, D(0))
    assert trades(oms, trader, gtc.id) == []
    assert len(hedges_of(oms, [gtc.id])) == 1  # not tried again while the price is away

    # The price comes back: the order is tried again, and fills.
    lps["lp-alpha"].set_fill_delay(2)
    pin_both(lps)
    done = ended(oms, trader, gtc.id)
    assert done.status == S.ORDER_STATUS_FILLED, (done.status_reason, done.status_message)
    assert D(done.average_fill_price) == D("1.1001")
    assert [h["status"] for h in hedges_of(oms, [gtc.id])] == ["CANCELLED", "FILLED"]


def test_an_stp_limit_at_the_lp_cannot_be_amended_and_a_cancel_takes_what_it_got(
    oms: Oms, lps: dict[str, ControlClient]
) -> None:
    trader = stp_trader(oms)
    pin_both(lps, ALPHA, BETA, size="0.40")
    await_pinned_price(oms, trader)
    lps["lp-alpha"].set_fill_delay(3000)

    order = place_limit(oms, trader, "1.10010", "1.00")
    hedge_at(oms, order.id, {"SENT", "WORKING"}, "the hedge order at the provider")

    with pytest.raises(grpc.RpcError) as amend:
        oms.orders.AmendOrder(
            order_service_pb2.AmendOrderRequest(
                account_id=trader.account_id, order_id=order.id, price="1.10000"
            ),
            metadata=trader.md,
            timeout=10,
        )
    assert amend.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details_of(amend.value).reason == R.ERROR_REASON_INVALID_ORDER_STATE

    cancelling = oms.orders.CancelOrder(
        order_service_pb2.CancelOrderRequest(account_id=trader.account_id, order_id=order.id),
        metadata=trader.md,
        timeout=10,
    ).order
    assert cancelling.status == S.ORDER_STATUS_PENDING_CANCEL

    done = ended(oms, trader, order.id)
    assert done.status == S.ORDER_STATUS_CANCELLED
    assert (D(done.filled_quantity), D(done.average_fill_price)) == (D("0.4"), D("1.1001"))
    (hedge,) = hedges_of(oms, [order.id])
    assert (hedge["status"], hedge["filled_quantity"]) == ("CANCELLED", D("0.4"))
    (trade,) = trades(oms, trader, order.id)
    assert (trade.hedge_order_id, D(trade.quantity)) == (hedge["id"], D("0.4"))


def test_an_stp_stop_limit_triggers_on_its_stop_then_is_hedged_at_its_limit(
    oms: Oms, lps: dict[str, ControlClient]
) -> None:
    trader = stp_trader(oms)
    pin_both(lps)
    await_pinned_price(oms, trader)

    order = place(
        oms,
        trader,
        type=S.ORDER_TYPE_STOP_LIMIT,
        stop_price="1.10030",
        price="1.10040",
        quantity="0.50",
        time_in_force=S.TIME_IN_FORCE_GTC,
    )
    assert order.status == S.ORDER_STATUS_WORKING
    time.sleep(1)
    assert hedges_of(oms, [order.id]) == []

    # The ask rises to 1.10035: the stop (ask >= 1.10030) triggers and the limit 1.10040 is
    # reached at once.
    pin_both(lps, ("1.10025", "1.10035"), ("1.10015", "1.10045"))
    done = ended(oms, trader, order.id)

    assert done.status == S.ORDER_STATUS_FILLED, (done.status_reason, done.status_message)
    assert done.HasField("trigger_time")
    assert (D(done.filled_quantity), D(done.average_fill_price)) == (D("0.5"), D("1.10035"))
    (hedge,) = hedges_of(oms, [order.id])
    assert (hedge["status"], hedge["average_price"]) == ("FILLED", D("1.10035"))
    assert {(r[40], D(r[44])) for r in lp_order_reports(oms, hedge["id"])} == {("2", D("1.1004"))}
    (trade,) = trades(oms, trader, order.id)
    assert (trade.hedge_order_id, D(trade.commission)) == (hedge["id"], D("1.75"))
    assert order_audit(oms, order.id)[-2:] == ["TRIGGERED", "FILLED"]


def test_a_resting_stp_limit_is_triggered_after_an_oms_restart(
    oms: Oms, lps: dict[str, ControlClient]
) -> None:
    trader = stp_trader(oms)
    pin_both(lps)
    await_pinned_price(oms, trader)
    order = place_limit(oms, trader, "1.10005", "0.30")

    kill_oms(oms)  # a crash: nothing is handed over
    start_oms(oms, trader)

    assert get_order(oms, trader, order.id).status == S.ORDER_STATUS_WORKING
    pin_both(lps, ("1.09995", "1.10005"), ("1.09985", "1.10025"))
    done = ended(oms, trader, order.id)
    assert done.status == S.ORDER_STATUS_FILLED, (done.status_reason, done.status_message)
    assert D(done.average_fill_price) == D("1.10005")

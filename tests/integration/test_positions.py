"""Positions against the real stack: valuation, closing, modifying, netting and hedging,
commission and P&L conversion, and the internal API the risk service's margin watcher uses.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_HALF_EVEN
from decimal import Decimal
from functools import partial
from typing import Any

import grpc
import pytest

from tests.integration.callers import Who
from tests.integration.events import outbox_events
from tests.integration.support.orders import Oms
from tests.integration.support.orders import R
from tests.integration.support.orders import S
from tests.integration.support.orders import Trader
from tests.integration.support.orders import live_quote
from tests.integration.support.orders import new_group
from tests.integration.support.orders import new_trader
from tests.integration.support.orders import place
from tests.integration.support.orders import place_filled
from tests.integration.support.orders import refusal
from tests.integration.support.orders import trades_of
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.oms.v1 import oms_events_pb2
from tradingmesh.oms.v1 import oms_internal_service_pb2
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_admin_service_pb2
from tradingmesh.oms.v1 import order_admin_service_pb2_grpc
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.oms.v1 import position_service_pb2

D = Decimal
CENT = D("0.01")
EURUSD_CONTRACT = D(100000)


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def position_of(oms: Oms, trader: Trader, order: oms_pb2.Order) -> oms_pb2.Position:
    trades = oms.orders.ListTrades(
        order_service_pb2.ListTradesRequest(account_id=trader.account_id, order_id=order.id),
        metadata=trader.md,
    ).trades
    assert trades, f"order {order.id} has no trade"
    return get_position(oms, trader, trades[0].position_id)


def get_position(oms: Oms, trader: Trader, position_id: str) -> oms_pb2.Position:
    return oms.positions.GetPosition(
        position_service_pb2.GetPositionRequest(
            account_id=trader.account_id, position_id=position_id
        ),
        metadata=trader.md,
    ).position


def close(
    oms: Oms, trader: Trader, position_id: str, client_order_id: str = "", **fields: Any
) -> oms_pb2.Order:
    return oms.positions.ClosePosition(
        position_service_pb2.ClosePositionRequest(
            account_id=trader.account_id,
            position_id=position_id,
            client_order_id=client_order_id or f"close-{uuid.uuid4().hex[:12]}",
            **fields,
        ),
        metadata=trader.md,
        timeout=10,
    ).order


def test_a_long_position_is_valued_at_the_bid_with_an_exact_unrealized_pnl(oms: Oms) -> None:
    trader = new_trader(oms)
    order = place_filled(oms, trader, quantity="0.30")
    position = position_of(oms, trader, order)
    assert position.current_price
    assert position.HasField("valuation_time")
    expected = cents(
        (D(position.current_price) - D(position.open_price)) * D("0.3") * EURUSD_CONTRACT
    )
    assert D(position.unrealized_pnl) == expected
    listed = oms.positions.ListPositions(
        position_service_pb2.ListPositionsRequest(account_id=trader.account_id),
        metadata=trader.md,
    ).positions
    assert [p.id for p in listed] == [position.id]


def test_closing_a_position_realizes_its_pnl_and_a_retry_returns_the_same_order(
    oms: Oms,
) -> None:
    trader = new_trader(oms)
    opened = place_filled(oms, trader, quantity="0.10")
    position = position_of(oms, trader, opened)
    client_order_id = f"close-{uuid.uuid4().hex[:12]}"

    closing = close(oms, trader, position.id, client_order_id)

    assert closing.status == S.ORDER_STATUS_FILLED, closing.status_message
    assert closing.side == types_pb2.SIDE_SELL
    assert closing.position_id == position.id
    assert closing.origin == trading_pb2.ORDER_ORIGIN_CLIENT
    (trade,) = trades_of(oms, trader, closing.id)
    assert trade.position_effect == trading_pb2.POSITION_EFFECT_CLOSE
    pnl = cents((D(trade.price) - D(position.open_price)) * D("0.1") * EURUSD_CONTRACT)
    assert D(trade.realized_pnl) == pnl
    after = get_position(oms, trader, position.id)
    assert after.status == oms_pb2.POSITION_STATUS_CLOSED
    assert (after.quantity, after.used_margin, after.unrealized_pnl) == ("0", "0.00", "0.00")
    assert D(after.realized_pnl) == pnl
    assert after.HasField("close_time")
    assert not after.current_price

    assert close(oms, trader, position.id, client_order_id) == closing
    code, reason, _ = refusal(
        lambda: close(oms, trader, position.id, client_order_id, quantity="0.05")
    )
    assert (code, reason) == (
        grpc.StatusCode.ALREADY_EXISTS,
        R.ERROR_REASON_DUPLICATE_CLIENT_ORDER_ID,
    )
    code, reason, _ = refusal(lambda: close(oms, trader, position.id))
    assert (code, reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        R.ERROR_REASON_INVALID_ORDER_STATE,
    )
    listed = oms.positions.ListPositions(
        position_service_pb2.ListPositionsRequest(account_id=trader.account_id),
        metadata=trader.md,
    ).positions
    assert list(listed) == []


def test_racing_closes_of_one_position_close_it_once_and_never_open_another(oms: Oms) -> None:
    trader = new_trader(oms)
    position = position_of(oms, trader, place_filled(oms, trader, quantity="0.10"))
    retried = f"close-{uuid.uuid4().hex[:12]}"
    ids = [retried] * 5 + [f"close-{uuid.uuid4().hex[:12]}" for _ in range(5)]

    def attempt(client_order_id: str) -> oms_pb2.Order | grpc.StatusCode:
        try:
            return close(oms, trader, position.id, client_order_id)
        except grpc.RpcError as error:
            return error.code()

    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        outcomes = list(pool.map(attempt, ids))

    orders = {o.id: o for o in outcomes if isinstance(o, oms_pb2.Order)}
    refused_codes = {o for o in outcomes if not isinstance(o, oms_pb2.Order)}
    assert refused_codes <= {grpc.StatusCode.FAILED_PRECONDITION}
    filled = [o for o in orders.values() if o.status == S.ORDER_STATUS_FILLED]
    assert len(filled) == 1, [(o.client_order_id, o.status) for o in orders.values()]
    assert get_position(oms, trader, position.id).status == oms_pb2.POSITION_STATUS_CLOSED
    assert oms.rows(
        "SELECT count(*) FROM oms.positions WHERE account_id = %s AND status = 'OPEN'",
        trader.account_id,
    ) == [(0,)]
    # The five retries of one id share one fate: all the winning order, or all refused.
    fates = {o.id if isinstance(o, oms_pb2.Order) else o for o in outcomes[:5]}
    assert len(fates) == 1
    if filled[0].client_order_id == retried:
        assert fates == {filled[0].id}


def test_a_partial_close_reduces_the_position_and_bad_quantities_are_refused(oms: Oms) -> None:
    trader = new_trader(oms)
    position = position_of(oms, trader, place_filled(oms, trader, quantity="0.10"))
    reducing = close(oms, trader, position.id, quantity="0.04")
    assert reducing.status == S.ORDER_STATUS_FILLED, reducing.status_message
    (trade,) = trades_of(oms, trader, reducing.id)
    assert trade.position_effect == trading_pb2.POSITION_EFFECT_REDUCE
    reduced = get_position(oms, trader, position.id)
    assert reduced.quantity == "0.06"
    assert reduced.open_price == position.open_price
    assert reduced.version == position.version + 1
    for quantity, reason in (
        ("0.07", R.ERROR_REASON_QUANTITY_OUT_OF_RANGE),
        ("0.015", R.ERROR_REASON_TOO_MANY_DECIMALS),
    ):
        code, got, _ = refusal(partial(close, oms, trader, position.id, quantity=quantity))
        assert (code, got) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
    unchanged = get_position(oms, trader, position.id)
    assert (unchanged.quantity, unchanged.version) == (reduced.quantity, reduced.version)


def test_netting_a_larger_opposite_order_reverses_the_position_under_its_id(oms: Oms) -> None:
    trader = new_trader(oms)
    first = position_of(oms, trader, place_filled(oms, trader, quantity="0.10"))
    reversing = place_filled(oms, trader, side=types_pb2.SIDE_SELL, quantity="0.30")
    (trade,) = trades_of(oms, trader, reversing.id)
    assert trade.position_effect == trading_pb2.POSITION_EFFECT_REVERSE
    assert trade.position_id == first.id
    after = get_position(oms, trader, first.id)
    assert after.side == types_pb2.SIDE_SELL
    assert after.quantity == "0.20"
    assert after.open_price == trade.price
    assert D(after.realized_pnl) == cents(
        (D(trade.price) - D(first.open_price)) * D("0.1") * EURUSD_CONTRACT
    )


def test_hedging_opens_a_position_per_order_and_closes_them_by_id(oms: Oms) -> None:
    group = new_group(
        oms, types_pb2.EXECUTION_MODE_MARKET, positions=types_pb2.POSITION_MODE_HEDGING
    )
    trader = new_trader(oms, group)
    one = position_of(oms, trader, place_filled(oms, trader, quantity="0.10"))
    two = position_of(oms, trader, place_filled(oms, trader, quantity="0.20"))
    assert one.id != two.id
    listed = oms.positions.ListPositions(
        position_service_pb2.ListPositionsRequest(account_id=trader.account_id),
        metadata=trader.md,
    ).positions
    assert [p.id for p in listed] == [two.id, one.id]  # newest first
    closing = place_filled(
        oms, trader, side=types_pb2.SIDE_SELL, quantity="0.10", position_id=one.id
    )
    assert closing.position_id == one.id
    assert get_position(oms, trader, one.id).status == oms_pb2.POSITION_STATUS_CLOSED
    assert get_position(oms, trader, two.id).quantity == "0.20"
    code, reason, _ = refusal(
        lambda: place(oms, trader, side=types_pb2.SIDE_BUY, quantity="0.10", position_id=two.id)
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, R.ERROR_REASON_INVALID_ORDER_FIELDS)


def test_commission_is_charged_per_lot_on_every_fill(oms: Oms) -> None:
    group = new_group(oms, types_pb2.EXECUTION_MODE_MARKET, commission="3.50")
    trader = new_trader(oms, group)
    opened = place_filled(oms, trader, quantity="0.20")
    assert opened.commission == "0.70"
    (trade,) = trades_of(oms, trader, opened.id)
    assert trade.commission == "0.70"
    position = get_position(oms, trader, trade.position_id)
    closing = close(oms, trader, position.id)
    assert closing.commission == "0.70"
    assert get_position(oms, trader, position.id).commission == "1.40"


def test_pnl_in_the_quote_currency_is_converted_to_the_account_currency(oms: Oms) -> None:
    trader = new_trader(oms)
    opened = place_filled(oms, trader, symbol="USDJPY", quantity="0.10")
    position = position_of(oms, trader, opened)
    closing = close(oms, trader, position.id)
    assert closing.status == S.ORDER_STATUS_FILLED, closing.status_message
    (trade,) = trades_of(oms, trader, closing.id)
    in_yen = (D(trade.price) - D(position.open_price)) * D("0.1") * EURUSD_CONTRACT
    # converted at the USDJPY mid of the fill: within half a spread of the fill price
    approximately = in_yen / D(trade.price)
    assert abs(D(trade.realized_pnl) - approximately) <= max(abs(approximately) / 100, CENT)
    assert D(trade.realized_pnl) == D(trade.realized_pnl).quantize(CENT)
    # margin of a USDJPY position is in USD: 0.1 x 100,000 USD at 1:100, converted from yen at
    # the mid while the position opened at the ask
    assert abs(D(position.used_margin) - D("100.00")) <= D("0.05")


def test_stop_loss_and_take_profit_are_stored_checked_and_versioned(oms: Oms) -> None:
    trader = new_trader(oms)
    position = position_of(oms, trader, place_filled(oms, trader, quantity="0.10"))
    bid = D(live_quote(oms, trader).bid)

    def modify(**fields: Any) -> oms_pb2.Position:
        return oms.positions.ModifyPosition(
            position_service_pb2.ModifyPositionRequest(
                account_id=trader.account_id, position_id=position.id, **fields
            ),
            metadata=trader.md,
        ).position

    stop_loss, take_profit = str(bid - D("0.01000")), str(bid + D("0.01000"))
    modified = modify(stop_loss=stop_loss, take_profit=take_profit, expected_version=1)
    assert (D(modified.stop_loss), D(modified.take_profit)) == (D(stop_loss), D(take_profit))
    assert modified.version == 2
    assert modify(stop_loss=stop_loss).version == 2  # nothing to change: not a new version

    code, reason, details = refusal(lambda: modify(stop_loss=str(bid + D("0.01000"))))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, R.ERROR_REASON_INVALID_STOPS)
    assert details.field_violations[0].field == "stop_loss"
    code, reason, _ = refusal(lambda: modify(take_profit=str(bid), expected_version=1))
    assert (code, reason) == (grpc.StatusCode.ABORTED, R.ERROR_REASON_CONCURRENT_MODIFICATION)
    code, reason, _ = refusal(lambda: modify(stop_loss="1.123456"))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, R.ERROR_REASON_TOO_MANY_DECIMALS)

    cleared = modify(clear_stop_loss=True)
    assert not cleared.stop_loss
    assert cleared.take_profit == modified.take_profit
    assert cleared.version == 3
    # Each new version went out once, in an envelope headlined by the change.
    envelopes = oms.rows(
        "SELECT subject, payload FROM oms.outbox WHERE position(%s::bytea IN payload) > 0"
        " ORDER BY position",
        position.id.encode(),
    )
    changes = [
        (subject, changed.position.id, changed.change_type, changed.position.version)
        for subject, payload in envelopes
        for event in outbox_events([(payload,)], "oms.position.changed")
        for changed in [oms_events_pb2.PositionChanged.FromString(event.data)]
    ]
    stops_modified = oms_events_pb2.POSITION_CHANGE_TYPE_STOPS_MODIFIED
    assert changes == [
        ("oms.position.changed", position.id, stops_modified, 2),
        ("oms.position.changed", position.id, stops_modified, 3),
    ]


def test_another_users_position_is_not_found(oms: Oms) -> None:
    owner, other = new_trader(oms), new_trader(oms)
    position = position_of(oms, owner, place_filled(oms, owner))
    stranger = Trader(other.user_id, owner.account_id, "", "", other.md)
    for call in (
        lambda: get_position(oms, stranger, position.id),
        lambda: close(oms, stranger, position.id),
        lambda: get_position(oms, other, position.id),  # own account, someone else's position
        lambda: close(oms, other, position.id),
    ):
        code, reason, _ = refusal(call)
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, R.ERROR_REASON_NOT_FOUND)
    assert get_position(oms, owner, position.id).status == oms_pb2.POSITION_STATUS_OPEN


# ---- the internal API ---------------------------------------------------------------------------


def force_close(oms: Oms, trader: Trader, position_id: str, **fields: Any) -> Any:
    values: dict[str, Any] = {
        "account_id": trader.account_id,
        "position_id": position_id,
        "origin": trading_pb2.ORDER_ORIGIN_STOP_OUT,
        "client_order_id": f"tm:so:{uuid.uuid4()}",
        "actor": types_pb2.Actor(kind=types_pb2.ACTOR_KIND_SYSTEM, id="risk-margin-watcher"),
    }
    values.update(fields)
    values = {name: value for name, value in values.items() if value is not None}
    return oms.internal.ForceClosePosition(
        oms_internal_service_pb2.ForceClosePositionRequest(**values),
        metadata=oms.as_service(),
        timeout=10,
    )


def test_force_close_closes_at_market_as_a_stop_out_and_is_idempotent(oms: Oms) -> None:
    trader = new_trader(oms)
    position = position_of(oms, trader, place_filled(oms, trader, quantity="0.10"))
    client_order_id = f"tm:so:{uuid.uuid4()}"

    answer = force_close(oms, trader, position.id, client_order_id=client_order_id)

    assert answer.order.status == S.ORDER_STATUS_FILLED, answer.order.status_message
    assert answer.order.origin == trading_pb2.ORDER_ORIGIN_STOP_OUT
    assert answer.order.time_in_force == trading_pb2.TIME_IN_FORCE_IOC
    assert answer.position.id == position.id
    assert answer.position.status == oms_pb2.POSITION_STATUS_CLOSED
    (trade,) = trades_of(oms, trader, answer.order.id)
    assert trade.origin == trading_pb2.ORDER_ORIGIN_STOP_OUT
    audit = oms.rows(
        "SELECT actor_kind, actor_id FROM oms.audit_records WHERE entity_id = %s LIMIT 1",
        answer.order.id,
    )
    assert audit == [("SYSTEM", "risk-margin-watcher")]

    again = force_close(oms, trader, position.id, client_order_id=client_order_id)
    assert again.order == answer.order
    code, reason, _ = refusal(
        lambda: force_close(
            oms, trader, position.id, client_order_id=client_order_id, quantity="0.05"
        )
    )
    assert (code, reason) == (
        grpc.StatusCode.ALREADY_EXISTS,
        R.ERROR_REASON_DUPLICATE_CLIENT_ORDER_ID,
    )
    code, reason, _ = refusal(lambda: force_close(oms, trader, position.id))
    assert (code, reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        R.ERROR_REASON_INVALID_ORDER_STATE,
    )


def test_force_close_refuses_bad_requests_and_strangers(oms: Oms) -> None:
    trader = new_trader(oms)
    position = position_of(oms, trader, place_filled(oms, trader, quantity="0.10"))
    for fields in (
        {"client_order_id": "so-without-prefix"},
        {"origin": trading_pb2.ORDER_ORIGIN_CLIENT},
        {"actor": None},
        {"quantity": "0"},
    ):
        code, reason, _ = refusal(partial(force_close, oms, trader, position.id, **fields))
        assert (code, reason) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            R.ERROR_REASON_VALIDATION_FAILED,
        )
    code, reason, _ = refusal(lambda: force_close(oms, trader, str(uuid.uuid4())))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, R.ERROR_REASON_NOT_FOUND)
    code, reason, _ = refusal(lambda: force_close(oms, trader, position.id, quantity="0.20"))
    assert (code, reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        R.ERROR_REASON_QUANTITY_OUT_OF_RANGE,
    )
    with pytest.raises(grpc.RpcError) as untrusted:
        oms.internal.ForceClosePosition(
            oms_internal_service_pb2.ForceClosePositionRequest(
                account_id=trader.account_id,
                position_id=position.id,
                origin=trading_pb2.ORDER_ORIGIN_STOP_OUT,
                client_order_id=f"tm:so:{uuid.uuid4()}",
                actor=types_pb2.Actor(kind=types_pb2.ACTOR_KIND_SYSTEM, id="x"),
            ),
            timeout=10,
        )
    assert untrusted.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert get_position(oms, trader, position.id).status == oms_pb2.POSITION_STATUS_OPEN


def test_open_positions_are_listed_by_account_page_by_page(oms: Oms) -> None:
    traders = [new_trader(oms) for _ in range(3)]
    expected: dict[str, set[str]] = {}
    for trader in traders:
        a = position_of(oms, trader, place_filled(oms, trader, quantity="0.10"))
        b = position_of(oms, trader, place_filled(oms, trader, symbol="USDJPY", quantity="0.10"))
        expected[trader.account_id] = {a.id, b.id}
    closed = traders[0]
    usdjpy = oms.positions.ListPositions(
        position_service_pb2.ListPositionsRequest(account_id=closed.account_id, symbol="USDJPY"),
        metadata=closed.md,
    ).positions
    close(oms, closed, usdjpy[0].id)
    expected[closed.account_id].discard(usdjpy[0].id)

    pages: list[oms_internal_service_pb2.AccountPositions] = []
    token = ""
    while True:
        page = oms.internal.ListOpenPositions(
            oms_internal_service_pb2.ListOpenPositionsRequest(
                account_ids=list(expected), page_size=1, page_token=token
            ),
            metadata=oms.as_service(),
        )
        assert len(page.accounts) <= 1
        pages += list(page.accounts)
        token = page.next_page_token
        if not token:
            break
    assert [p.account_id for p in pages] == sorted(expected)
    for account in pages:
        assert {p.id for p in account.positions} == expected[account.account_id]
        assert all(not p.current_price for p in account.positions)
        assert all(p.status == oms_pb2.POSITION_STATUS_OPEN for p in account.positions)


def test_staff_close_a_position_with_an_operator_order(oms: Oms) -> None:
    trader = new_trader(oms)
    position = position_of(oms, trader, place_filled(oms, trader, quantity="0.10"))
    admin = order_admin_service_pb2_grpc.OrderAdminServiceStub(oms.channel)
    dealer = oms.stack.as_(Who(str(uuid.uuid4()), "dealer"))
    listed = admin.ListAllPositions(
        order_admin_service_pb2.ListAllPositionsRequest(account_id=trader.account_id),
        metadata=dealer,
    ).positions
    assert [p.id for p in listed] == [position.id]
    order = admin.ClosePositionAsOperator(
        order_admin_service_pb2.ClosePositionAsOperatorRequest(
            account_id=trader.account_id,
            position_id=position.id,
            client_order_id=f"op-{uuid.uuid4().hex[:12]}",
            reason="client asked by phone",
        ),
        metadata=dealer,
        timeout=10,
    ).order
    assert order.status == S.ORDER_STATUS_FILLED, order.status_message
    assert order.origin == trading_pb2.ORDER_ORIGIN_OPERATOR
    assert order.status_message == "client asked by phone"
    assert get_position(oms, trader, position.id).status == oms_pb2.POSITION_STATUS_CLOSED
    trades = admin.ListAllTrades(
        order_admin_service_pb2.ListAllTradesRequest(account_id=trader.account_id),
        metadata=dealer,
    ).trades
    assert trades[0].order_id == order.id  # newest first

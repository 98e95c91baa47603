"""Order entry against the real stack: the OMS, the risk service's pre-trade check, live prices
from the LP simulators, PostgreSQL and NATS (ADR 0007).

Traders are created through AccountAdminService (so the OMS and the risk service learn of their
accounts from the account events) and funded with a deposit webhook; they call the OMS directly
with the headers Envoy would add (`callers.py`), and one test goes through Envoy with a real
sign-in. Each test uses its own accounts, so tests do not depend on each other.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.integration.callers import Who
from tests.integration.callers import staff
from tests.integration.events import Message
from tests.integration.events import outbox_events
from tests.integration.events import published
from tests.integration.support.components import kill
from tests.integration.support.components import restore
from tests.integration.support.orders import DEPOSIT
from tests.integration.support.orders import STANDARD_GROUP
from tests.integration.support.orders import D
from tests.integration.support.orders import Oms
from tests.integration.support.orders import R
from tests.integration.support.orders import S
from tests.integration.support.orders import Trader
from tests.integration.support.orders import live_quote
from tests.integration.support.orders import new_group
from tests.integration.support.orders import new_trader
from tests.integration.support.orders import oms_knows
from tests.integration.support.orders import place
from tests.integration.support.orders import place_filled
from tests.integration.support.orders import refusal
from tests.integration.support.orders import risk_funded
from tests.integration.support.orders import verified_chain
from tests.integration.support.waiting import eventually
from tests.integration.support.waiting import eventually_async
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb
from tradingmesh.account.v1 import auth_service_pb2
from tradingmesh.account.v1 import auth_service_pb2_grpc
from tradingmesh.common.v1 import types_pb2
from tradingmesh.oms.v1 import oms_events_pb2
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_admin_service_pb2
from tradingmesh.oms.v1 import order_admin_service_pb2_grpc
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.oms.v1 import order_service_pb2_grpc
from tradingmesh.oms.v1 import position_service_pb2


@pytest.fixture(scope="module")
def trader(oms: Oms) -> Trader:
    return new_trader(oms)


# ---- a market order -------------------------------------------------------------------------


def test_a_market_order_fills_and_the_order_trade_and_position_agree(oms: Oms) -> None:
    trader = new_trader(oms)
    order = place_filled(oms, trader, quantity="0.20")

    assert order.status == S.ORDER_STATUS_FILLED
    assert order.execution_mode == types_pb2.EXECUTION_MODE_MARKET
    assert (order.quantity, order.filled_quantity, order.remaining_quantity) == (
        "0.20",
        "0.20",
        "0",
    )
    assert order.version == 4  # CREATED, SUBMITTED, ACCEPTED, FILLED
    trades = oms.orders.ListTrades(
        order_service_pb2.ListTradesRequest(account_id=trader.account_id, order_id=order.id),
        metadata=trader.md,
    ).trades
    assert len(trades) == 1
    trade = trades[0]
    assert (trade.quantity, trade.price) == ("0.20", order.average_fill_price)
    assert trade.position_effect == S.POSITION_EFFECT_OPEN
    assert trade.realized_pnl == "0.00"
    position = oms.positions.GetPosition(
        position_service_pb2.GetPositionRequest(
            account_id=trader.account_id, position_id=trade.position_id
        ),
        metadata=trader.md,
    ).position
    assert position.status == oms_pb2.POSITION_STATUS_OPEN
    assert position.side == types_pb2.SIDE_BUY
    assert (position.quantity, position.open_price) == ("0.20", trade.price)
    assert position.open_order_id == order.id
    # margin at 1:100 of 0.2 x 100000 x the open price, in USD
    assert D(position.used_margin) == (D("0.2") * 100000 * D(trade.price) / 100).quantize(D("0.01"))
    # what is stored is what was answered
    stored = oms.rows(
        "SELECT status, filled_quantity, average_fill_price, version FROM oms.orders WHERE id = %s",
        order.id,
    )
    assert stored == [("FILLED", D("0.2"), D(order.average_fill_price), 4)]
    audit = oms.rows(
        "SELECT event FROM oms.audit_records WHERE entity_id = %s ORDER BY sequence", order.id
    )
    assert [e for (e,) in audit] == ["CREATED", "SUBMITTED", "ACCEPTED", "FILLED"]


def test_the_audit_chain_of_an_account_verifies_and_its_head_is_on_the_account(oms: Oms) -> None:
    trader = new_trader(oms)
    place_filled(oms, trader)
    place_filled(oms, trader, side=types_pb2.SIDE_SELL)
    records = verified_chain(oms, trader.account_id)
    assert len(records) >= 2 * 4 + 2  # two orders of four changes, two position changes
    verify = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.oms.audit",
            "verify",
            "--account",
            trader.account_id,
            "--database-url",
            oms.stack.database_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    assert json.loads(verify.stdout)["checked_count"] == len(records)
    with pytest.raises(Exception, match="append-only"), oms.stack.db() as conn:
        conn.execute(
            "UPDATE oms.audit_records SET reason = 'x' WHERE account_id = %s",
            (trader.account_id,),
        )


def test_an_order_through_envoy_with_a_real_sign_in_fills(oms: Oms) -> None:
    backoffice = staff()
    user = oms.stack.new_user(backoffice)
    account = oms.stack.admin.CreateTradingAccount(
        admin_pb.CreateTradingAccountRequest(user_id=user.id, group_id=STANDARD_GROUP),
        metadata=oms.stack.as_(backoffice),
    ).account
    oms.stack.deposit_direct(account.account_number, DEPOSIT)
    trader = Trader(
        user.id,
        account.id,
        account.account_number,
        STANDARD_GROUP,
        oms.stack.as_(Who(user.id, "trader", accounts=account.id)),
    )
    eventually(lambda: oms_knows(oms, trader), 30, "the OMS knows the account")
    eventually(lambda: risk_funded(oms, trader, D(DEPOSIT)), 30, "risk sees the deposit")
    live_quote(oms, trader)
    state = oms.running.state
    credentials = grpc.ssl_channel_credentials(Path(state.endpoints.ca_file).read_bytes())
    with grpc.secure_channel(state.endpoints.grpc, credentials) as edge:
        token = (
            auth_service_pb2_grpc.AuthServiceStub(edge)
            .Login(
                auth_service_pb2.LoginRequest(
                    username=user.username, password="correct horse battery"
                ),
                timeout=20,
            )
            .access_token
        )
        bearer = (("authorization", f"Bearer {token}"),)
        orders = order_service_pb2_grpc.OrderServiceStub(edge)

        def attempt() -> oms_pb2.Order | None:
            order = orders.PlaceOrder(
                order_service_pb2.PlaceOrderRequest(
                    account_id=account.id,
                    client_order_id=f"edge-{uuid.uuid4().hex[:12]}",
                    symbol="EURUSD",
                    side=types_pb2.SIDE_SELL,
                    type=S.ORDER_TYPE_MARKET,
                    quantity="0.05",
                ),
                metadata=bearer,
                timeout=10,
            ).order
            return None if order.status_reason == R.ERROR_REASON_PRICE_UNAVAILABLE else order

        order = eventually(attempt, 20, "an order with a live price")
        assert order.status == S.ORDER_STATUS_FILLED, order.status_message
        listed = orders.ListOrders(
            order_service_pb2.ListOrdersRequest(account_id=account.id), metadata=bearer
        ).orders
        assert [o.id for o in listed] == [order.id]


# ---- idempotency --------------------------------------------------------------------------------


def test_twenty_parallel_retries_of_one_order_create_one_order(oms: Oms, trader: Trader) -> None:
    client_order_id = f"par-{uuid.uuid4().hex[:12]}"
    request = order_service_pb2.PlaceOrderRequest(
        account_id=trader.account_id,
        client_order_id=client_order_id,
        symbol="EURUSD",
        side=types_pb2.SIDE_BUY,
        type=S.ORDER_TYPE_LIMIT,  # rests: every retry sees the same order
        price="0.50000",
        quantity="0.10",
    )

    def send(_: int) -> oms_pb2.Order:
        return oms.orders.PlaceOrder(request, metadata=trader.md, timeout=20).order

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(send, range(20)))

    assert len({a.id for a in answers}) == 1
    assert {a.status for a in answers} == {S.ORDER_STATUS_WORKING}
    stored = oms.rows(
        "SELECT count(*) FROM oms.orders WHERE account_id = %s AND client_order_id = %s",
        trader.account_id,
        client_order_id,
    )
    assert stored == [(1,)]
    created = oms.rows(
        "SELECT count(*) FROM oms.audit_records WHERE entity_id = %s AND event = 'CREATED'",
        answers[0].id,
    )
    assert created == [(1,)]


def test_a_retry_returns_the_original_order_even_after_it_filled(oms: Oms, trader: Trader) -> None:
    order = place_filled(oms, trader, client_order_id=f"re-{uuid.uuid4().hex[:12]}")
    again = place(oms, trader, client_order_id=order.client_order_id, quantity="0.1")  # "0.10"
    assert again == order


def test_reusing_a_client_order_id_for_another_order_is_already_exists(
    oms: Oms, trader: Trader
) -> None:
    order = place(
        oms,
        trader,
        type=S.ORDER_TYPE_LIMIT,
        price="0.50000",
        client_order_id=f"dup-{uuid.uuid4().hex[:8]}",
    )
    before = oms.rows(
        "SELECT count(*), max(version) FROM oms.orders WHERE account_id = %s", trader.account_id
    )
    code, reason, _ = refusal(
        lambda: place(
            oms,
            trader,
            type=S.ORDER_TYPE_LIMIT,
            price="0.50001",
            client_order_id=order.client_order_id,
        )
    )
    assert (code, reason) == (
        grpc.StatusCode.ALREADY_EXISTS,
        R.ERROR_REASON_DUPLICATE_CLIENT_ORDER_ID,
    )
    after = oms.rows(
        "SELECT count(*), max(version) FROM oms.orders WHERE account_id = %s", trader.account_id
    )
    assert after == before


# ---- bad input ----------------------------------------------------------------------------------


BAD_ORDERS: list[tuple[str, dict[str, Any], grpc.StatusCode, int]] = [
    (
        "zero quantity",
        {"quantity": "0"},
        grpc.StatusCode.INVALID_ARGUMENT,
        R.ERROR_REASON_VALIDATION_FAILED,
    ),
    (
        "negative quantity",
        {"quantity": "-1"},
        grpc.StatusCode.INVALID_ARGUMENT,
        R.ERROR_REASON_VALIDATION_FAILED,
    ),
    (
        "an exponent",
        {"quantity": "1e3"},
        grpc.StatusCode.INVALID_ARGUMENT,
        R.ERROR_REASON_VALIDATION_FAILED,
    ),
    (
        "too many decimals for the lot step",
        {"quantity": "0.015"},
        grpc.StatusCode.INVALID_ARGUMENT,
        R.ERROR_REASON_TOO_MANY_DECIMALS,
    ),
    (
        "a price with too many digits",
        {"type": S.ORDER_TYPE_LIMIT, "price": "1.123456"},
        grpc.StatusCode.INVALID_ARGUMENT,
        R.ERROR_REASON_TOO_MANY_DECIMALS,
    ),
    (
        "above the maximum lot",
        {"quantity": "101"},
        grpc.StatusCode.INVALID_ARGUMENT,
        R.ERROR_REASON_QUANTITY_OUT_OF_RANGE,
    ),
    (
        "a price on a market order",
        {"price": "1.1"},
        grpc.StatusCode.INVALID_ARGUMENT,
        R.ERROR_REASON_INVALID_ORDER_FIELDS,
    ),
    (
        "a limit order without a price",
        {"type": S.ORDER_TYPE_LIMIT},
        grpc.StatusCode.INVALID_ARGUMENT,
        R.ERROR_REASON_INVALID_ORDER_FIELDS,
    ),
    (
        "a GTC market order",
        {"time_in_force": S.TIME_IN_FORCE_GTC},
        grpc.StatusCode.INVALID_ARGUMENT,
        R.ERROR_REASON_UNSUPPORTED_TIME_IN_FORCE,
    ),
    (
        "an unknown instrument",
        {"symbol": "NOPE"},
        grpc.StatusCode.INVALID_ARGUMENT,
        R.ERROR_REASON_UNKNOWN_INSTRUMENT,
    ),
    (
        "a stop-loss above a buy's price",
        {"type": S.ORDER_TYPE_LIMIT, "price": "1.00000", "stop_loss": "1.10000"},
        grpc.StatusCode.INVALID_ARGUMENT,
        R.ERROR_REASON_INVALID_STOPS,
    ),
    (
        "a reserved client_order_id",
        {"client_order_id": "tm:mine"},
        grpc.StatusCode.INVALID_ARGUMENT,
        R.ERROR_REASON_VALIDATION_FAILED,
    ),
    (
        "a position of nobody",
        {"side": types_pb2.SIDE_SELL, "position_id": str(uuid.uuid4())},
        grpc.StatusCode.NOT_FOUND,
        R.ERROR_REASON_NOT_FOUND,
    ),
]


@pytest.mark.parametrize(
    ("fields", "code", "reason"),
    [pytest.param(f, c, r, id=name) for name, f, c, r in BAD_ORDERS],
)
def test_bad_input_is_refused_with_details_and_stores_nothing(
    oms: Oms, trader: Trader, fields: dict[str, Any], code: grpc.StatusCode, reason: int
) -> None:
    counts = "SELECT (SELECT count(*) FROM oms.orders), (SELECT count(*) FROM oms.outbox)"
    before = oms.rows(counts)
    got_code, got_reason, details = refusal(lambda: place(oms, trader, **fields))
    assert (got_code, got_reason) == (code, reason)
    assert details.message
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert details.field_violations, "bad input names the fields at fault"
    assert oms.rows(counts) == before


def test_another_users_account_is_not_found_and_nothing_changes(oms: Oms, trader: Trader) -> None:
    other = new_trader(oms)
    mine = place(oms, trader, type=S.ORDER_TYPE_LIMIT, price="0.50000")
    before = oms.rows("SELECT count(*) FROM oms.orders WHERE account_id = %s", trader.account_id)
    calls: list[Callable[[], Any]] = [
        lambda: place(oms, Trader(other.user_id, trader.account_id, "", "", other.md)),
        lambda: oms.orders.GetOrder(
            order_service_pb2.GetOrderRequest(account_id=trader.account_id, order_id=mine.id),
            metadata=other.md,
        ),
        lambda: oms.orders.CancelOrder(
            order_service_pb2.CancelOrderRequest(account_id=trader.account_id, order_id=mine.id),
            metadata=other.md,
        ),
        lambda: oms.orders.ListOrders(
            order_service_pb2.ListOrdersRequest(account_id=trader.account_id), metadata=other.md
        ),
        lambda: oms.orders.ListTrades(
            order_service_pb2.ListTradesRequest(account_id=trader.account_id), metadata=other.md
        ),
        # my own account, another account's order id
        lambda: oms.orders.GetOrder(
            order_service_pb2.GetOrderRequest(account_id=other.account_id, order_id=mine.id),
            metadata=other.md,
        ),
    ]
    for call in calls:
        code, reason, _ = refusal(call)
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, R.ERROR_REASON_NOT_FOUND)
    after = oms.rows("SELECT count(*) FROM oms.orders WHERE account_id = %s", trader.account_id)
    assert after == before
    still = oms.orders.GetOrder(
        order_service_pb2.GetOrderRequest(account_id=trader.account_id, order_id=mine.id),
        metadata=trader.md,
    ).order
    assert still.status == S.ORDER_STATUS_WORKING


# ---- execution modes ----------------------------------------------------------------------------


def test_instant_execution_fills_at_the_price_seen_or_requotes_at_the_live_price(
    oms: Oms,
) -> None:
    group = new_group(oms, types_pb2.EXECUTION_MODE_INSTANT, max_deviation_points=500)
    trader = new_trader(oms, group)

    code, reason, details = refusal(lambda: place(oms, trader))  # no requested_price
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, R.ERROR_REASON_INVALID_ORDER_FIELDS)
    assert details.field_violations[0].field == "requested_price"

    far = D(live_quote(oms, trader).ask) - D("0.05000")
    requoted = place(oms, trader, requested_price=str(far))
    assert requoted.status == S.ORDER_STATUS_REJECTED
    assert requoted.status_reason == R.ERROR_REASON_REQUOTE
    assert requoted.execution_mode == types_pb2.EXECUTION_MODE_INSTANT
    assert abs(D(requoted.requote_price) - far) > D("0.04")  # the live ask, not what was asked
    assert requoted.filled_quantity == "0"

    # Accepting the requote: a new order at the price it named (500 points of slack).
    seen = requoted.requote_price
    filled = place(oms, trader, requested_price=seen)
    assert filled.status == S.ORDER_STATUS_FILLED, filled.status_message
    assert filled.average_fill_price == seen


def test_a_limit_order_rests_working_and_cancel_cancels_it_once(oms: Oms, trader: Trader) -> None:
    order = place(
        oms, trader, type=S.ORDER_TYPE_LIMIT, price="0.50000", time_in_force=S.TIME_IN_FORCE_GTC
    )
    assert order.status == S.ORDER_STATUS_WORKING
    assert order.remaining_quantity == "0.10"
    assert order.version == 4  # CREATED, SUBMITTED, ACCEPTED, ACTIVATED

    request = order_service_pb2.CancelOrderRequest(account_id=trader.account_id, order_id=order.id)
    cancelled = oms.orders.CancelOrder(request, metadata=trader.md).order
    assert cancelled.status == S.ORDER_STATUS_CANCELLED
    assert cancelled.status_reason == R.ERROR_REASON_UNSPECIFIED  # the client cancelled it
    assert (cancelled.remaining_quantity, cancelled.version) == ("0", 5)
    assert oms.orders.CancelOrder(request, metadata=trader.md).order == cancelled  # idempotent
    # One envelope, headlined by the cancel, holds the order's one cancel event.
    envelopes = oms.rows(
        "SELECT subject, payload FROM oms.outbox WHERE position(%s::bytea IN payload) > 0",
        order.id.encode(),
    )
    cancels = [
        (subject, oms_events_pb2.OrderCancelled.FromString(event.data).order.id)
        for subject, payload in envelopes
        for event in outbox_events([(payload,)], "oms.order.cancelled")
    ]
    assert cancels == [("oms.order.cancelled", order.id)]


def test_a_day_order_expires_at_the_end_of_its_session(oms: Oms, trader: Trader) -> None:
    order = place(
        oms, trader, type=S.ORDER_TYPE_LIMIT, price="0.50000", time_in_force=S.TIME_IN_FORCE_DAY
    )
    assert order.status == S.ORDER_STATUS_WORKING
    # The demo instruments trade around the clock: one session per UTC day.
    created = order.create_time.ToDatetime(UTC)
    midnight = (created + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert order.expire_time.ToDatetime(UTC) == midnight
    # Let the session end now (the clock cannot be moved): the sweeper expires it within ~1 s.
    with oms.stack.db() as conn:
        conn.execute(
            "UPDATE oms.orders SET expire_time = now() - interval '1 second' WHERE id = %s",
            (order.id,),
        )
    request = order_service_pb2.GetOrderRequest(account_id=trader.account_id, order_id=order.id)

    def expired() -> oms_pb2.Order | None:
        current = oms.orders.GetOrder(request, metadata=trader.md).order
        return current if current.status == S.ORDER_STATUS_EXPIRED else None

    ended = eventually(expired, 10, "the DAY order expired")
    assert ended.status_reason == R.ERROR_REASON_EXPIRED
    assert ended.version == order.version + 1
    assert ended.remaining_quantity == "0"


def test_a_filled_order_cannot_be_cancelled(oms: Oms, trader: Trader) -> None:
    order = place_filled(oms, trader)
    code, reason, _ = refusal(
        lambda: oms.orders.CancelOrder(
            order_service_pb2.CancelOrderRequest(account_id=trader.account_id, order_id=order.id),
            metadata=trader.md,
        )
    )
    assert (code, reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        R.ERROR_REASON_INVALID_ORDER_STATE,
    )


def test_a_working_order_is_amended_at_once_and_a_stale_version_is_aborted(
    oms: Oms, trader: Trader
) -> None:
    order = place(oms, trader, type=S.ORDER_TYPE_LIMIT, price="0.50000")
    amended = oms.orders.AmendOrder(
        order_service_pb2.AmendOrderRequest(
            account_id=trader.account_id,
            order_id=order.id,
            price="0.51000",
            quantity="0.20",
            expected_version=order.version,
        ),
        metadata=trader.md,
    ).order
    assert (amended.price, amended.quantity, amended.status) == (
        "0.51000",  # at the instrument's digits and lot step, as pricing quotes
        "0.20",
        S.ORDER_STATUS_WORKING,
    )
    assert amended.version == order.version + 1
    code, reason, _ = refusal(
        lambda: oms.orders.AmendOrder(
            order_service_pb2.AmendOrderRequest(
                account_id=trader.account_id,
                order_id=order.id,
                price="0.52000",
                expected_version=order.version,
            ),
            metadata=trader.md,
        )
    )
    assert (code, reason) == (grpc.StatusCode.ABORTED, R.ERROR_REASON_CONCURRENT_MODIFICATION)
    unchanged = oms.orders.AmendOrder(
        order_service_pb2.AmendOrderRequest(
            account_id=trader.account_id, order_id=order.id, price="0.510"
        ),
        metadata=trader.md,
    ).order
    assert unchanged == amended  # nothing to change: returned as it is


@pytest.mark.parametrize("tif", [S.TIME_IN_FORCE_IOC, S.TIME_IN_FORCE_FOK])
def test_an_immediate_limit_order_out_of_reach_is_rejected_no_liquidity(
    oms: Oms, trader: Trader, tif: int
) -> None:
    order = place(oms, trader, type=S.ORDER_TYPE_LIMIT, price="0.50000", time_in_force=tif)
    assert order.status == S.ORDER_STATUS_REJECTED
    assert order.status_reason == R.ERROR_REASON_NO_LIQUIDITY
    assert order.filled_quantity == "0"


def test_an_order_that_breaches_margin_is_rejected_and_changes_no_position(oms: Oms) -> None:
    trader = new_trader(oms, deposit="100.00")
    order = place(oms, trader, quantity="10")  # about 10,850 USD of margin at 1:100
    assert order.status == S.ORDER_STATUS_REJECTED
    assert order.status_reason == R.ERROR_REASON_INSUFFICIENT_MARGIN, order.status_message
    assert oms.rows(
        "SELECT count(*) FROM oms.positions WHERE account_id = %s", trader.account_id
    ) == [(0,)]


# ---- reads --------------------------------------------------------------------------------------


def test_orders_are_listed_newest_first_page_by_page_and_filtered(oms: Oms) -> None:
    trader = new_trader(oms)
    placed = [place(oms, trader, type=S.ORDER_TYPE_LIMIT, price=f"0.5{i}000") for i in range(5)]
    cancel = order_service_pb2.CancelOrderRequest(
        account_id=trader.account_id, order_id=placed[0].id
    )
    oms.orders.CancelOrder(cancel, metadata=trader.md)
    seen: list[str] = []
    token = ""
    while True:
        page = oms.orders.ListOrders(
            order_service_pb2.ListOrdersRequest(
                account_id=trader.account_id, page_size=2, page_token=token
            ),
            metadata=trader.md,
        )
        assert len(page.orders) <= 2
        seen += [o.id for o in page.orders]
        token = page.next_page_token
        if not token:
            break
    assert seen == [o.id for o in reversed(placed)]
    open_only = oms.orders.ListOrders(
        order_service_pb2.ListOrdersRequest(account_id=trader.account_id, open_only=True),
        metadata=trader.md,
    ).orders
    assert {o.id for o in open_only} == {o.id for o in placed[1:]}
    one = oms.orders.ListOrders(
        order_service_pb2.ListOrdersRequest(
            account_id=trader.account_id, client_order_id=placed[2].client_order_id
        ),
        metadata=trader.md,
    ).orders
    assert [o.id for o in one] == [placed[2].id]
    code, reason, _ = refusal(
        lambda: oms.orders.ListOrders(
            order_service_pb2.ListOrdersRequest(account_id=trader.account_id, page_token="junk"),
            metadata=trader.md,
        )
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, R.ERROR_REASON_VALIDATION_FAILED)


def test_a_stream_sends_the_open_orders_then_every_change(oms: Oms) -> None:
    trader = new_trader(oms)
    resting = place(oms, trader, type=S.ORDER_TYPE_LIMIT, price="0.50000")
    call = oms.orders.StreamOrderUpdates(
        order_service_pb2.StreamOrderUpdatesRequest(
            account_id=trader.account_id, send_open_orders=True
        ),
        metadata=trader.md,
        timeout=30,
    )
    try:
        first = next(call).update
        assert first.event_type == oms_pb2.ORDER_EVENT_TYPE_SNAPSHOT
        assert first.order.id == resting.id
        time.sleep(0.5)  # the server subscribed before the snapshot; give the call a moment
        filled = place_filled(oms, trader)
        oms.orders.CancelOrder(
            order_service_pb2.CancelOrderRequest(account_id=trader.account_id, order_id=resting.id),
            metadata=trader.md,
        )
        updates: list[oms_pb2.OrderUpdate] = []
        for message in call:
            updates.append(message.update)
            if message.update.event_type == oms_pb2.ORDER_EVENT_TYPE_CANCELLED:
                break
    finally:
        call.cancel()
    of_filled = [u for u in updates if u.order.id == filled.id]
    assert [u.event_type for u in of_filled] == [
        oms_pb2.ORDER_EVENT_TYPE_CREATED,
        oms_pb2.ORDER_EVENT_TYPE_SUBMITTED,
        oms_pb2.ORDER_EVENT_TYPE_ACCEPTED,
        oms_pb2.ORDER_EVENT_TYPE_FILLED,
    ]
    assert [u.order.version for u in of_filled] == [1, 2, 3, 4]
    assert of_filled[-1].trade.order_id == filled.id
    assert of_filled[-1].previous_status == S.ORDER_STATUS_ACCEPTED
    assert updates[-1].order.id == resting.id
    assert updates[-1].previous_status == S.ORDER_STATUS_WORKING


async def test_every_change_of_an_order_is_published_once_on_nats(oms: Oms) -> None:
    """A filled market order is one committed change: ONE message, headlined by its trade and
    sent under its envelope's id, holds its six events in the order they happened, and no other
    message of the OMS stream holds any of them again. Its outbox row is that envelope."""
    trader = await asyncio.to_thread(new_trader, oms)
    order = await asyncio.to_thread(place_filled, oms, trader)

    async def of_order() -> list[Message]:
        messages = await published(oms.stack, "OMS", "oms.>")
        return [m for m in messages if any(order.id.encode() in e.data for e in m.events)]

    mine = await eventually_async(of_order, 20, "the order's message on the OMS stream", 0.5)
    assert len(mine) == 1, [(m.subject, [e.subject for e in m.events]) for m in mine]
    (message,) = mine
    assert message.subject == "oms.trade.executed"
    assert message.msg_id == message.envelope_id
    assert [e.subject for e in message.events] == [
        "oms.order.created",
        "oms.order.submitted",
        "oms.order.accepted",
        "oms.order.filled",
        "oms.position.opened",
        "oms.trade.executed",
    ]
    assert all(order.id.encode() in e.data for e in message.events)
    (row,) = oms.rows(
        "SELECT event_id::text, subject, payload FROM oms.outbox"
        " WHERE subject = 'oms.trade.executed' AND position(%s::bytea IN payload) > 0",
        order.id.encode(),
    )
    assert row[:2] == (message.envelope_id, "oms.trade.executed")
    (executed,) = outbox_events([row[2:]], "oms.trade.executed")
    event = oms_events_pb2.TradeExecuted.FromString(executed.data)
    assert event.trade.order_id == order.id
    assert event.currency == "USD"
    assert event.trade.price == order.average_fill_price


# ---- the pre-trade check unavailable -------------------------------------------------------------


def test_without_the_risk_service_orders_are_rejected_dependency_unavailable(oms: Oms) -> None:
    trader = new_trader(oms)
    kill(oms.running, "risk")
    try:
        order = place(oms, trader, client_order_id=f"norisk-{uuid.uuid4().hex[:8]}")
        assert order.status == S.ORDER_STATUS_REJECTED
        assert order.status_reason == R.ERROR_REASON_DEPENDENCY_UNAVAILABLE
        assert order.version == 2  # CREATED, then REJECTED without reaching PENDING
        again = place(oms, trader, client_order_id=order.client_order_id)
        assert again == order  # the retry returns the rejection; a new attempt needs a new id
    finally:
        restore(oms.running)

    def fills() -> oms_pb2.Order | None:
        order = place(oms, trader)
        return order if order.status == S.ORDER_STATUS_FILLED else None

    eventually(fills, 60, "orders fill again once the risk service is back")


# ---- staff -------------------------------------------------------------------------------------


def test_staff_list_every_accounts_orders_and_cancel_with_a_reason(oms: Oms) -> None:
    trader = new_trader(oms)
    resting = place(oms, trader, type=S.ORDER_TYPE_LIMIT, price="0.50000")
    admin = order_admin_service_pb2_grpc.OrderAdminServiceStub(oms.channel)
    backoffice = oms.stack.as_(Who(str(uuid.uuid4()), "backoffice"))
    dealer = oms.stack.as_(Who(str(uuid.uuid4()), "dealer"))

    listed = admin.ListAllOrders(
        order_admin_service_pb2.ListAllOrdersRequest(account_id=trader.account_id),
        metadata=backoffice,
    ).orders
    assert [o.id for o in listed] == [resting.id]
    request = order_admin_service_pb2.CancelOrderAsOperatorRequest(
        account_id=trader.account_id, order_id=resting.id, reason="price far off the market"
    )
    for who in (backoffice, trader.md):  # reads only, and a client is no staff
        code, reason, _ = refusal(partial(admin.CancelOrderAsOperator, request, metadata=who))
        assert (code, reason) == (
            grpc.StatusCode.PERMISSION_DENIED,
            R.ERROR_REASON_PERMISSION_DENIED,
        )
    cancelled = admin.CancelOrderAsOperator(request, metadata=dealer).order
    assert cancelled.status == S.ORDER_STATUS_CANCELLED
    assert cancelled.status_message == "price far off the market"
    actor = oms.rows(
        "SELECT actor_kind, reason FROM oms.audit_records WHERE entity_id = %s"
        " AND event = 'CANCELLED'",
        resting.id,
    )
    assert actor == [("OPERATOR", "price far off the market")]

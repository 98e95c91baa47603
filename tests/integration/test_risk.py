"""The risk service through the real stack: the pre-trade check called as the OMS calls it,
an account's margin and limits, and a stop-out that closes positions through the OMS.

Everything here happens in a client group of its own (no markup, so the group's price is the
LPs' pinned price to the point), with accounts created and funded through AccountAdminService,
so that risk learns them from the account events as it would in production. Prices are pinned on
both LP simulators through their control ports, which makes every margin figure exact. Each pin
first moves the price a point, so pricing publishes it afresh even if it was pinned there before
(prices are published only when they change, and a price must be recent to trade on).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any
from typing import TypeVar

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from simulators.lp.control import ControlClient
from stack.operator_tls import service_channel
from stack.ports import LP_SIMULATORS
from stack.ports import Ports
from tests.integration.callers import AccountStack
from tests.integration.callers import Who
from tests.integration.callers import account_stack
from tests.integration.conftest import RunningStack
from tests.integration.events import events_on
from tests.integration.events import published
from tests.integration.support.edge import refused
from tests.integration.support.risk import ADMIN
from tests.integration.support.risk import BACKOFFICE
from tests.integration.support.risk import DEALER
from tests.integration.support.risk import SERVICE
from tests.integration.support.risk import Broker
from tests.integration.support.risk import D
from tests.integration.support.risk import funded_in_risk
from tests.integration.support.risk import place_market
from tests.integration.support.waiting import eventually
from tests.messages import client_group
from tests.messages import index_instrument
from tradingmesh.account.v1 import account_admin_service_pb2 as account_admin_pb2
from tradingmesh.account.v1 import account_pb2
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import position_service_pb2
from tradingmesh.oms.v1 import position_service_pb2_grpc as position_grpc
from tradingmesh.pricing.v1 import pricing_admin_service_pb2
from tradingmesh.pricing.v1 import pricing_pb2
from tradingmesh.risk.v1 import risk_admin_service_pb2 as admin_pb2
from tradingmesh.risk.v1 import risk_events_pb2
from tradingmesh.risk.v1 import risk_internal_service_pb2 as internal_pb2
from tradingmesh.risk.v1 import risk_pb2
from tradingmesh.risk.v1 import risk_service_pb2 as api_pb2

R = ErrorReason
T = TypeVar("T")


# -- the stack and the broker this module sets up ---------------------------------------------


@pytest.fixture(scope="module")
def stack(running_stack: RunningStack) -> Iterator[AccountStack]:
    yield from account_stack(running_stack)


@pytest.fixture(scope="module")
def broker(running_stack: RunningStack, stack: AccountStack) -> Iterator[Broker]:
    ports = Ports(running_stack.state.base_port)
    risk, pricing, oms = (
        service_channel(running_stack.state, service) for service in ("risk", "pricing", "oms")
    )
    lps = {lp: ControlClient(ports.lp_control(lp)) for lp in LP_SIMULATORS}
    group_id = stack.admin.CreateClientGroup(
        account_admin_pb2.CreateClientGroupRequest(client_group=client_group()),
        metadata=stack.as_(ADMIN),
        timeout=10,
    ).client_group.id
    unpriced = f"IT{uuid.uuid4().hex[:10].upper()}"
    broker = Broker(stack, risk, pricing, oms, lps, group_id, unpriced, [unpriced])
    broker.pricing_admin.CreateInstrument(
        pricing_admin_service_pb2.CreateInstrumentRequest(instrument=index_instrument(unpriced)),
        metadata=stack.as_(DEALER),
        timeout=10,
    )
    broker.offer("EURUSD", max_order_size="5")
    broker.offer("GBPUSD")
    eventually(
        lambda: _offerable(broker, unpriced), 30, f"the account service's copy of {unpriced}"
    )
    _, probe = broker.new_account("1000000.00")
    broker.probe_account = probe.id
    eventually(
        lambda: funded_in_risk(broker, probe.id),
        30,
        "risk's copies of the group, its offers and a funded account",
    )
    try:
        yield broker
    finally:
        for lp in lps.values():
            lp.unpin()
        with stack.db() as db:
            for table in (
                "pricing.group_instruments",
                "account.group_instrument_settings",
                "account.instruments",
                "pricing.instruments",
                "risk.group_instruments",
                "risk.instruments",
            ):
                db.execute(f"DELETE FROM {table} WHERE symbol = ANY(%s)", (broker.symbols,))
        for channel in (risk, pricing, oms):
            channel.close()


def _offerable(broker: Broker, symbol: str) -> bool | None:
    try:
        broker.offer(symbol)
    except grpc.RpcError as error:
        if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            return None  # the instrument has not reached the account service yet
        raise
    return True


def _decision(broker: Broker, check_id: str) -> tuple[Any, ...]:
    """The recorded decision (written in batches, so a moment after the answer)."""

    def probe() -> tuple[Any, ...] | None:
        with broker.stack.db() as db:
            row: tuple[Any, ...] | None = db.execute(
                "SELECT order_id::text, approved, reject_reason, required_margin, free_margin"
                " FROM risk.check_decisions WHERE check_id = %s",
                (check_id,),
            ).fetchone()
        return row

    return eventually(probe, 30, f"the decision {check_id} recorded")


@pytest.fixture(scope="module")
def funded(broker: Broker) -> tuple[account_pb2.User, account_pb2.TradingAccount]:
    """An account holding 1500.00, with no position, known to risk."""
    user, account = broker.new_account("1500.00")
    eventually(lambda: funded_in_risk(broker, account.id), 30, "risk's copy of the funded account")
    return user, account


@pytest.fixture
def eurusd(broker: Broker) -> None:
    broker.pin("EURUSD", "1.10000", "1.10020")


# -- the check --------------------------------------------------------------------------------


def test_an_order_within_free_margin_is_approved_with_exact_figures_and_recorded(
    broker: Broker, funded: tuple[Any, account_pb2.TradingAccount], eurusd: None
) -> None:
    _, account = funded
    order_id = str(uuid.uuid4())

    response = broker.check_order(account.id, "EURUSD", types_pb2.SIDE_BUY, "1", order_id=order_id)

    # 1 lot x 100000 x the ask 1.10020 / leverage 100.
    assert response.approved
    assert response.reject_reason == R.ERROR_REASON_UNSPECIFIED
    assert response.reject_message == ""
    assert (response.required_margin, response.free_margin) == ("1100.20", "1500.00")
    assert (response.free_margin_after, response.margin_level_after) == ("399.80", "136.33")
    assert (response.valuation_price, response.currency) == ("1.10020", "USD")
    assert _decision(broker, response.check_id) == (
        order_id,
        True,
        None,
        D("1100.20"),
        D("1500.00"),
    )


def test_an_order_beyond_free_margin_is_refused_with_insufficient_margin_and_exact_figures(
    broker: Broker, funded: tuple[Any, account_pb2.TradingAccount], eurusd: None
) -> None:
    _, account = funded

    response = broker.check_order(account.id, "EURUSD", types_pb2.SIDE_BUY, "2")
    sell = broker.check_order(account.id, "EURUSD", types_pb2.SIDE_SELL, "1")

    assert not response.approved
    assert response.reject_reason == R.ERROR_REASON_INSUFFICIENT_MARGIN
    assert response.reject_message == "required margin 2200.40 USD exceeds free margin 1500.00 USD"
    assert (response.required_margin, response.free_margin_after) == ("2200.40", "-700.40")
    assert response.margin_level_after == "68.16"
    assert _decision(broker, response.check_id)[1:3] == (False, "INSUFFICIENT_MARGIN")
    # A sell is valued at the bid.
    assert (sell.approved, sell.required_margin, sell.valuation_price) == (
        True,
        "1100.00",
        "1.10000",
    )


def test_an_order_above_the_groups_maximum_order_size_is_refused(
    broker: Broker, funded: tuple[Any, account_pb2.TradingAccount], eurusd: None
) -> None:
    _, account = funded

    response = broker.check_order(account.id, "EURUSD", types_pb2.SIDE_BUY, "6")

    assert not response.approved
    assert response.reject_reason == R.ERROR_REASON_MAX_ORDER_SIZE_EXCEEDED
    assert response.reject_message == "quantity 6 exceeds the maximum order size 5 of EURUSD"


def test_an_instrument_without_a_price_is_refused_and_a_halt_comes_before_it(
    broker: Broker, funded: tuple[Any, account_pb2.TradingAccount]
) -> None:
    _, account = funded
    symbol = broker.unpriced

    def check() -> internal_pb2.CheckOrderResponse:
        return broker.check_order(account.id, symbol, types_pb2.SIDE_BUY, "1")

    unpriced = check()
    assert not unpriced.approved
    assert unpriced.reject_reason == R.ERROR_REASON_PRICE_UNAVAILABLE
    assert unpriced.reject_message == f"no live price for {symbol}"
    assert unpriced.valuation_price == ""

    def set_status(status: pricing_pb2.TradingStatus.ValueType, reason: str) -> None:
        broker.pricing_admin.SetInstrumentTradingStatus(
            pricing_admin_service_pb2.SetInstrumentTradingStatusRequest(
                symbol=symbol, status=status, reason=reason
            ),
            metadata=broker.stack.as_(DEALER),
            timeout=10,
        )

    set_status(pricing_pb2.TRADING_STATUS_HALTED, "risk integration test")
    halted = eventually(
        lambda: r if (r := check()).reject_reason == R.ERROR_REASON_INSTRUMENT_HALTED else None,
        30,
        "risk sees the halt",
    )
    assert halted.reject_message == f"{symbol} is halted"
    set_status(pricing_pb2.TRADING_STATUS_TRADING, "resumed")
    eventually(
        lambda: True if check().reject_reason == R.ERROR_REASON_PRICE_UNAVAILABLE else None,
        30,
        "risk sees the resumption",
    )


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("quantity", {"quantity": "0"}),
        ("quantity", {"quantity": "-1"}),
        ("quantity", {"quantity": "1.0000000000001"}),
        ("remaining_quantity", {"remaining_quantity": "abc"}),
        ("account_id", {"account_id": "not-a-uuid"}),
        ("purpose", {"purpose": internal_pb2.CHECK_PURPOSE_UNSPECIFIED}),
        ("side", {"side": types_pb2.SIDE_UNSPECIFIED}),
        ("price", {"price": "0"}),
    ],
)
def test_bad_input_is_invalid_argument_and_records_nothing(
    broker: Broker,
    funded: tuple[Any, account_pb2.TradingAccount],
    field: str,
    change: dict[str, Any],
) -> None:
    _, account = funded
    order_id = str(uuid.uuid4())
    request = internal_pb2.CheckOrderRequest(
        account_id=account.id,
        order_id=order_id,
        purpose=internal_pb2.CHECK_PURPOSE_PLACE,
        symbol="EURUSD",
        side=types_pb2.SIDE_BUY,
        quantity="1",
        remaining_quantity="1",
    )
    for name, value in change.items():
        setattr(request, name, value)

    code, reason, _ = refused(
        lambda: broker.check.CheckOrder(request, metadata=broker.stack.as_(SERVICE), timeout=5)
    )

    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, R.ERROR_REASON_VALIDATION_FAILED)
    time.sleep(1.0)  # longer than the recorder's flush interval (0.5 s)
    with broker.stack.db() as db:
        row = db.execute(
            "SELECT count(*) FROM risk.check_decisions WHERE order_id::text = %s", (order_id,)
        ).fetchone()
    assert row == (0,), field


def test_a_call_without_the_edge_token_is_refused(
    broker: Broker, funded: tuple[Any, account_pb2.TradingAccount]
) -> None:
    _, account = funded
    request = internal_pb2.CheckOrderRequest(
        account_id=account.id,
        order_id=str(uuid.uuid4()),
        purpose=internal_pb2.CHECK_PURPOSE_PLACE,
        symbol="EURUSD",
        side=types_pb2.SIDE_BUY,
        quantity="1",
        remaining_quantity="1",
    )

    code, reason, _ = refused(lambda: broker.check.CheckOrder(request, timeout=5))

    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, R.ERROR_REASON_UNTRUSTED_CALLER)


# -- margin and limits, by owner and staff ------------------------------------------------------


def test_the_owner_reads_the_accounts_margin_and_no_one_else_does(
    broker: Broker, funded: tuple[account_pb2.User, account_pb2.TradingAccount]
) -> None:
    user, account = funded
    owner = broker.stack.as_(Who(user.id, "trader"))
    stranger = broker.stack.as_(Who(str(uuid.uuid4()), "trader"))

    risk = broker.risk.GetAccountRisk(
        api_pb2.GetAccountRiskRequest(account_id=account.id), metadata=owner, timeout=5
    ).account_risk
    events = broker.risk.ListMarginEvents(
        api_pb2.ListMarginEventsRequest(account_id=account.id), metadata=owner, timeout=5
    )

    assert (risk.account_id, risk.currency, risk.balance, risk.equity) == (
        account.id,
        "USD",
        "1500.00",
        "1500.00",
    )
    assert (risk.used_margin, risk.free_margin, risk.margin_level) == ("0.00", "1500.00", "")
    assert (risk.margin_call_level, risk.stop_out_level, risk.leverage) == ("100", "50", 100)
    assert risk.status == risk_pb2.ACCOUNT_RISK_STATUS_OK
    assert list(events.margin_events) == []
    for call in (
        lambda: broker.risk.GetAccountRisk(
            api_pb2.GetAccountRiskRequest(account_id=account.id), metadata=stranger, timeout=5
        ),
        lambda: broker.risk.ListMarginEvents(
            api_pb2.ListMarginEventsRequest(account_id=account.id), metadata=stranger, timeout=5
        ),
    ):
        code, reason, _ = refused(call)
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, R.ERROR_REASON_NOT_FOUND)


def test_staff_set_an_accounts_limits_the_check_applies_them_and_the_change_is_audited(
    broker: Broker, funded: tuple[account_pb2.User, account_pb2.TradingAccount], eurusd: None
) -> None:
    user, account = funded

    def update(who: Who, orders: int) -> admin_pb2.UpdateAccountRiskLimitsResponse:
        response: admin_pb2.UpdateAccountRiskLimitsResponse = (
            broker.risk_admin.UpdateAccountRiskLimits(
                admin_pb2.UpdateAccountRiskLimitsRequest(
                    account_id=account.id,
                    limits=risk_pb2.AccountRiskLimits(max_open_orders=orders),
                    update_mask=FieldMask(paths=["max_open_orders"]),
                ),
                metadata=broker.stack.as_(who),
                timeout=5,
            )
        )
        return response

    updated = update(DEALER, 1).limits
    try:
        read = broker.risk_admin.GetAccountRiskLimits(
            admin_pb2.GetAccountRiskLimitsRequest(account_id=account.id),
            metadata=broker.stack.as_(BACKOFFICE),
            timeout=5,
        ).limits
        refusal = broker.check_order(
            account.id, "EURUSD", types_pb2.SIDE_BUY, "0.1", open_order_count=1
        )
        allowed = broker.check_order(
            account.id, "EURUSD", types_pb2.SIDE_BUY, "0.1", open_order_count=0
        )

        assert (updated.max_open_orders, updated.max_open_positions) == (1, 0)
        assert updated.max_gross_notional == ""
        assert updated.HasField("update_time")
        assert read == updated
        assert refusal.reject_reason == R.ERROR_REASON_ACCOUNT_LIMIT_EXCEEDED
        assert refusal.reject_message == "the account may have at most 1 open orders"
        assert allowed.approved
        for who in (BACKOFFICE, Who(user.id, "trader")):
            code, reason, _ = refused(lambda who=who: update(who, 5))
            assert (code, reason) == (
                grpc.StatusCode.PERMISSION_DENIED,
                R.ERROR_REASON_PERMISSION_DENIED,
            )
        with broker.stack.db() as db:
            audit = db.execute(
                "SELECT actor_id, before, after FROM risk.limit_changes WHERE account_id = %s",
                (account.id,),
            ).fetchall()
        assert audit == [
            (
                DEALER.subject,
                None,
                {"max_open_positions": 0, "max_open_orders": 1, "max_gross_notional": None},
            )
        ]
    finally:
        update(DEALER, 0)
    code, reason, _ = refused(
        lambda: broker.risk_admin.GetAccountRiskLimits(
            admin_pb2.GetAccountRiskLimitsRequest(account_id=str(uuid.uuid4())),
            metadata=broker.stack.as_(DEALER),
            timeout=5,
        )
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, R.ERROR_REASON_NOT_FOUND)


# -- stop-out, end to end through the OMS -----------------------------------------------------


def _risk_events(broker: Broker, account_id: str) -> list[tuple[str, risk_pb2.MarginEvent]]:
    """The account's events in the RISK stream's envelopes, in order: (subject, margin event);
    every message holding such events went out under its envelope's id."""
    messages = asyncio.run(published(broker.stack, "RISK", "risk.>"))
    found = []
    for message, event in events_on(messages, "risk.account.>"):
        # Every risk event has the same shape: metadata, margin_event.
        margin_event = risk_events_pb2.StopOutCompleted.FromString(event.data).margin_event
        assert message.msg_id == message.envelope_id
        if margin_event.account_id == account_id:
            found.append((event.subject, margin_event))
    return found


def test_a_price_move_below_stop_out_closes_the_largest_loss_first_until_the_level_recovers(
    broker: Broker,
) -> None:
    user, account = broker.new_account("1300.00")
    eventually(lambda: funded_in_risk(broker, account.id), 30, "risk's copy of the funded account")
    # Margin 550.10 and 650.10; each opens 10.00 down (the spread). Each order right after
    # its price is published: the OMS trades only on a price at most 2 s old.
    for symbol, bid, ask in (("EURUSD", "1.10000", "1.10020"), ("GBPUSD", "1.30000", "1.30020")):
        broker.pin(symbol, bid, ask)
        order = place_market(broker, user, account.id, symbol, "0.5")
        assert order.status == trading_pb2.ORDER_STATUS_FILLED, order

    # Prices that differ from the last ones, so pinned at once: every event sees them exactly.
    # GBPUSD falls 160.00: equity 1130.00, used margin 1198.70, level 94.26: a margin call.
    broker.pin("GBPUSD", "1.29700", "1.29720", move_first=False)
    eventually(
        lambda: [e for _, e in _risk_events(broker, account.id)] or None, 30, "the margin call"
    )
    # EURUSD falls 610.00: equity 530.00, used 1192.70, level 44.43: below the stop-out level.
    broker.pin("EURUSD", "1.08800", "1.08820", move_first=False)

    def completed() -> list[tuple[str, risk_pb2.MarginEvent]] | None:
        found = _risk_events(broker, account.id)
        done = any(e.type == risk_pb2.MARGIN_EVENT_TYPE_STOP_OUT_COMPLETED for _, e in found)
        return found if done else None

    events = eventually(completed, 30, "the stop-out completed")

    assert [subject for subject, _ in events] == [
        "risk.account.margin_call_issued",
        "risk.account.stop_out_triggered",
        "risk.account.stop_out_completed",
    ]
    call, triggered, done = (event for _, event in events)
    assert call.account_risk.status == risk_pb2.ACCOUNT_RISK_STATUS_MARGIN_CALL
    assert call.account_risk.margin_level == "94.26"
    assert triggered.account_risk.status == risk_pb2.ACCOUNT_RISK_STATUS_STOP_OUT
    assert triggered.account_risk.margin_level == "44.43"
    assert done.related_margin_event_id == triggered.id
    assert (done.realized_pnl, done.negative_balance) == ("-610.00", "0.00")
    assert len(done.closed_position_ids) == 1
    assert len(done.closing_order_ids) == 1
    # Only EURUSD (the larger loss) was closed: 690.00 - 160.00 = 530.00 on 648.60 of margin.
    after = done.account_risk
    assert (after.balance, after.unrealized_pnl, after.equity) == ("690.00", "-160.00", "530.00")
    assert (after.used_margin, after.margin_level) == ("648.60", "81.71")
    assert after.status == risk_pb2.ACCOUNT_RISK_STATUS_MARGIN_CALL
    assert after.open_position_count == 1

    positions = position_grpc.PositionServiceStub(broker.oms_channel)
    owner = broker.stack.as_(Who(user.id, "trader"))
    closed = positions.GetPosition(
        position_service_pb2.GetPositionRequest(
            account_id=account.id, position_id=done.closed_position_ids[0]
        ),
        metadata=owner,
        timeout=5,
    ).position
    assert (closed.symbol, closed.status, closed.realized_pnl) == (
        "EURUSD",
        oms_pb2.POSITION_STATUS_CLOSED,
        "-610.00",
    )
    # The loss is booked to the ledger as a stop-out loss, and the margin state is kept.
    with broker.stack.db() as db:

        def booked() -> list[tuple[Any, ...]] | None:
            rows = db.execute(
                "SELECT reason, amount FROM account.ledger_entries WHERE account_id = %s"
                " AND reason = 'STOP_OUT_LOSS'",
                (account.id,),
            ).fetchall()
            return rows or None

        assert eventually(booked, 30, "the stop-out loss booked") == [
            ("STOP_OUT_LOSS", D("-610.000000000000"))
        ]
        state = db.execute(
            "SELECT status, margin_call_event_id::text, stop_out_event_id FROM risk.margin_status"
            " WHERE account_id = %s",
            (account.id,),
        ).fetchone()
    assert state == ("MARGIN_CALL", call.id, None)
    listed = broker.risk.ListMarginEvents(
        api_pb2.ListMarginEventsRequest(account_id=account.id),
        metadata=owner,
        timeout=5,
    ).margin_events
    assert [e.id for e in listed] == [done.id, triggered.id, call.id]  # newest first

    # Staff see the account among those in margin call, its events, and the group's exposure.
    staff = broker.stack.as_(BACKOFFICE)
    in_call = broker.risk_admin.ListAccountRisks(
        admin_pb2.ListAccountRisksRequest(
            statuses=[risk_pb2.ACCOUNT_RISK_STATUS_MARGIN_CALL], group_id=broker.group_id
        ),
        metadata=staff,
        timeout=5,
    ).account_risks
    assert [(r.account_id, r.margin_level) for r in in_call] == [(account.id, "81.71")]
    stop_outs = broker.risk_admin.ListAllMarginEvents(
        admin_pb2.ListAllMarginEventsRequest(
            account_id=account.id,
            types=[
                risk_pb2.MARGIN_EVENT_TYPE_STOP_OUT_TRIGGERED,
                risk_pb2.MARGIN_EVENT_TYPE_STOP_OUT_COMPLETED,
            ],
            page_size=1,
        ),
        metadata=staff,
        timeout=5,
    )
    assert [e.id for e in stop_outs.margin_events] == [done.id]
    assert stop_outs.next_page_token
    exposure = broker.risk_admin.GetExposure(
        admin_pb2.GetExposureRequest(symbol="GBPUSD", group_id=broker.group_id),
        metadata=staff,
        timeout=5,
    ).exposures
    assert [(e.symbol, e.client_long_quantity, e.broker_net_quantity) for e in exposure] == [
        ("GBPUSD", "0.5", "-0.5")
    ]
    assert exposure[0].mid_price == "1.2971"
    assert exposure[0].client_net_notional == types_pb2.Money(amount="64855.00", currency="USD")
    assert exposure[0].client_unrealized_pnl.amount == "-160.00"

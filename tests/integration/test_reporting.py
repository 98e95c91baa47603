"""Reporting against the real stack (issue #15, ADR 0012): statements, history, exports,
performance and the broker views, read from the stack's streaming replica.

Prices are pinned at both LP simulators, in a group of the test's own with no markup, a
commission of 7 per lot and swap terms of its own, so every fill price and every amount of the
scripted history (its rollover's swaps included) is known and the statement is checked against a
table computed by hand.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.parse
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import grpc
import pytest

from simulators.lp.control import ControlClient
from stack.operator_tls import service_channel
from stack.orchestrator import status
from stack.ports import LP_SIMULATORS
from stack.ports import Ports
from tests.integration.callers import Who
from tests.integration.conftest import RunningStack
from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.infra import connect_postgres
from tests.integration.support.orders import Oms
from tests.integration.support.orders import connect
from tests.integration.support.orders import new_group
from tests.integration.support.orders import place
from tests.integration.support.rollover import admin
from tests.integration.support.rollover import as_staff
from tests.integration.support.rollover import balance
from tests.integration.support.rollover import completed
from tests.integration.support.rollover import swap_entries
from tests.integration.support.waiting import eventually
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb
from tradingmesh.account.v1 import account_service_pb2 as account_api
from tradingmesh.account.v1 import auth_service_pb2 as auth_pb2
from tradingmesh.account.v1 import auth_service_pb2_grpc as auth_grpc
from tradingmesh.common.v1 import ledger_pb2
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_admin_service_pb2
from tradingmesh.reporting.v1 import reporting_admin_service_pb2 as admin_api
from tradingmesh.reporting.v1 import reporting_admin_service_pb2_grpc as admin_grpc
from tradingmesh.reporting.v1 import reporting_pb2
from tradingmesh.reporting.v1 import reporting_service_pb2 as api
from tradingmesh.reporting.v1 import reporting_service_pb2_grpc as api_grpc

D = Decimal
PASSWORD = "correct horse battery"
OPEN_BID, OPEN_ASK = "1.10000", "1.10020"
LATER_BID, LATER_ASK = "1.10520", "1.10540"
# The rollover of the scripted history: a Tuesday in the future (one night; the group's triple
# day is Wednesday), so every position open now is before its instant. No other test rolls this
# day over, so in a shared stack it is still to run.
ROLLOVER_DAY = "2030-01-08"


@dataclass(frozen=True)
class Client:
    user_id: str
    username: str
    account_id: str
    md: tuple[tuple[str, str], ...]


@dataclass
class Reporting:
    oms: Oms
    channel: grpc.Channel

    @property
    def api(self) -> api_grpc.ReportingServiceStub:
        return api_grpc.ReportingServiceStub(self.channel)

    @property
    def admin(self) -> admin_grpc.ReportingAdminServiceStub:
        return admin_grpc.ReportingAdminServiceStub(self.channel)

    @property
    def ports(self) -> Ports:
        return Ports(self.oms.running.state.base_port)


@pytest.fixture(scope="module")
def reporting(running_stack: RunningStack) -> Iterator[Reporting]:
    for oms in connect(running_stack):
        channel = service_channel(running_stack.state, "reporting")
        try:
            yield Reporting(oms, channel)
        finally:
            channel.close()


def _pin(reporting: Reporting, bid: str, ask: str) -> None:
    for lp in LP_SIMULATORS:
        ControlClient(reporting.ports.lp_control(lp)).pin("EURUSD", bid, ask)


def _unpin(reporting: Reporting) -> None:
    for lp in LP_SIMULATORS:
        ControlClient(reporting.ports.lp_control(lp)).unpin()


def _new_client(reporting: Reporting, group_id: str) -> Client:
    stack = reporting.oms.stack
    backoffice = Who(str(uuid.uuid4()), "backoffice")
    user = stack.new_user(backoffice)
    account = stack.admin.CreateTradingAccount(
        admin_pb.CreateTradingAccountRequest(user_id=user.id, group_id=group_id),
        metadata=stack.as_(backoffice),
    ).account
    stack.deposit_direct(account.account_number, "10000.00")
    client = Client(
        user.id, user.username, account.id, stack.as_(Who(user.id, "trader", accounts=account.id))
    )

    def funded() -> bool | None:
        try:
            listed = reporting.api.ListTradeHistory(
                api.ListTradeHistoryRequest(account_id=client.account_id), metadata=client.md
            )
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:  # not on the replica yet
                return None
            raise
        return listed is not None or None

    eventually(funded, 30, "the account on the replica")
    return client


def _quote_is(reporting: Reporting, client: Client, ask: str) -> Callable[[], bool | None]:
    from tradingmesh.pricing.v1 import pricing_service_pb2
    from tradingmesh.pricing.v1 import pricing_service_pb2_grpc

    def probe() -> bool | None:
        with reporting.oms.service("pricing") as channel:
            try:
                quote = (
                    pricing_service_pb2_grpc.PricingServiceStub(channel)
                    .GetQuote(
                        pricing_service_pb2.GetQuoteRequest(
                            symbol="EURUSD", account_id=client.account_id
                        ),
                        metadata=client.md,
                        timeout=5,
                    )
                    .quote
                )
            except grpc.RpcError:
                return None
        return True if quote.ask == ask and not quote.stale else None

    return probe


def _market(reporting: Reporting, client: Client, side: int, quantity: str) -> Any:
    def attempt() -> Any:
        order = place(
            reporting.oms,
            client,  # type: ignore[arg-type]  # has account_id and md, as Trader
            side=side,
            quantity=quantity,
        )
        # A price momentarily not live rejects the order: try again with a new id.
        return order if order.status == trading_pb2.ORDER_STATUS_FILLED else None

    return eventually(attempt, 20, f"a filled market order of {quantity}")


def _order_ids(reporting: Reporting, client: Client) -> list[str]:
    """Every order of the client's account, as the OMS stored them (primary), sorted."""
    with reporting.oms.stack.db() as db:
        rows = db.execute(
            "SELECT id::text FROM oms.orders WHERE account_id = %s", (client.account_id,)
        ).fetchall()
    return sorted(row[0] for row in rows)


def _swap_booked(oms: Oms, account_id: str, amount: Decimal) -> bool | None:
    """The account's one SWAP entry, of `amount`, is on the primary's ledger."""
    return list(swap_entries(oms, account_id).values()) == [amount] or None


@dataclass(frozen=True)
class History:
    client: Client
    other: Client
    group_id: str
    started: datetime


@pytest.fixture(scope="module")
def history(reporting: Reporting) -> Iterator[History]:
    """The scripted history: deposit 10,000.00; buy 0.30 EURUSD at 1.10020 (commission 2.10);
    the price moves; sell 0.10 at 1.10520 (P&L +50.00, commission 0.70); a buy limit at 1.00000
    left working; the rollover of a Tuesday charges the open 0.20 lots a night's swap (-1.30);
    a withdrawal of 1,000.00; 0.20 lots left open, valued at the bid 1.10520. The other client
    of the group holds 0.10 lots long (swap -0.65)."""
    oms = reporting.oms
    group_id = new_group(oms, types_pb2.EXECUTION_MODE_MARKET, commission="7")
    admin(oms).SetSwapRates(
        order_admin_service_pb2.SetSwapRatesRequest(
            swap_rates=oms_pb2.SwapRates(
                symbol="EURUSD",
                group_id=group_id,
                type=oms_pb2.SWAP_TYPE_POINTS,
                long_rate="-6.5",
                short_rate="1.2",
                triple_swap_day=oms_pb2.ROLLOVER_WEEKDAY_WEDNESDAY,
            ),
            reason="the scripted history's financing",
        ),
        metadata=as_staff(oms, "dealer"),
    )
    started = datetime.now(UTC) - timedelta(seconds=1)
    client = _new_client(reporting, group_id)
    other = _new_client(reporting, group_id)
    try:
        _pin(reporting, OPEN_BID, OPEN_ASK)
        eventually(_quote_is(reporting, client, OPEN_ASK), 30, "the pinned opening price")
        _market(reporting, client, types_pb2.SIDE_BUY, "0.30")
        _market(reporting, other, types_pb2.SIDE_BUY, "0.10")
        _pin(reporting, LATER_BID, LATER_ASK)
        eventually(_quote_is(reporting, client, LATER_ASK), 30, "the pinned later price")
        _market(reporting, client, types_pb2.SIDE_SELL, "0.10")
        working = place(
            reporting.oms,
            client,  # type: ignore[arg-type]
            type=trading_pb2.ORDER_TYPE_LIMIT,
            price="1.00000",
            quantity="0.10",
            time_in_force=trading_pb2.TIME_IN_FORCE_GTC,
        )
        assert working.status == trading_pb2.ORDER_STATUS_WORKING, working
        # The trades booked first (10000.00 - 2.10 + 50.00 - 0.70), so the ledger's order is
        # the script's: trades, the swap, the withdrawal.
        eventually(
            lambda: balance(oms, client.account_id) == D("10047.20") or None,
            30,
            "the trades booked",
        )
        # One night on the open 0.20 lots long: 0.20 x 100000 x -6.5 x 0.00001 = -1.30 USD
        # (the other client's 0.10 lots: -0.65), booked before the withdrawal.
        completed(oms, ROLLOVER_DAY)
        for account_id, swap in ((client.account_id, "-1.30"), (other.account_id, "-0.65")):
            eventually(partial(_swap_booked, oms, account_id, D(swap)), 30, "the swap booked")
        reporting.oms.stack.api.RequestWithdrawal(
            account_api.RequestWithdrawalRequest(
                account_id=client.account_id,
                amount="1000.00",
                idempotency_key=f"wd-{uuid.uuid4().hex[:16]}",
            ),
            metadata=reporting.oms.stack.as_(Who(client.user_id, "trader")),
            timeout=10,
        )
        yield History(client, other, group_id, started)
    finally:
        _unpin(reporting)


def _statement(reporting: Reporting, client: Client, **range_: Any) -> reporting_pb2.Statement:
    return reporting.api.GetStatement(
        api.GetStatementRequest(
            account_id=client.account_id, time_range=types_pb2.TimeRange(**range_)
        ),
        metadata=client.md,
        timeout=10,
    ).statement


def test_the_statement_of_a_scripted_history_equals_the_hand_computed_table(
    reporting: Reporting, history: History
) -> None:
    client = history.client

    def complete() -> reporting_pb2.Statement | None:
        statement = _statement(reporting, client)
        # The account service books P&L and commission from the OMS's events, and the
        # replica follows the primary: wait for the whole history.
        return statement if statement.closing_balance == "9045.90" else None

    statement = eventually(complete, 30, "every movement on the replica's ledger")

    # 10000.00 - 2.10 + 50.00 - 0.70 - 1.30 - 1000.00 = 9045.90; the open 0.20 lots at the
    # bid: (1.10520 - 1.10020) x 0.20 x 100000 = 100.00; equity 9145.90; margin at the ask:
    # 0.20 x 100000 x 1.10540 / 100 = 221.08; free 9145.90 - 221.08 = 8924.82;
    # level 9145.90 / 221.08 x 100 = 4136.918... -> 4136.91
    expected = {
        "currency": "USD",
        "opening_balance": "0.00",
        "deposits": "10000.00",
        "withdrawals": "-1000.00",
        "realized_pnl": "50.00",
        "stop_out_loss": "0.00",
        "commissions": "-2.80",
        "swaps": "-1.30",
        "adjustments": "0.00",
        "negative_balance_corrections": "0.00",
        "closing_balance": "9045.90",
        "closing_unrealized_pnl": "100.00",
        "closing_equity": "9145.90",
        "closing_margin": "221.08",
        "closing_free_margin": "8924.82",
        "closing_margin_level": "4136.91",
    }
    assert {name: getattr(statement, name) for name in expected} == expected
    assert not statement.truncated

    lines = [
        (ledger_pb2.LedgerEntryReason.Name(line.reason).removeprefix("LEDGER_ENTRY_REASON_"),
         line.amount)
        for line in statement.ledger_lines
    ]  # fmt: skip
    assert sorted(lines) == sorted(
        [
            ("DEPOSIT", "10000.00"),
            ("COMMISSION", "-2.10"),
            ("REALIZED_PNL", "50.00"),
            ("COMMISSION", "-0.70"),
            ("SWAP", "-1.30"),
            ("WITHDRAWAL", "-1000.00"),
        ]
    )
    # The script's order: the swap after the trades, the withdrawal last; each line's balance
    # is the one before it plus its amount.
    assert [reason for reason, _ in lines][-2:] == ["SWAP", "WITHDRAWAL"]
    running = D(0)
    for line in statement.ledger_lines:
        running += D(line.amount)
        assert D(line.balance_after) == running, line
    assert statement.ledger_lines[-1].balance_after == "9045.90"

    # The swap shows on the fill that closes a position; this one is still open.
    assert [
        (d.side, d.quantity, d.price, d.commission, d.realized_pnl, d.swap) for d in statement.deals
    ] == [
        (types_pb2.SIDE_BUY, "0.3", "1.1002", "2.1", "0", "0"),
        (types_pb2.SIDE_SELL, "0.1", "1.1052", "0.7", "50", "0"),
    ]
    [closed] = statement.closed_trades
    assert (closed.side, closed.quantity, closed.open_price, closed.close_price) == (
        types_pb2.SIDE_BUY,
        "0.1",
        "1.1002",
        "1.1052",
    )
    assert (closed.realized_pnl, closed.commission) == ("50", "0.7")

    [position] = statement.open_positions
    assert (position.side, position.quantity, position.open_price) == (
        types_pb2.SIDE_BUY,
        "0.2",
        "1.1002",
    )
    assert (
        position.valuation_price,
        position.unrealized_pnl,
        position.commission,
        position.swap,
    ) == ("1.1052", "100.00", "2.80", "-1.30")
    [swap_line] = [line for line in statement.ledger_lines if line.amount == "-1.30"]
    assert swap_line.position_id == position.position_id

    # Three orders placed, plus any attempt the helper retried (a price momentarily not live
    # rejects a market order): every order of the account is in the block, once.
    assert sorted(o.order_id for o in statement.orders) == _order_ids(reporting, history.client)
    placed = [o for o in statement.orders if o.status != trading_pb2.ORDER_STATUS_REJECTED]
    assert len(placed) == 3
    [working] = statement.working_orders
    assert (working.type, working.price) == (trading_pb2.ORDER_TYPE_LIMIT, "1")


def test_a_statement_of_a_past_period_ends_at_its_end(
    reporting: Reporting, history: History
) -> None:
    # The first microsecond of the account's life: before its deposit, nothing at all.
    created = _statement(reporting, history.client)
    start = created.period.start_time
    before = _statement(
        reporting,
        history.client,
        start_time=start,
        end_time=_ts(start.ToDatetime(UTC) + timedelta(microseconds=1)),
    )
    assert (before.opening_balance, before.closing_balance, list(before.open_positions)) == (
        "0.00",
        "0.00",
        [],
    )


def _ts(at: datetime) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def _all_trades(
    reporting: Reporting, client: Client, page_size: int
) -> list[reporting_pb2.TradeRecord]:
    trades: list[reporting_pb2.TradeRecord] = []
    token = ""
    while True:
        page = reporting.api.ListTradeHistory(
            api.ListTradeHistoryRequest(
                account_id=client.account_id, page_size=page_size, page_token=token
            ),
            metadata=client.md,
        )
        trades.extend(page.trades)
        token = page.next_page_token
        if not token:
            return trades


def _export(reporting: Reporting, client: Client) -> bytes:
    chunks = reporting.api.ExportTrades(
        api.ExportTradesRequest(account_id=client.account_id, time_range=types_pb2.TimeRange()),
        metadata=client.md,
        timeout=10,
    )
    data = b""
    for chunk in chunks:
        assert chunk.chunk.content_type == "text/csv; charset=utf-8"
        data += chunk.chunk.data
    return data


def _csv_of(record: reporting_pb2.TradeRecord) -> list[str]:
    from services.reporting.domain.csvrows import rfc3339_ms

    return [
        record.trade_id,
        record.order_id,
        record.client_order_id,
        record.position_id,
        rfc3339_ms(record.fill_time.ToDatetime(UTC)),
        record.symbol,
        types_pb2.Side.Name(record.side).removeprefix("SIDE_"),
        trading_pb2.PositionEffect.Name(record.position_effect).removeprefix("POSITION_EFFECT_"),
        record.quantity,
        record.price,
        record.commission,
        record.realized_pnl,
        "USD",
        trading_pb2.OrderOrigin.Name(record.origin).removeprefix("ORDER_ORIGIN_"),
    ]


def test_the_csv_export_equals_the_trade_history_row_for_row(
    reporting: Reporting, history: History
) -> None:
    client = history.client
    eventually(lambda: len(_all_trades(reporting, client, 1)) == 2 or None, 30, "both fills")
    listed = _all_trades(reporting, client, 1)  # one per page: the keyset paging too

    data = _export(reporting, client)

    assert data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert rows[0] == [
        "trade_id", "order_id", "client_order_id", "position_id", "fill_time", "symbol", "side",
        "position_effect", "quantity", "price", "commission", "realized_pnl", "currency", "origin",
    ]  # fmt: skip
    # The export is oldest first, the history newest first.
    assert rows[1:] == [_csv_of(r) for r in reversed(listed)]
    assert [r[7] for r in rows[1:]] == ["OPEN", "REDUCE"]


def test_history_filters_and_order_history(reporting: Reporting, history: History) -> None:
    client = history.client
    none = reporting.api.ListTradeHistory(
        api.ListTradeHistoryRequest(account_id=client.account_id, symbol="USDJPY"),
        metadata=client.md,
    )
    assert list(none.trades) == []
    assert none.next_page_token == ""
    working = reporting.api.ListOrderHistory(
        api.ListOrderHistoryRequest(
            account_id=client.account_id, statuses=[trading_pb2.ORDER_STATUS_WORKING]
        ),
        metadata=client.md,
    ).orders
    assert [o.type for o in working] == [trading_pb2.ORDER_TYPE_LIMIT]
    every = reporting.api.ListOrderHistory(
        api.ListOrderHistoryRequest(account_id=client.account_id), metadata=client.md
    ).orders
    assert sorted(o.order_id for o in every) == _order_ids(reporting, client)
    assert len([o for o in every if o.status != trading_pb2.ORDER_STATUS_REJECTED]) == 3
    assert [o.create_time.ToDatetime() for o in every] == sorted(
        (o.create_time.ToDatetime() for o in every), reverse=True
    )
    with pytest.raises(grpc.RpcError) as raised:
        reporting.api.ListOrderHistory(
            api.ListOrderHistoryRequest(account_id=client.account_id, page_token="bogus"),
            metadata=client.md,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_another_users_account_is_not_found_in_every_report(
    reporting: Reporting, history: History
) -> None:
    intruder = history.other
    foreign = history.client.account_id
    calls: list[Callable[[], Any]] = [
        lambda: reporting.api.GetStatement(
            api.GetStatementRequest(account_id=foreign, time_range=types_pb2.TimeRange()),
            metadata=intruder.md,
        ),
        lambda: reporting.api.GetPerformance(
            api.GetPerformanceRequest(account_id=foreign), metadata=intruder.md
        ),
        lambda: reporting.api.ListTradeHistory(
            api.ListTradeHistoryRequest(account_id=foreign), metadata=intruder.md
        ),
        lambda: reporting.api.ListOrderHistory(
            api.ListOrderHistoryRequest(account_id=foreign), metadata=intruder.md
        ),
        lambda: list(
            reporting.api.ExportTrades(
                api.ExportTradesRequest(account_id=foreign, time_range=types_pb2.TimeRange()),
                metadata=intruder.md,
            )
        ),
    ]
    unknown = str(uuid.uuid4())
    for call in calls:
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert foreign in (raised.value.details() or "")
    with pytest.raises(grpc.RpcError) as missing:
        reporting.api.GetStatement(
            api.GetStatementRequest(account_id=unknown, time_range=types_pb2.TimeRange()),
            metadata=intruder.md,
        )
    # The same answer as for an account that does not exist: nothing revealed.
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert (missing.value.details() or "").replace(unknown, "ID") == (
        raised.value.details() or ""
    ).replace(foreign, "ID")
    # Staff may read any account.
    staff = reporting.oms.stack.as_(Who(str(uuid.uuid4()), "dealer"))
    statement = reporting.api.GetStatement(
        api.GetStatementRequest(account_id=foreign, time_range=types_pb2.TimeRange()),
        metadata=staff,
    ).statement
    assert statement.account_id == foreign


def test_admin_reports_are_refused_to_a_client_and_served_to_staff(
    reporting: Reporting, history: History
) -> None:
    client = history.client
    now = datetime.now(UTC)
    window = types_pb2.TimeRange(start_time=_ts(history.started), end_time=_ts(now))
    calls: list[Callable[[tuple[tuple[str, str], ...]], Any]] = [
        lambda md: reporting.admin.GetBrokerSummary(
            admin_api.GetBrokerSummaryRequest(time_range=window, group_ids=[history.group_id]),
            metadata=md,
        ),
        lambda md: reporting.admin.GetExposureHistory(
            admin_api.GetExposureHistoryRequest(time_range=window, symbols=["EURUSD"]),
            metadata=md,
        ),
        lambda md: list(
            reporting.admin.ExportBrokerTrades(
                admin_api.ExportBrokerTradesRequest(
                    time_range=window, account_ids=[client.account_id, history.other.account_id]
                ),
                metadata=md,
            )
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as raised:
            call(client.md)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    staff = reporting.oms.stack.as_(Who(str(uuid.uuid4()), "admin"))
    summary, exposure, export = (call(staff) for call in calls)

    totals = summary.summary.totals
    # The group's fills: 0.30 + 0.10 (the other client) + 0.10, at 7 per lot.
    assert (totals.trade_count, totals.account_count, totals.volume_lots) == (3, 2, "0.5")
    assert (totals.commissions, totals.client_realized_pnl) == ("3.50", "50.00")
    # 0.3 x 100000 x 1.1002 + 0.1 x 100000 x 1.1002 + 0.1 x 100000 x 1.1052
    assert totals.notional_volume == "55060.00"
    assert [g.group_id for g in summary.summary.by_group] == [history.group_id]
    # The rollover's swaps: -1.30 (ours) - 0.65 (the other client's 0.10 lots).
    assert totals.swaps == "-1.95"
    [by_symbol] = summary.summary.by_instrument
    assert (by_symbol.symbol, by_symbol.totals.swaps) == ("EURUSD", "-1.95")
    # Both clients' deposits of 10,000.00 and our withdrawal of 1,000.00.
    assert (summary.summary.deposits, summary.summary.withdrawals) == ("20000.00", "-1000.00")
    # The clients' net position at the end: ours 0.20 + the other's 0.10 long, at the mid of
    # the pinned price: 0.30 x 100000 x (1.10520 + 1.10540) / 2 = 33159.00 USD.
    assert [
        (e.symbol, e.client_net_quantity, e.client_net_notional)
        for e in summary.summary.client_exposure
    ] == [("EURUSD", "0.3", "33159.00")]

    [series] = exposure.series
    assert series.symbol == "EURUSD"
    last = series.points[-1]
    assert D(last.client_net_quantity) >= D("0.3")  # ours 0.2 + the other's 0.1, at least

    rows = list(
        csv.reader(io.StringIO(b"".join(c.chunk.data for c in export).decode(), newline=""))
    )
    assert rows[0][:3] == ["account_id", "account_number", "group_id"]
    assert sorted(r[0] for r in rows[1:]) == sorted(
        [client.account_id] * 2 + [history.other.account_id]
    )


def test_performance_from_daily_snapshots(reporting: Reporting, history: History) -> None:
    client = history.client
    day0 = datetime(2026, 1, 5, tzinfo=UTC)
    # A fixed equity series (the rows the risk service writes at each rollover, ADR 0010),
    # inserted as such: the figures below are computed by hand from it.
    equities = ["10000", "11000", "9900", "10890"]
    # All four in one transaction, so the replica has all or none.
    with reporting.oms.stack.db() as db, db.transaction():
        for index, equity in enumerate(equities):
            db.execute(
                """INSERT INTO risk.daily_snapshots (account_id, trading_date, currency,
                       balance, equity, margin, free_margin, floating_pnl, taken_at)
                   VALUES (%s, %s, 'USD', %s, %s, 0, %s, 0, %s) ON CONFLICT DO NOTHING""",
                (
                    client.account_id,
                    (day0 + timedelta(days=index)).date(),
                    equity,
                    equity,
                    equity,
                    day0 + timedelta(days=index, hours=22),
                ),
            )
    window = types_pb2.TimeRange(
        start_time=_ts(day0 + timedelta(days=1)), end_time=_ts(day0 + timedelta(days=4))
    )

    def read() -> reporting_pb2.Performance | None:
        try:
            return reporting.api.GetPerformance(
                api.GetPerformanceRequest(
                    account_id=client.account_id,
                    time_range=window,
                    interval=reporting_pb2.REPORT_INTERVAL_DAY,
                ),
                metadata=client.md,
            ).performance
        except grpc.RpcError as error:  # the table not yet on the replica
            if error.code() == grpc.StatusCode.INTERNAL:
                return None
            raise

    def replicated() -> reporting_pb2.Performance | None:
        performance = read()
        if performance is None or performance.equity_curve[-1].equity != "10890.00":
            return None
        return performance

    performance = eventually(replicated, 30, "the snapshots on the replica")
    # Points at Jan 6 00:00 (Jan 5's snapshot), 7th, 8th (Jan 6, 7) and the end, Jan 9 00:00
    # (Jan 8's): 10000, 11000, 9900, 10890: returns +10 %, -10 %, +10 %.
    assert [p.equity for p in performance.equity_curve] == [
        "10000.00",
        "11000.00",
        "9900.00",
        "10890.00",
    ]
    assert [p.return_percent for p in performance.equity_curve] == ["", "10.00", "-10.00", "10.00"]
    assert performance.total_return_percent == "8.90"  # 1.1 x 0.9 x 1.1 - 1
    assert (performance.max_drawdown, performance.max_drawdown_percent) == ("1100.00", "10.00")
    # mean 1/30, sample deviation sqrt(0.04 / 3) = 0.11547: 0.2887; downside sqrt(0.01/3)
    assert (performance.sharpe_ratio, performance.sortino_ratio) == ("0.2887", "0.5774")
    assert performance.net_profit == "890.00"


def test_reports_read_the_replica_and_not_the_primary(
    reporting: Reporting, history: History, running_stack: RunningStack
) -> None:
    stack = reporting.oms.stack
    ports = reporting.ports

    def reporting_calls(port: int) -> int:
        url = urllib.parse.urlsplit(stack.database_url)
        with connect_postgres(
            stack.state.endpoints.ca_file,
            host="127.0.0.1",
            port=port,
            dbname="postgres",
            user=url.username,
            password=urllib.parse.unquote(url.password or ""),
            autocommit=True,
        ) as db:
            row = db.execute(
                """SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s
                     JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'reporting'"""
            ).fetchone()
        assert row is not None
        return int(row[0])

    primary_before = reporting_calls(ports.postgres)
    replica_before = reporting_calls(ports.postgres_replica)
    for _ in range(3):
        _statement(reporting, history.client)
    _export(reporting, history.client)

    # Unchanged on the primary (earlier tests of a shared stack may have read there as the
    # reporting role themselves, e.g. test_brokers_day checks that role's grants).
    assert reporting_calls(ports.postgres) == primary_before
    assert reporting_calls(ports.postgres_replica) >= replica_before + 3 * 10

    replica = status(running_stack.config.name)
    assert replica is not None
    assert replica.replica is not None
    assert replica.replica.streaming
    assert replica.replica.address == f"127.0.0.1:{ports.postgres_replica}"


def test_through_the_edge_over_grpc_grpc_web_and_rest_with_a_client_and_the_operator(
    reporting: Reporting, history: History, running_stack: RunningStack
) -> None:
    edge = Edge(running_stack.state)
    with edge.channel() as channel:
        token = (
            auth_grpc.AuthServiceStub(channel)
            .Login(
                auth_pb2.LoginRequest(username=history.client.username, password=PASSWORD),
                timeout=20,
            )
            .access_token
        )
        statement = (
            api_grpc.ReportingServiceStub(channel)
            .GetStatement(
                api.GetStatementRequest(
                    account_id=history.client.account_id, time_range=types_pb2.TimeRange()
                ),
                metadata=bearer(token),
                timeout=10,
            )
            .statement
        )
    assert statement.closing_balance == "9045.90"

    # gRPC-web (the browser's way): the same statement in the first frame, status 0 in the
    # trailers.
    message = api.GetStatementRequest(
        account_id=history.client.account_id, time_range=types_pb2.TimeRange()
    ).SerializeToString()
    connection = edge.https()
    connection.request(
        "POST",
        "/tradingmesh.reporting.v1.ReportingService/GetStatement",
        body=b"\x00" + len(message).to_bytes(4, "big") + message,
        headers={
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "authorization": f"Bearer {token}",
        },
    )
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    assert response.status == 200
    length = int.from_bytes(payload[1:5], "big")
    web = api.GetStatementResponse.FromString(payload[5 : 5 + length]).statement
    assert b"grpc-status:0" in payload[5 + length :].replace(b" ", b"")
    assert web.closing_balance == "9045.90"

    connection = edge.https()
    connection.request(
        "GET",
        f"/v1/accounts/{history.client.account_id}/trades:export"
        "?time_range.start_time=2020-01-01T00:00:00Z",
        headers={"authorization": f"Bearer {token}"},
    )
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 200, body[:300]
    assert response.getheader("content-type", "").startswith("text/csv")
    assert body == _export(reporting, history.client)

    operator = running_stack.state.operator
    assert operator is not None
    assert operator.username == "operator"
    with edge.channel() as channel:
        staff_token = (
            auth_grpc.AuthServiceStub(channel)
            .Login(
                auth_pb2.LoginRequest(username=operator.username, password=operator.password),
                timeout=20,
            )
            .access_token
        )
    connection = edge.https()
    query = urllib.parse.urlencode(
        {
            "time_range.start_time": history.started.isoformat().replace("+00:00", "Z"),
            "group_ids": history.group_id,
        }
    )
    connection.request(
        "GET",
        f"/v1/admin/reports/summary?{query}",
        headers={"authorization": f"Bearer {staff_token}"},
    )
    response = connection.getresponse()
    payload = json.loads(response.read())
    connection.close()
    assert response.status == 200, payload
    totals = payload["summary"]["totals"]
    assert totals.get("trade_count", totals.get("tradeCount")) in (3, "3")

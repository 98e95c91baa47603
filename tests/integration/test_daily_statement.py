"""The opt-in daily statement email against the real stack (ADR 0011, issue #15): a user who
switched it on gets, after a trading day's rollover, exactly one DAILY_STATEMENT notification
and one email in the SMTP sink whose summary is the reporting service's statement of the day
(checked by hand against the ledger and the day's swap charge); a user who did not gets none;
a second RunRollover of the day, and the job running the day again as after a crash, make no
second one.

The test stacks roll over only by RunRollover and make a day's statements 5 s after its
completion (`tests/conftest.py`). The day is in the future, so that the position opened here is
before the rollover's instant and is charged its swap.
"""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from simulators.smtp.control import SinkClient
from tests.integration.callers import AccountStack
from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.edge_trading import Trader
from tests.integration.support.edge_trading import filled_market
from tests.integration.support.edge_trading import new_trader
from tests.integration.support.notifications import preferences_of
from tests.integration.support.notifications import switch_email
from tests.integration.support.orders import Oms
from tests.integration.support.rollover import completed
from tests.integration.support.rollover import run_rollover
from tests.integration.support.waiting import eventually
from tradingmesh.common.v1 import types_pb2
from tradingmesh.notification.v1 import notification_pb2 as pb
from tradingmesh.notification.v1 import notification_service_pb2 as api
from tradingmesh.notification.v1 import notification_service_pb2_grpc as api_grpc
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.reporting.v1 import reporting_pb2
from tradingmesh.reporting.v1 import reporting_service_pb2 as reporting_api
from tradingmesh.reporting.v1 import reporting_service_pb2_grpc as reporting_grpc

D = Decimal
K = pb.NotificationKind
# A Thursday (one night of swap), before the days the other tests roll over (2030): in a suite
# sharing one stack it is the first day the service knows, so its period starts at the
# account's opening.
DAY = "2028-06-15"
SUMMARY = (
    ("Opening balance", "opening_balance"),
    ("Deposits", "deposits"),
    ("Withdrawals", "withdrawals"),
    ("Realized P&L", "realized_pnl"),
    ("Commission", "commissions"),
    ("Swap", "swaps"),
    ("Closing balance", "closing_balance"),
    ("Equity", "closing_equity"),
)


@pytest.fixture(scope="module")
def sink(edge: Edge) -> SinkClient:
    return SinkClient(edge.ports.smtp_control)


def daily_email_on(settings: pb.NotificationPreferences) -> bool:
    (daily,) = [p for p in settings.kinds if p.kind == K.NOTIFICATION_KIND_DAILY_STATEMENT]
    return daily.email_enabled


def daily_statements(edge: Edge, trader: Trader, day: str | None = None) -> list[pb.Notification]:
    """The trader's daily statements (of `day` only, if given: in a suite sharing one stack,
    the rollovers of earlier tests' days may make statements for a user who opted in since)."""
    with edge.channel() as channel:
        response = api_grpc.NotificationServiceStub(channel).ListNotifications(
            api.ListNotificationsRequest(kinds=[K.NOTIFICATION_KIND_DAILY_STATEMENT]),
            metadata=bearer(trader.token),
            timeout=10,
        )
    return [n for n in response.notifications if day is None or n.details["trading_date"] == day]


def statement_as_user(
    edge: Edge, trader: Trader, notification: pb.Notification
) -> reporting_pb2.Statement:
    """The user's own statement (ReportingService through the edge) of the notification's
    period."""
    request = reporting_api.GetStatementRequest(account_id=trader.account_id)
    for bound, key in (("start_time", "period_start"), ("end_time", "period_end")):
        getattr(request.time_range, bound).FromDatetime(
            datetime.fromisoformat(notification.details[key].replace("Z", "+00:00"))
        )
    with edge.channel() as channel:
        statement: reporting_pb2.Statement = (
            reporting_grpc.ReportingServiceStub(channel)
            .GetStatement(request, metadata=bearer(trader.token), timeout=20)
            .statement
        )
    return statement


def rows(edge: Edge, sql: str, *params: Any) -> list[Any]:
    with edge.database() as db:
        return list(db.execute(sql, params).fetchall())


def emails_to(sink: SinkClient, address: str, day: str = "") -> list[dict[str, Any]]:
    """The daily statement emails to `address` (of `day` only, if given)."""
    return [
        m
        for m in sink.messages(to=address)
        if str(m["headers"].get("Subject", "")).startswith(f"Daily statement {day}")
    ]


def test_an_opted_in_user_gets_one_daily_statement_email_and_others_none(
    edge: Edge, accounts: AccountStack, oms: Oms, sink: SinkClient
) -> None:
    # Arrange: two funded traders; one switches the daily statement on, the other keeps the
    # default (off). Both trade: buy 0.02 lot, sell 0.01 (realized P&L), 0.01 stays open.
    opted_in, other = new_trader(edge, accounts), new_trader(edge, accounts)
    default = preferences_of(edge, opted_in)
    switched = switch_email(edge, opted_in, K.NOTIFICATION_KIND_DAILY_STATEMENT, True)
    for trader in (opted_in, other):
        filled_market(edge, trader, types_pb2.SIDE_BUY, "0.02")
        filled_market(edge, trader, types_pb2.SIDE_SELL, "0.01")
    (address,) = rows(edge, "SELECT email FROM account.users WHERE id = %s", opted_in.user_id)[0]
    (other_address,) = rows(edge, "SELECT email FROM account.users WHERE id = %s", other.user_id)[0]

    # Act: the operator rolls the day over; its statements follow.
    completed(oms, DAY)
    (notification,) = eventually(
        lambda: daily_statements(edge, opted_in, DAY), 60, "the daily statement notification"
    )
    (email,) = eventually(lambda: emails_to(sink, address, DAY), 60, "the daily statement email")

    # Assert: the figures, by hand from the ledger and the day's swap charge, and as reporting
    # gives them to the user for the same period.
    ledger = {
        reason: D(total)
        for reason, total in rows(
            edge,
            "SELECT reason, sum(amount) FROM account.ledger_entries WHERE account_id = %s"
            " GROUP BY reason",
            opted_in.account_id,
        )
    }
    (charged,) = rows(
        edge,
        "SELECT sum(c.amount) FROM oms.swap_charges c JOIN oms.positions p"
        " ON p.id = c.position_id WHERE p.account_id = %s AND c.trading_date = %s",
        opted_in.account_id,
        DAY,
    )[0]
    details = notification.details
    assert not daily_email_on(default)
    assert daily_email_on(switched)
    assert details["trading_date"] == DAY
    assert D(details["opening_balance"]) == 0
    assert D(details["deposits"]) == D("10000.00")
    assert D(details["commissions"]) == 0  # the standard group charges none
    assert D(details["realized_pnl"]) == ledger["REALIZED_PNL"] != 0
    # 0.01 lot EURUSD long at -6.5 points, one night: 0.01 x 100000 x -6.5 x 0.00001 = -0.065,
    # the minor unit half to even: -0.06.
    assert D(charged) == D("-0.06")
    assert D(details["swaps"]) == ledger["SWAP"] == D("-0.06")
    assert D(details["closing_balance"]) == D("10000.00") + ledger["REALIZED_PNL"] + D("-0.06")
    assert details["closing_margin_level"]  # a position is open: margin is held
    statement = statement_as_user(edge, opted_in, notification)
    for _, field in SUMMARY:
        assert details[field] == getattr(statement, field)
    assert details["closing_margin_level"] == statement.closing_margin_level
    assert email["headers"]["X-TradingMesh-Notification-Id"] == notification.id
    for label, field in SUMMARY:
        assert f"{label}: {details[field]} USD" in email["text"]
        assert f"<code>{details[field]} USD</code>" in email["html"]
    assert f"Margin level (%): {details['closing_margin_level']}" in email["text"]
    assert daily_statements(edge, other) == []
    assert emails_to(sink, other_address) == []

    # Act again: a second RunRollover of the day, and the job making the day once more (as
    # after a crash before it recorded the day done).
    again = run_rollover(oms, DAY)
    with edge.database() as db:
        db.execute(
            "UPDATE notification.rollovers SET statements_done_at = NULL, claimed_until = NULL"
            " WHERE trading_date = %s",
            (DAY,),
        )
        db.commit()
    eventually(
        lambda: rows(
            edge,
            "SELECT 1 FROM notification.rollovers WHERE trading_date = %s"
            " AND statements_done_at IS NOT NULL",
            DAY,
        ),
        60,
        "the day made again",
    )
    time.sleep(2)

    # Assert: still one notification and one email.
    assert again.state == oms_pb2.ROLLOVER_STATE_COMPLETED
    assert len(daily_statements(edge, opted_in, DAY)) == 1
    assert len(emails_to(sink, address, DAY)) == 1
    assert daily_statements(edge, other) == []

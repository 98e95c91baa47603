"""The opt-in daily statement (ADR 0011): its notification and email from a reporting statement
(services/notification/domain.py, email.py), its default off, and the rollover that makes it
due (events.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from email import message_from_bytes
from email import policy
from email.message import EmailMessage
from types import SimpleNamespace

import pytest

from services.notification import domain
from services.notification.email import Mail
from services.notification.email import render
from services.notification.events import FOLLOWED
from services.notification.events import Batch
from services.notification.events import Notifier
from services.notification.server import _preferences
from services.platform.envelope import Event
from services.platform.inbox import UndeliverableError
from tradingmesh.common.v1.events_pb2 import EventMetadata
from tradingmesh.notification.v1.notification_pb2 import NotificationKind
from tradingmesh.oms.v1 import oms_events_pb2
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.reporting.v1 import reporting_pb2

K = NotificationKind
ACCOUNT = "6f1c2a1e-2a55-4f7e-9a59-2a7c1b5f8d01"
END = datetime(2030, 1, 10, 22, 0, 3, tzinfo=UTC)


def _statement(**figures: str) -> reporting_pb2.Statement:
    values = {
        "opening_balance": "0.00",
        "deposits": "10000.00",
        "withdrawals": "-250.50",
        "realized_pnl": "12.34",
        "commissions": "-7.00",
        "swaps": "-0.65",
        "adjustments": "0.00",
        "closing_balance": "9754.19",
        "closing_unrealized_pnl": "-1.10",
        "closing_equity": "9753.09",
        "closing_margin": "108.52",
        "closing_free_margin": "9644.57",
        "closing_margin_level": "8987.37",
    } | figures
    statement = reporting_pb2.Statement(
        account_id=ACCOUNT, account_number="1000123", currency="USD"
    )
    for name, value in values.items():
        setattr(statement, name, value)
    statement.period.start_time.FromDatetime(datetime(2030, 1, 9, 22, 0, tzinfo=UTC))
    statement.period.end_time.FromDatetime(END)
    return statement


def _mail(draft: domain.Draft) -> EmailMessage:
    mail = Mail(
        notification_id="5e0c1a86-0d4b-4b8e-9a43-4e3b1c9f0a11",
        recipient="ann@example.test",
        display_name="Ann",
        severity=domain.severity_name(draft.severity),
        title=draft.title,
        body=draft.body,
        details=draft.details,
        created_at=draft.created_at,
        kind=domain.kind_name(draft.kind),
    )
    parsed = message_from_bytes(render(mail, "x@y.test").as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def test_a_statement_makes_one_notification_keyed_by_its_day_and_account() -> None:
    draft = domain.daily_statement(_statement(), "2030-01-10", END)

    assert draft.event_id == f"daily_statement:2030-01-10:{ACCOUNT}"
    assert draft.kind == K.NOTIFICATION_KIND_DAILY_STATEMENT
    assert draft.severity == domain.S.NOTIFICATION_SEVERITY_INFO
    assert draft.account_id == ACCOUNT
    assert draft.user_id is None
    assert draft.created_at == END
    assert draft.title == "Daily statement 2030-01-10: account 1000123"
    assert draft.body == (
        "Your statement of account 1000123 for the trading day 2030-01-10: balance 0.00 USD to"
        " 9,754.19 USD, realized P&L 12.34 USD, equity 9,753.09 USD. Margin level: 8987.37%."
    )


def test_the_details_carry_the_statement_figures_exactly_as_reporting_wrote_them() -> None:
    draft = domain.daily_statement(_statement(swaps="-0.6500"), "2030-01-10", END)

    assert draft.details["swaps"] == "-0.6500"
    assert draft.details["deposits"] == "10000.00"
    assert draft.details["closing_margin_level"] == "8987.37"
    assert draft.details["period_start"] == "2030-01-09T22:00:00.000Z"
    assert draft.details["period_end"] == "2030-01-10T22:00:03.000Z"
    assert {draft.details[k] for k in ("trading_date", "account_number", "currency")} == {
        "2030-01-10",
        "1000123",
        "USD",
    }


def test_the_email_shows_the_summary_in_text_and_html_with_exact_decimals() -> None:
    message = _mail(domain.daily_statement(_statement(), "2030-01-10", END))
    text, page = _part(message, "plain"), _part(message, "html")

    assert message["Subject"] == "Daily statement 2030-01-10: account 1000123"
    expected = [
        "Trading day: 2030-01-10",
        "Account: 1000123",
        "Period (UTC): 2030-01-09T22:00:00.000Z to 2030-01-10T22:00:03.000Z",
        "Opening balance: 0.00 USD",
        "Deposits: 10000.00 USD",
        "Withdrawals: -250.50 USD",
        "Realized P&L: 12.34 USD",
        "Commission: -7.00 USD",
        "Swap: -0.65 USD",
        "Adjustments: 0.00 USD",
        "Closing balance: 9754.19 USD",
        "Floating P&L: -1.10 USD",
        "Equity: 9753.09 USD",
        "Margin: 108.52 USD",
        "Free margin: 9644.57 USD",
        "Margin level (%): 8987.37",
    ]
    lines = text.splitlines()
    start = lines.index(expected[0])
    assert lines[start : start + len(expected)] == expected
    for label, value in (
        ("Realized P&amp;L", "12.34 USD"),
        ("Swap", "-0.65 USD"),
        ("Equity", "9753.09 USD"),
        ("Margin level (%)", "8987.37"),
    ):
        assert f">{label}</td>" in page
        assert f"<code>{value}</code>" in page


def test_an_account_without_margin_shows_no_margin_level() -> None:
    draft = domain.daily_statement(
        _statement(closing_margin="0", closing_margin_level=""), "2030-01-10", END
    )
    text = _part(_mail(draft), "plain")

    assert "Margin level (%): none (no margin held)" in text
    assert "Margin level:" not in draft.body


def test_other_kinds_keep_their_own_detail_rows() -> None:
    draft = domain.daily_statement(_statement(), "2030-01-10", END)
    mail = _mail(domain.Draft(**{**draft.__dict__, "kind": K.NOTIFICATION_KIND_ORDER_FILLED}))

    assert "Opening balance" not in _part(mail, "plain")


def test_the_daily_statement_email_is_off_until_the_user_switches_it_on() -> None:
    defaults = {p.kind: p.email_enabled for p in _preferences({}, None).kinds}
    switched_on = {
        p.kind: p.email_enabled for p in _preferences({"DAILY_STATEMENT": True}, None).kinds
    }

    assert defaults[K.NOTIFICATION_KIND_DAILY_STATEMENT] is False
    assert all(on for kind, on in defaults.items() if kind not in domain.EMAIL_OFF_BY_DEFAULT)
    assert switched_on[K.NOTIFICATION_KIND_DAILY_STATEMENT] is True
    assert not domain.email_default(K.NOTIFICATION_KIND_DAILY_STATEMENT)
    assert domain.email_default(K.NOTIFICATION_KIND_MARGIN_CALL)


def test_the_emails_of_a_traders_own_orders_are_an_opt_in() -> None:
    defaults = {p.kind: p.email_enabled for p in _preferences({}, None).kinds}
    switched_on = {
        p.kind: p.email_enabled for p in _preferences({"ORDER_FILLED": True}, None).kinds
    }

    assert not defaults[K.NOTIFICATION_KIND_ORDER_FILLED]
    assert not defaults[K.NOTIFICATION_KIND_ORDER_REJECTED]
    assert not defaults[K.NOTIFICATION_KIND_ORDER_CANCELLED]
    assert not defaults[K.NOTIFICATION_KIND_ORDER_EXPIRED]
    assert switched_on[K.NOTIFICATION_KIND_ORDER_FILLED]
    assert defaults[K.NOTIFICATION_KIND_DEPOSIT_COMPLETED]
    assert defaults[K.NOTIFICATION_KIND_STOP_OUT]


def _rollover_completed(trading_date: str) -> oms_events_pb2.RolloverCompleted:
    rollover = oms_pb2.Rollover(trading_date=trading_date)
    rollover.rollover_time.FromDatetime(datetime(2030, 1, 10, 22, 0, tzinfo=UTC))
    rollover.complete_time.FromDatetime(datetime(2026, 12, 6, 13, 0, 1, tzinfo=UTC))
    return oms_events_pb2.RolloverCompleted(metadata=EventMetadata(event_id="r"), rollover=rollover)


def _collect(event: oms_events_pb2.RolloverCompleted) -> tuple[Batch, list[str]]:
    session = SimpleNamespace(info={})
    woken: list[str] = []
    notifier = Notifier(
        margin_call_interval=timedelta(0),
        announce=print,
        statement_delay=timedelta(seconds=30),
        rollover_recorded=lambda: woken.append("woken"),
    )

    async def apply() -> None:
        after_commit = await notifier.handle(
            session,  # type: ignore[arg-type]
            Event("oms.rollover.completed", event.SerializeToString()),
        )
        assert callable(after_commit)
        after_commit()

    asyncio.run(apply())
    batch = session.info["notification_batch"]
    assert isinstance(batch, Batch)
    return batch, woken


def test_a_completed_rollover_makes_its_day_due_after_the_settling_delay() -> None:
    batch, woken = _collect(_rollover_completed("2030-01-10"))

    assert "oms.rollover.completed" in FOLLOWED
    assert [(r.trading_date.isoformat(), r.period_end) for r in batch.rollovers] == [
        ("2030-01-10", datetime(2026, 12, 6, 13, 0, 31, tzinfo=UTC))
    ]
    assert batch.rollovers[0].rollover_time == datetime(2030, 1, 10, 22, 0, tzinfo=UTC)
    assert batch.drafts == []
    assert woken == ["woken"]


def test_a_rollover_with_a_malformed_trading_date_is_undeliverable() -> None:
    with pytest.raises(UndeliverableError):
        _collect(_rollover_completed("10.01.2030"))

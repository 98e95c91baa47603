"""The LP gateway's market data subscription (services/pricing/gateway.py) without a FIX
connection: what it sends is caught at `Session.sendToTarget`, the LP's answers are handed to
its callbacks, and the watchdog's `check` is called with chosen times."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import pytest
import quickfix as fix
import quickfix44 as fix44

from services.platform.fix import LpEndpoint
from services.platform.secrets import Secret
from services.pricing.gateway import LpGateway
from services.pricing.gateway import LpStatus
from services.pricing.lp_health import FeedState

SESSION = fix.SessionID("FIX.4.4", "TRADINGMESH", "LP-A")


@dataclass
class Harness:
    gateway: LpGateway
    loop: asyncio.AbstractEventLoop
    sent: list[fix.Message]
    states: list[LpStatus] = field(default_factory=list)

    def requests(self) -> list[tuple[str, str, list[str]]]:
        """(MDReqID, SubscriptionRequestType, symbols) of every MarketDataRequest sent."""
        found = []
        for message in self.sent:
            group = fix44.MarketDataRequest.NoRelatedSym()
            symbols = []
            for i in range(1, int(message.getField(146)) + 1):
                message.getGroup(i, group)
                symbols.append(str(group.getField(55)))
            found.append((str(message.getField(262)), str(message.getField(263)), symbols))
        self.sent.clear()
        return found

    def last_state(self) -> LpStatus:
        self.loop.run_until_complete(asyncio.sleep(0))  # what the gateway handed to the loop
        return self.states[-1]


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    sent: list[fix.Message] = []

    def send(message: fix.Message, session: fix.SessionID) -> bool:
        sent.append(message)
        return True

    monkeypatch.setattr(fix.Session, "sendToTarget", send)
    loop = asyncio.new_event_loop()
    states: list[LpStatus] = []
    gateway = LpGateway(
        [LpEndpoint("lp-a", "127.0.0.1", 1)],
        {"lp-a": ("user", Secret("pw"))},
        ["EURUSD", "GBPUSD", "XAUUSD"],
        tmp_path / "fix",
        loop,
        on_quotes=lambda quotes: None,
        on_state=states.append,
        silence_seconds=5,
        retry_seconds=(1, 8),
    )
    harness = Harness(gateway, loop, sent, states)
    gateway.on_logon(SESSION)
    yield harness
    gateway.session_log.close()
    loop.close()


def md_reject(request_id: str, text: str) -> fix.Message:
    message = fix44.MarketDataRequestReject()
    message.setField(fix.StringField(262, request_id))
    message.setField(fix.StringField(58, text))
    return message


def business_reject(request_id: str | None, text: str, ref_msg_type: str = "V") -> fix.Message:
    message = fix44.BusinessMessageReject()
    message.setField(fix.StringField(372, ref_msg_type))
    message.setField(fix.StringField(380, "4"))
    if request_id is not None:
        message.setField(fix.StringField(379, request_id))
    message.setField(fix.StringField(58, text))
    return message


def snapshot(request_id: str, symbol: str) -> fix.Message:
    message = fix44.MarketDataSnapshotFullRefresh()
    message.setField(fix.StringField(262, request_id))
    message.setField(fix.StringField(55, symbol))
    for entry_type, price in (("0", "1.10000"), ("1", "1.10010")):
        group = fix44.MarketDataSnapshotFullRefresh.NoMDEntries()
        group.setField(fix.StringField(269, entry_type))
        group.setField(fix.StringField(270, price))
        group.setField(fix.StringField(271, "5"))
        message.addGroup(group)
    return message


def test_logon_asks_for_every_symbol_in_one_request_and_serves(harness: Harness) -> None:
    assert harness.requests() == [("md-1", "1", ["EURUSD", "GBPUSD", "XAUUSD"])]
    state = harness.last_state()
    assert state.serving
    assert state.feed is FeedState.WAITING


def test_a_refused_request_is_asked_again_per_symbol_and_one_served_symbol_serves(
    harness: Harness,
) -> None:
    harness.requests()
    harness.gateway.on_app_message(md_reject("md-1", "unknown symbols: XAUUSD"), SESSION)
    assert [r[2] for r in harness.requests()] == [["EURUSD"], ["GBPUSD"], ["XAUUSD"]]

    harness.gateway.on_app_message(md_reject("md-4", "unknown symbols: XAUUSD"), SESSION)
    harness.gateway.on_app_message(snapshot("md-2", "EURUSD"), SESSION)

    state = harness.last_state()
    assert (state.serving, state.feed) == (True, FeedState.FLOWING)


def test_a_business_reject_of_every_symbol_is_not_serving_with_the_lps_reason(
    harness: Harness,
) -> None:
    harness.requests()
    text = "market data is not available on this session"
    harness.gateway.on_app_message(business_reject("md-1", text), SESSION)
    for request_id, _, _ in harness.requests():  # asked per symbol, refused each
        harness.gateway.on_app_message(business_reject(request_id, text), SESSION)

    state = harness.last_state()
    assert (state.serving, state.feed) == (False, FeedState.REFUSED)
    assert state.last_error == f"market data refused: {text}"
    assert harness.requests() == []


def test_after_the_back_off_it_asks_again_and_data_makes_it_serve(harness: Harness) -> None:
    harness.requests()
    harness.gateway.on_session_reject(session_reject_of_v("not entitled"), SESSION)
    assert not harness.last_state().serving
    retry_at = harness.gateway._health["lp-a"].retry_at
    assert retry_at is not None

    harness.gateway.check("lp-a", retry_at - 0.1)
    assert harness.requests() == []
    harness.gateway.check("lp-a", retry_at)
    (request,) = harness.requests()
    assert request[1:] == ("1", ["EURUSD", "GBPUSD", "XAUUSD"])

    harness.gateway.on_app_message(snapshot(request[0], "EURUSD"), SESSION)
    state = harness.last_state()
    assert (state.serving, state.feed, state.last_error) == (True, FeedState.FLOWING, "")


def test_a_silent_subscription_is_not_serving_then_cancelled_and_asked_again(
    harness: Harness,
) -> None:
    harness.requests()
    started = harness.gateway._health["lp-a"].last_activity

    harness.gateway.check("lp-a", started + 5)
    state = harness.last_state()
    assert (state.serving, state.feed) == (False, FeedState.SILENT)
    assert state.last_error == "no market data for 5 s after subscribing"

    harness.gateway.check("lp-a", started + 6)
    cancel, again = harness.requests()
    assert cancel[:2] == ("md-1", "2")  # the silent request is cancelled first
    assert again[1:] == ("1", ["EURUSD", "GBPUSD", "XAUUSD"])
    # The LP's answer to the cancelled request changes nothing.
    harness.gateway.on_app_message(business_reject("md-1", "no"), SESSION)
    assert harness.last_state().feed is FeedState.SILENT
    assert harness.requests() == []


def test_a_business_reject_of_another_message_type_is_not_about_market_data(
    harness: Harness,
) -> None:
    harness.requests()
    harness.gateway.on_app_message(business_reject(None, "no", ref_msg_type="D"), SESSION)

    assert harness.gateway._health["lp-a"].serving
    assert harness.requests() == []


def session_reject_of_v(text: str) -> fix.Message:
    message = fix44.Reject()
    for tag, value in ((45, "2"), (372, "V"), (373, "5"), (58, text)):
        message.setField(fix.StringField(tag, value))
    return message

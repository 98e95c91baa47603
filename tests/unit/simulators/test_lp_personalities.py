"""The LP simulator's personalities (simulators/lp/personality.py), one trait at a time, its own
book of fills, and the control port's side of both, without a FIX session: what the acceptor
would send is caught at `Session.sendToTarget`."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
import quickfix as fix
import quickfix44 as fix44

from simulators.lp.catalogue import CATALOGUE
from simulators.lp.control import ControlRequestError
from simulators.lp.control import Controls
from simulators.lp.fix import Credentials
from simulators.lp.fix import LpApplication
from simulators.lp.market import Market
from simulators.lp.market import Profile
from simulators.lp.personality import Personality
from simulators.lp.personality import Trait
from simulators.lp.personality import UnknownTraitError
from simulators.lp.rejects import dictionary_path

D = Decimal
SESSION = fix.SessionID("FIX.4.4", "LP-TEST", "TRADINGMESH-OMS")
PARSER = fix.DataDictionary(str(dictionary_path()))


def application(*traits: Trait) -> LpApplication:
    market = Market(CATALOGUE, Profile(name="lp-test", seed=3, fill_delay_ms=0))
    market.pin("EURUSD", D("1.10000"), D("1.10010"), size=D("0.5"))
    return LpApplication(market, Credentials("u", "p"), Personality(frozenset(traits)))


def controls_of(app: LpApplication) -> Controls:
    return Controls("lp-test", app.market, app.lock, D(4), lambda quotes: 0, app)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[fix.Message]:
    """What the application sends, instead of sending it."""
    messages: list[fix.Message] = []

    def send(message: fix.Message, session: fix.SessionID) -> bool:
        messages.append(message)
        return True

    monkeypatch.setattr(fix.Session, "sendToTarget", send)
    return messages


def received(message: fix.Message, sequence: int) -> fix.Message:
    """`message` as the acceptor hands it over: a full header, parsed from the wire."""
    header = message.getHeader()
    for tag, value in (
        (49, "TRADINGMESH-OMS"),
        (56, "LP-TEST"),
        (34, str(sequence)),
        (52, "20261206-10:00:00.000"),
    ):
        header.setField(fix.StringField(tag, value))
    return fix.Message(message.toString(), PARSER, False)


def new_order(cl_ord_id: str, quantity: str = "0.4", limit: str | None = None) -> fix.Message:
    message = fix44.NewOrderSingle()
    for tag, value in (
        (11, cl_ord_id),
        (55, "EURUSD"),
        (54, "1"),
        (38, quantity),
        (40, "1" if limit is None else "2"),
        (59, "3"),
        (60, "20261206-10:00:00.000"),
    ):
        message.setField(fix.StringField(tag, value))
    if limit is not None:
        message.setField(fix.StringField(44, limit))
    return message


def status_request(cl_ord_id: str) -> fix.Message:
    message = fix44.OrderStatusRequest()
    for tag, value in ((11, cl_ord_id), (55, "EURUSD"), (54, "1"), (790, "q1")):
        message.setField(fix.StringField(tag, value))
    return message


def market_data_request(request_id: str, symbols: list[str]) -> fix.Message:
    request = fix44.MarketDataRequest()
    for tag, value in ((262, request_id), (263, "1"), (264, "1")):
        request.setField(fix.StringField(tag, value))
    for entry_type in ("0", "1"):
        types = fix44.MarketDataRequest.NoMDEntryTypes()
        types.setField(fix.StringField(269, entry_type))
        request.addGroup(types)
    for symbol in symbols:
        related = fix44.MarketDataRequest.NoRelatedSym()
        related.setField(fix.StringField(55, symbol))
        request.addGroup(related)
    return request


def fields(message: fix.Message, *tags: int) -> dict[int, str]:
    return {tag: str(message.getField(tag)) for tag in tags if message.isSetField(tag)}


def msg_type(message: fix.Message) -> str:
    return str(message.getHeader().getField(35))


def execute_all(app: LpApplication) -> list[fix.Message]:
    """Runs the order thread's work for everything queued; the reports it would send."""
    reports = []
    while not app.orders.empty():
        item = app.orders.get_nowait()
        assert item is not None
        reports.extend(app.execute_queued(item))
    return reports


# ---- the personality itself ---------------------------------------------------------------------


def test_a_personality_is_parsed_from_trait_names_and_lists_them_sorted() -> None:
    personality = Personality.from_text(" status-bmr, limit-only ,")

    assert personality.names() == ["limit-only", "status-bmr"]
    assert personality.has(Trait.LIMIT_ONLY)
    assert not personality.has(Trait.NO_MARKET_DATA)
    assert str(Personality.from_text("")) == "standard"


def test_an_unknown_trait_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(UnknownTraitError, match="unknown trait market-only; known: fix42"):
        Personality.parse(["limit-only", "market-only"])


# ---- strict-dictionary --------------------------------------------------------------------------


def test_by_default_a_user_defined_field_is_tolerated(sent: list[fix.Message]) -> None:
    app = application()
    order = new_order("s1")
    order.setField(fix.StringField(5001, "x"))

    app.fromApp(received(order, 7), SESSION)

    assert sent == []
    assert not app.orders.empty()


def test_strict_dictionary_refuses_a_user_defined_field_with_a_session_reject(
    sent: list[fix.Message],
) -> None:
    app = application(Trait.STRICT_DICTIONARY)
    order = new_order("s2")
    order.setField(fix.StringField(5001, "x"))

    app.fromApp(received(order, 7), SESSION)

    (reject,) = sent
    assert msg_type(reject) == "3"
    assert fields(reject, 45, 372, 371, 373) == {45: "7", 372: "D", 371: "5001", 373: "0"}
    assert "5001" in fields(reject, 58)[58]
    assert app.orders.empty()  # never processed


def test_strict_dictionary_refuses_an_order_without_its_required_transact_time(
    sent: list[fix.Message],
) -> None:
    app = application(Trait.STRICT_DICTIONARY)
    order = new_order("s3")
    order.removeField(60)

    app.fromApp(received(order, 9), SESSION)

    (reject,) = sent
    assert fields(reject, 45, 371, 373) == {45: "9", 371: "60", 373: "1"}
    assert "Required tag missing" in fields(reject, 58)[58]


def test_strict_dictionary_passes_a_valid_order(sent: list[fix.Message]) -> None:
    app = application(Trait.STRICT_DICTIONARY)

    app.fromApp(received(new_order("s4"), 7), SESSION)

    assert sent == []
    assert not app.orders.empty()


# ---- limit-only ---------------------------------------------------------------------------------


def test_limit_only_refuses_a_market_order_with_a_session_reject(sent: list[fix.Message]) -> None:
    app = application(Trait.LIMIT_ONLY)

    app.fromApp(received(new_order("m1"), 12), SESSION)

    (reject,) = sent
    assert msg_type(reject) == "3"
    assert fields(reject, 45, 372, 371, 373) == {45: "12", 372: "D", 371: "40", 373: "5"}
    assert fields(reject, 58)[58].startswith("Value is incorrect")
    assert app.orders.empty()
    sent.clear()  # the order was never taken: a status request finds no such order
    assert fields(app.status_report(SESSION, status_request("m1")), 39, 103) == {
        39: "8",
        103: "5",
    }


def test_limit_only_fills_a_limit_order_in_full_at_its_own_price(sent: list[fix.Message]) -> None:
    app = application(Trait.LIMIT_ONLY)  # quoted 1.10000 / 1.10010, 0.5 lots
    app.fromApp(received(new_order("l1", quantity="0.8", limit="1.10050"), 12), SESSION)

    new, fill = execute_all(app)

    assert fields(new, 150) == {150: "0"}
    assert fields(fill, 150, 39, 32, 31, 14) == {
        150: "F",
        39: "2",
        32: "0.8",
        31: "1.10050",
        14: "0.8",
    }


def test_limit_only_fills_a_limit_order_even_away_from_its_quote(sent: list[fix.Message]) -> None:
    app = application(Trait.LIMIT_ONLY)
    app.fromApp(received(new_order("l2", limit="1.09000"), 12), SESSION)

    reports = execute_all(app)

    assert fields(reports[-1], 39, 31) == {39: "2", 31: "1.09000"}


# ---- status-bmr ---------------------------------------------------------------------------------


def test_status_bmr_answers_a_status_request_with_a_business_message_reject(
    sent: list[fix.Message],
) -> None:
    app = application(Trait.STATUS_BMR)

    app.fromApp(received(status_request("h1"), 21), SESSION)

    (reject,) = sent
    assert msg_type(reject) == "j"
    assert fields(reject, 45, 372, 379, 380) == {45: "21", 372: "H", 379: "h1", 380: "3"}
    assert fields(reject, 58)[58]


def test_without_status_bmr_a_status_request_gets_an_order_status(
    sent: list[fix.Message],
) -> None:
    app = application()

    app.fromApp(received(status_request("h2"), 21), SESSION)

    (report,) = sent
    assert (msg_type(report), fields(report, 150)) == ("8", {150: "I"})


# ---- fix42-exectype -----------------------------------------------------------------------------


def test_fix42_exectype_reports_a_partial_fill_as_1_and_the_last_fill_as_2(
    sent: list[fix.Message],
) -> None:
    app = application(Trait.FIX42_EXECTYPE)
    app.market.pin("EURUSD", D("1.10000"), D("1.10010"), size=D("20"))
    app.fromApp(received(new_order("x1", quantity="12"), 3), SESSION)  # fills in 5-lot pieces

    reports = execute_all(app)

    assert [fields(r, 150, 39) for r in reports] == [
        {150: "0", 39: "0"},
        {150: "1", 39: "1"},
        {150: "1", 39: "1"},
        {150: "2", 39: "2"},
    ]


def test_fix42_exectype_leaves_new_and_cancel_reports_as_they_are(
    sent: list[fix.Message],
) -> None:
    app = application(Trait.FIX42_EXECTYPE)  # 0.5 lots quoted: 0.3 of 0.8 is cancelled
    app.fromApp(received(new_order("x2", quantity="0.8"), 3), SESSION)

    reports = execute_all(app)

    assert [fields(r, 150) for r in reports] == [{150: "0"}, {150: "1"}, {150: "4"}]


# ---- no-market-data -----------------------------------------------------------------------------


def test_no_market_data_refuses_a_subscription_with_a_business_message_reject(
    sent: list[fix.Message],
) -> None:
    app = application(Trait.NO_MARKET_DATA)

    app.fromApp(received(market_data_request("md-1", ["EURUSD"]), 4), SESSION)

    (reject,) = sent
    assert msg_type(reject) == "j"
    assert fields(reject, 45, 372, 379, 380) == {45: "4", 372: "V", 379: "md-1", 380: "4"}
    assert app.subscriptions == {}


def test_switching_no_market_data_on_silences_the_subscriptions_already_made(
    sent: list[fix.Message],
) -> None:
    app = application()
    app.fromApp(received(market_data_request("md-2", ["EURUSD"]), 4), SESSION)
    assert [msg_type(m) for m in sent] == ["W"]  # the snapshot
    quote = app.market.quote("EURUSD")
    assert app.publish([quote]) == 1

    app.set_personality(Personality(frozenset({Trait.NO_MARKET_DATA})))

    assert app.publish([quote]) == 0
    app.set_personality(Personality())  # cleared: a new request is served again
    app.fromApp(received(market_data_request("md-3", ["EURUSD"]), 5), SESSION)
    assert app.publish([quote]) == 1


# ---- the LP's own book of fills -----------------------------------------------------------------


def test_the_book_of_fills_holds_what_was_filled_even_when_its_reports_were_silenced(
    sent: list[fix.Message],
) -> None:
    app = application()
    controls = controls_of(app)
    controls.set_silence({"orders": "1"})
    app.fromApp(received(new_order("f1", quantity="0.8"), 3), SESSION)  # 0.5 fills, silenced
    app.fromApp(received(new_order("f2", quantity="0.2", limit="1.10000"), 4), SESSION)  # none
    app.fromApp(received(new_order("f3", quantity="0.2"), 5), SESSION)

    execute_all(app)

    assert controls.fills({}) == {
        "fills": [
            {
                "client": "TRADINGMESH-OMS",
                "cl_ord_id": "f1",
                "symbol": "EURUSD",
                "side": "1",
                "quantity": "0.5",
                "price": "1.10010",
                "fills": 1,
            },
            {
                "client": "TRADINGMESH-OMS",
                "cl_ord_id": "f3",
                "symbol": "EURUSD",
                "side": "1",
                "quantity": "0.2",
                "price": "1.10010",
                "fills": 1,
            },
        ]
    }
    assert [f["cl_ord_id"] for f in controls.fills({"cl_ord_id": ["f3"]})["fills"]] == ["f3"]
    assert controls.fills({"client": ["TRADINGMESH-QA"]}) == {"fills": []}


def test_a_fill_book_query_with_an_unknown_parameter_is_refused() -> None:
    with pytest.raises(ControlRequestError, match="unknown parameter symbol"):
        controls_of(application()).fills({"symbol": ["EURUSD"]})


# ---- the control port's personality ----------------------------------------------------------


def test_the_personality_is_set_read_and_cleared_through_the_controls() -> None:
    app = application()
    controls = controls_of(app)

    assert controls.set_personality({"traits": ["status-bmr", "limit-only"]}) == {
        "traits": ["limit-only", "status-bmr"]
    }
    assert controls.personality() == {"traits": ["limit-only", "status-bmr"]}
    assert controls.state()["personality"] == ["limit-only", "status-bmr"]
    assert app.personality.has(Trait.STATUS_BMR)
    assert controls.set_personality({"traits": []}) == {"traits": []}
    assert app.personality == Personality()


@pytest.mark.parametrize(
    "body",
    [{}, {"traits": "limit-only"}, {"traits": [1]}, {"traits": ["limit-only", "no-such-trait"]}],
)
def test_a_bad_personality_is_refused_and_changes_nothing(body: dict[str, object]) -> None:
    app = application(Trait.FIX42_EXECTYPE)
    controls = controls_of(app)

    with pytest.raises(ControlRequestError):
        controls.set_personality(body)
    assert app.personality.names() == ["fix42-exectype"]


def test_controls_without_an_order_desk_have_no_personality() -> None:
    app = application()
    controls = Controls("lp-test", app.market, threading.Lock(), D(4), lambda quotes: 0)

    with pytest.raises(ControlRequestError):
        controls.set_personality({"traits": []})

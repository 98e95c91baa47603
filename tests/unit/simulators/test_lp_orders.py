"""The LP simulator's execution reports for market and limit orders, and its fill-delay control
(simulators/lp/fix.py, simulators/lp/control.py), without a FIX session."""

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
from simulators.lp.fix import Queued
from simulators.lp.market import Market
from simulators.lp.market import Order
from simulators.lp.market import Profile
from simulators.lp.market import Side
from simulators.lp.market import TimeInForce
from simulators.lp.market import execute

D = Decimal


def application() -> LpApplication:
    market = Market(CATALOGUE, Profile(name="lp-test", seed=3, fill_delay_ms=7))
    market.pin("EURUSD", D("1.10000"), D("1.10010"), size=D("0.5"))
    return LpApplication(market, Credentials("u", "p"))


def fields(message: fix.Message) -> dict[int, str]:
    wanted = (11, 150, 39, 40, 44, 59, 14, 151, 32, 31, 58)
    return {tag: str(message.getField(tag)) for tag in wanted if message.isSetField(tag)}


def reports_of(app: LpApplication, order: Order) -> list[dict[int, str]]:
    return [fields(r) for r in app._reports(order, execute(app.market, order))]


def test_a_limit_order_is_acknowledged_filled_at_its_price_or_better_and_echoes_its_limit() -> None:
    app = application()
    order = Order("h1", "EURUSD", Side.BUY, D("0.4"), D("1.10020"), TimeInForce.IOC)

    new, fill = reports_of(app, order)

    assert (new[150], new[40], new[44], new[59]) == ("0", "2", "1.10020", "3")
    assert (fill[150], fill[39], fill[32], fill[31]) == ("F", "2", "0.4", "1.10010")
    assert (fill[40], fill[44]) == ("2", "1.10020")


def test_a_limit_order_whose_price_is_not_there_is_cancelled_with_nothing_filled() -> None:
    app = application()
    order = Order("h2", "EURUSD", Side.BUY, D("0.4"), D("1.10005"), TimeInForce.IOC)

    new, cancelled = reports_of(app, order)

    assert new[150] == "0"
    assert (cancelled[150], cancelled[39], cancelled[14], cancelled[151]) == ("4", "4", "0", "0")
    assert "price moved: 1.10010 against the limit 1.10005" in cancelled[58]


def test_a_fok_limit_order_beyond_the_quoted_size_is_cancelled_whole() -> None:
    app = application()
    order = Order("h3", "EURUSD", Side.SELL, D("0.8"), D("1.09990"), TimeInForce.FOK)

    new, cancelled = reports_of(app, order)

    assert (new[59], cancelled[150], cancelled[14]) == ("4", "4", "0")
    assert "fill or kill" in cancelled[58]


def test_a_market_order_reports_no_price() -> None:
    app = application()
    order = Order("h4", "EURUSD", Side.SELL, D("0.8"), None, TimeInForce.IOC)

    new, fill, cancelled = reports_of(app, order)

    assert (new[40], 44 in new) == ("1", False)
    assert (fill[32], fill[31]) == ("0.5", "1.10000")
    assert (cancelled[150], cancelled[58]) == ("4", "0.3 lots not filled: no liquidity")


def test_the_fill_delay_can_be_changed_through_the_controls() -> None:
    app = application()
    controls = Controls("lp-test", app.market, threading.Lock(), D(4), lambda quotes: 0, app)

    assert controls.state()["fill_delay_ms"] == "7"
    assert controls.set_fill_delay({"ms": "1500"}) == {"fill_delay_ms": "1500"}
    assert app.fill_delay_ms == 1500


@pytest.mark.parametrize("ms", ["-1", "1.5", "60001", "x"])
def test_a_bad_fill_delay_is_refused_and_changes_nothing(ms: str) -> None:
    app = application()
    controls = Controls("lp-test", app.market, threading.Lock(), D(4), lambda quotes: 0, app)

    with pytest.raises(ControlRequestError):
        controls.set_fill_delay({"ms": ms})
    assert app.fill_delay_ms == 7


# ---- order status requests and the silence switches --------------------------------------------

SESSION = fix.SessionID("FIX.4.4", "LP-TEST", "TRADINGMESH-OMS")


def new_order(cl_ord_id: str, quantity: str = "0.4", limit: str | None = None) -> fix.Message:
    message = fix44.NewOrderSingle()
    for tag, value in (
        (11, cl_ord_id),
        (55, "EURUSD"),
        (54, "1"),
        (38, quantity),
        (40, "1" if limit is None else "2"),
        (59, "3"),
    ):
        message.setField(fix.StringField(tag, value))
    if limit is not None:
        message.setField(fix.StringField(44, limit))
    return message


def status_request(cl_ord_id: str, request_id: str = "q1") -> fix.Message:
    message = fix44.OrderStatusRequest()
    for tag, value in ((11, cl_ord_id), (55, "EURUSD"), (54, "1"), (790, request_id)):
        message.setField(fix.StringField(tag, value))
    return message


def status_of(app: LpApplication, cl_ord_id: str) -> dict[int, str]:
    report = app.status_report(SESSION, status_request(cl_ord_id))
    wanted = (11, 17, 150, 39, 14, 151, 6, 103, 58, 790, 40, 44, 59)
    return {tag: str(report.getField(tag)) for tag in wanted if report.isSetField(tag)}


def receive(app: LpApplication, message: fix.Message) -> Queued:
    """The order as the acceptor's thread queues it for the order thread."""
    app._on_new_order(message, SESSION)
    queued = app.orders.get_nowait()
    assert queued is not None
    return queued


def test_a_status_request_for_an_order_not_yet_executed_answers_pending_new() -> None:
    app = application()
    receive(app, new_order("h5"))

    status = status_of(app, "h5")

    assert (status[150], status[39], status[17]) == ("I", "A", "0")  # ExecID 0, as FIX 4.4 says
    assert (status[14], status[151]) == ("0", "0.4")
    assert status[790] == "q1"  # the request's OrdStatusReqID is echoed


def test_a_status_request_after_a_partial_fill_gives_what_filled_and_the_end() -> None:
    app = application()  # 0.5 lots quoted at 1.10010
    queued = receive(app, new_order("h6", quantity="0.8"))

    sent = app.execute_queued(queued)
    status = status_of(app, "h6")

    assert [str(r.getField(150)) for r in sent] == ["0", "F", "4"]
    assert (status[150], status[39]) == ("I", "4")  # cancelled: the rest found no liquidity
    assert (status[14], status[151], status[6]) == ("0.5", "0", "1.1001")
    assert (status[40], status[59]) == ("1", "3")


def test_a_silenced_order_is_executed_but_sends_nothing_and_a_status_request_tells_it() -> None:
    app = application()
    controls = Controls("lp-test", app.market, threading.Lock(), D(4), lambda quotes: 0, app)
    assert controls.set_silence({"orders": "1"}) == {"orders": "1", "status_requests": "0"}

    silenced = receive(app, new_order("h7"))
    heard = receive(app, new_order("h8"))

    assert app.execute_queued(silenced) == []
    assert [str(r.getField(150)) for r in app.execute_queued(heard)] == ["0", "F"]
    status = status_of(app, "h7")
    assert (status[39], status[14], status[6]) == ("2", "0.4", "1.1001")  # filled all the same
    assert controls.state()["silent_orders"] == "0"


def test_an_order_the_lp_does_not_know_is_answered_rejected_as_unknown() -> None:
    app = application()

    status = status_of(app, "never-sent")

    assert (status[150], status[39], status[103]) == ("I", "8", "5")
    assert (status[14], status[58]) == ("0", "unknown order")


def test_an_order_refused_on_arrival_is_answered_rejected_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = application()
    sent: list[fix.Message] = []
    monkeypatch.setattr(fix.Session, "sendToTarget", lambda message, session: sent.append(message))
    bad = new_order("h9")
    bad.setField(fix.StringField(40, "3"))  # a stop order: not taken

    app._on_new_order(bad, SESSION)
    status = status_of(app, "h9")

    assert [(str(m.getField(150)), str(m.getField(39))) for m in sent] == [("8", "8")]
    assert (status[39], status.get(103)) == ("8", None)
    assert "only market" in status[58]


def test_silenced_status_requests_are_not_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    app = application()
    controls = Controls("lp-test", app.market, threading.Lock(), D(4), lambda quotes: 0, app)
    controls.set_silence({"status_requests": "1"})
    sent: list[fix.Message] = []
    monkeypatch.setattr(fix.Session, "sendToTarget", lambda message, session: sent.append(message))

    app._on_status_request(status_request("h10"), SESSION)
    app._on_status_request(status_request("h10", "q2"), SESSION)

    assert [str(m.getField(790)) for m in sent] == ["q2"]
    assert controls.state()["silent_status_requests"] == "0"


@pytest.mark.parametrize(
    "body", [{}, {"orders": "-1"}, {"orders": "1.5"}, {"status_requests": "1001"}, {"orders": 1}]
)
def test_a_bad_silence_is_refused_and_changes_nothing(body: dict[str, object]) -> None:
    app = application()
    controls = Controls("lp-test", app.market, threading.Lock(), D(4), lambda quotes: 0, app)

    with pytest.raises(ControlRequestError):
        controls.set_silence(body)
    assert (app.silent_orders, app.silent_status_requests) == (0, 0)


def test_execution_ids_differ_between_two_runs_of_the_simulator() -> None:
    first, second = application(), application()
    order = Order("h11", "EURUSD", Side.BUY, D("0.1"), None, TimeInForce.IOC)

    ids = {
        str(r.getField(17))
        for app in (first, second)
        for r in app._reports(order, execute(app.market, order))
    }

    assert len(ids) == 4

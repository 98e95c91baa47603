"""The LP simulator's execution reports for market and limit orders, and its fill-delay control
(simulators/lp/fix.py, simulators/lp/control.py), without a FIX session."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
import quickfix as fix

from simulators.lp.catalogue import CATALOGUE
from simulators.lp.control import ControlRequestError, Controls
from simulators.lp.fix import Credentials, LpApplication
from simulators.lp.market import Market, Order, Profile, Side, TimeInForce, execute

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

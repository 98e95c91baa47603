"""The broker's exposure per instrument: clients' long/short/net, LP coverage, the broker's own
net, valued at the raw mid in the reporting currency."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from services.risk.exposure import exposures
from services.risk.model import Group
from services.risk.model import Side
from tests.unit.risk.builders import GROUP
from tests.unit.risk.builders import account
from tests.unit.risk.builders import broker
from tests.unit.risk.builders import position
from tests.unit.risk.builders import price

D = Decimal
OTHER_GROUP = "00000000-0000-4000-8000-000000000002"


def test_exposure_sums_clients_of_every_group_and_nets_the_coverage_at_the_raw_mid() -> None:
    state = broker()
    state.put_group(Group(OTHER_GROUP, "USD", 100, D(100), D(50), 1))
    raw = ("1.10005", "1.10015")  # raw mid 1.10010
    price(state, "EURUSD", "1.10000", "1.10020", raw=raw)
    price(state, "EURUSD", "1.09990", "1.10030", raw=raw, group=OTHER_GROUP)
    first = account(state, "1000.00")
    second = account(state, "1000.00", account_id="00000000-0000-4000-8000-0000000000a2")
    second = replace(second, group_id=OTHER_GROUP)
    state.put_account(second)
    position(state, first, "EURUSD", Side.BUY, "2", "1.10000")  # 0.00 at group 1's bid
    position(state, second, "EURUSD", Side.SELL, "0.5", "1.10100")  # +35.00 at group 2's ask
    state.add_coverage("EURUSD", D("1"))

    (eurusd,) = exposures(state, "USD")

    assert (eurusd.client_long, eurusd.client_short, eurusd.client_net) == (
        D("2"),
        D("0.5"),
        D("1.5"),
    )
    assert eurusd.coverage_net == 1
    assert eurusd.broker_net == D("-0.5")
    assert eurusd.mid_price == D("1.10010")
    assert eurusd.client_net_notional == D("165015.00")
    assert eurusd.broker_net_notional == D("-55005.00")
    assert eurusd.client_unrealized_pnl == D("35.00")


def test_with_a_group_only_its_accounts_count_and_coverage_is_not_attributed() -> None:
    state = broker()
    state.put_group(Group(OTHER_GROUP, "USD", 100, D(100), D(50), 1))
    first = account(state, "1000.00")
    position(state, first, "EURUSD", Side.BUY, "2", "1.10000")
    state.add_coverage("EURUSD", D("1"))
    state.add_coverage("USDJPY", D("3"))

    (eurusd,) = exposures(state, "USD", group_id=GROUP)
    everything = exposures(state, "USD")

    assert eurusd.coverage_net == 0
    assert eurusd.broker_net == D("-2")
    assert eurusd.broker_net_notional == D("-220020.00")  # at the mid 1.10010
    assert [e.symbol for e in everything] == ["EURUSD", "USDJPY"]  # coverage alone counts too
    assert exposures(state, "USD", group_id=OTHER_GROUP) == []


def test_amounts_in_another_currency_convert_at_the_raw_mid_of_the_joining_pair() -> None:
    state = broker()
    price(state, "USDJPY", "150.000", "150.020")
    owner = account(state, "1000.00")
    position(state, owner, "USDJPY", Side.BUY, "1", "149.500")

    (usdjpy,) = exposures(state, "USD", symbol="USDJPY")

    assert usdjpy.client_net_notional == D("100000.00")  # 15001000 JPY / 150.010
    assert usdjpy.client_unrealized_pnl == D("333.31")  # 50000 JPY / 150.010


def test_without_a_price_the_quantities_are_reported_and_the_values_left_out() -> None:
    state = broker()
    owner = account(state, "1000.00")
    position(state, owner, "USDJPY", Side.SELL, "1", "150.000")

    (usdjpy,) = exposures(state, "USD")

    assert usdjpy.client_short == 1
    assert usdjpy.mid_price is None
    assert usdjpy.client_net_notional is None
    assert usdjpy.client_unrealized_pnl is None

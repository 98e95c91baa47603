"""An STP order acknowledged WORKING is not rejected because our own price feed blinked (issue
#18 items 1 and 4, ADR 0007 "Execution modes").

Pricing is frozen (SIGSTOP to its process group): the OMS's quote ages out after 2 s while the
risk service still values orders (5 s), so an STP market order and a marketable IOC STP limit
order placed then are acknowledged WORKING with no live price at the desk. They

- stay WORKING, and fill at the live price once pricing is back within their wait;
- are REJECTED / PRICE_UNAVAILABLE, saying how long they waited, once their wait is over with
  pricing still frozen.

The wait (`TM_OMS_STP_PRICE_WAIT_S`, 30 s by default) is 5 s here: the module restarts the OMS
with it, and again without it at the end, so the next module finds the stack as it was.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from simulators.lp.control import ControlClient
from tests.integration.conftest import RunningStack
from tests.integration.support.components import frozen
from tests.integration.support.components import kill_oms
from tests.integration.support.components import start_oms
from tests.integration.support.orders import Oms
from tests.integration.support.orders import Trader
from tests.integration.support.orders import place
from tests.integration.support.stp import ALPHA
from tests.integration.support.stp import await_pinned_price
from tests.integration.support.stp import ended
from tests.integration.support.stp import get_order
from tests.integration.support.stp import hedges_of
from tests.integration.support.stp import stp_trader
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason

S = trading_pb2
R = ErrorReason
WAIT_SECONDS = 5
# Pricing republishes an unchanged price every second and the OMS's quote is live for 2 s, the
# risk service's for 5 s: this long after the freeze the order is acknowledged without a price.
AGED_OUT = 2.4


@pytest.fixture(scope="module")
def trader(running_stack: RunningStack, oms: Oms) -> Iterator[Trader]:
    """A pro-stp trader, with the OMS restarted to wait `WAIT_SECONDS` for a price."""
    trader = stp_trader(oms)
    os.environ["TM_OMS_STP_PRICE_WAIT_S"] = str(WAIT_SECONDS)
    try:
        kill_oms(oms)
        start_oms(oms, trader)
        yield trader
    finally:
        os.environ.pop("TM_OMS_STP_PRICE_WAIT_S", None)
        kill_oms(oms)
        start_oms(oms, trader)


def place_both(oms: Oms, trader: Trader) -> tuple[str, str]:
    """An STP market buy and a marketable IOC STP limit buy, both acknowledged WORKING."""
    market = place(oms, trader, quantity="0.10")
    limit = place(
        oms,
        trader,
        quantity="0.10",
        type=S.ORDER_TYPE_LIMIT,
        time_in_force=S.TIME_IN_FORCE_IOC,
        price="1.10020",
    )
    for order in (market, limit):
        assert order.status == S.ORDER_STATUS_WORKING, (order.status_reason, order.status_message)
    return market.id, limit.id


def test_stp_orders_acknowledged_while_pricing_is_frozen_fill_once_it_is_back(
    oms: Oms,
    trader: Trader,
    stp_lps: dict[str, ControlClient],
) -> None:
    await_pinned_price(oms, trader)

    with frozen(oms.running, "pricing") as thaw:
        time.sleep(AGED_OUT)
        placed = time.monotonic()
        order_ids = place_both(oms, trader)
        time.sleep(1.0)
        # Their windows closed (and the limit was tried) without a live price: still WORKING.
        for order_id in order_ids:
            order = get_order(oms, trader, order_id)
            assert order.status == S.ORDER_STATUS_WORKING, (
                order.status_reason,
                order.status_message,
            )
        assert hedges_of(oms, list(order_ids)) == []
        thaw()

    for order_id in order_ids:
        done = ended(oms, trader, order_id)
        assert done.status == S.ORDER_STATUS_FILLED, (done.status_reason, done.status_message)
        assert Decimal(done.average_fill_price) == Decimal(ALPHA[1])  # the live ask
    assert time.monotonic() - placed < WAIT_SECONDS + 2
    assert sorted(h["status"] for h in hedges_of(oms, list(order_ids))) == ["FILLED", "FILLED"]


def test_stp_orders_still_without_a_live_price_after_their_wait_are_rejected(
    oms: Oms,
    trader: Trader,
    stp_lps: dict[str, ControlClient],
) -> None:
    await_pinned_price(oms, trader)

    with frozen(oms.running, "pricing"):
        time.sleep(AGED_OUT)
        order_ids = place_both(oms, trader)
        time.sleep(WAIT_SECONDS - 1)
        for order_id in order_ids:
            assert get_order(oms, trader, order_id).status == S.ORDER_STATUS_WORKING
        ends = [ended(oms, trader, order_id) for order_id in order_ids]

    for done in ends:
        assert done.status == S.ORDER_STATUS_REJECTED, done
        assert done.status_reason == R.ERROR_REASON_PRICE_UNAVAILABLE, done
        said = re.fullmatch(
            r"no live price for EURUSD in the (\d+\.\d) s since the order was accepted",
            done.status_message,
        )
        assert said is not None, done.status_message
        assert WAIT_SECONDS <= Decimal(said.group(1)) < WAIT_SECONDS + 3, done.status_message
    assert hedges_of(oms, list(order_ids)) == []

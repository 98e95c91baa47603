"""Prometheus in the local stack (issue #17, ADR 0016): every target healthy, the rules loaded and
evaluating, and every dashboard panel's query answering with data after a short load of orders
and prices."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
import uuid
from typing import Any

import grpc
import pytest

from monitoring.grafana.dashboards import DASHBOARDS
from tests.integration.callers import AccountStack
from tests.integration.callers import account_stack
from tests.integration.conftest import RunningStack
from tests.integration.support.edge import Edge
from tests.integration.support.edge_trading import Trader
from tests.integration.support.edge_trading import market
from tests.integration.support.edge_trading import new_trader
from tests.integration.support.edge_trading import place_grpc
from tests.integration.support.waiting import eventually
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.oms.v1 import order_service_pb2

SCRAPE_SECONDS = 5.0  # stack/components/monitoring.py


def prometheus(state_url: str, path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{state_url}{path}{query}", timeout=10) as response:
        body: dict[str, Any] = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


@pytest.fixture(scope="module")
def url(running_stack: RunningStack) -> str:
    return running_stack.state.endpoints.prometheus


@pytest.fixture(scope="module")
def accounts(running_stack: RunningStack) -> Any:
    yield from account_stack(running_stack)


def test_prometheus_scrapes_every_service_worker_and_component(
    running_stack: RunningStack, url: str
) -> None:
    expected_jobs = {"tradingmesh", "envoy", "postgres", "redis", "prometheus"}
    services = {
        c.name
        for c in running_stack.state.components
        if c.name in {"account", "pricing", "oms", "risk", "reporting", "notification"}
        or c.name.startswith("pricing-streams-")
    }

    def all_up() -> list[dict[str, Any]] | None:
        targets = prometheus(url, "/api/v1/targets")["activeTargets"]
        healthy = all(t["health"] == "up" for t in targets)
        return targets if healthy and targets else None

    targets = eventually(all_up, 4 * SCRAPE_SECONDS, "every Prometheus target up")
    assert {t["labels"]["job"] for t in targets} == expected_jobs
    scraped = {t["labels"]["service"] for t in targets if t["labels"]["job"] == "tradingmesh"}
    assert scraped == services


def test_the_rules_are_loaded_and_evaluate_without_error(url: str) -> None:
    groups = prometheus(url, "/api/v1/rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 30
    eventually(
        lambda: all(
            rule.get("health") == "ok"
            for group in prometheus(url, "/api/v1/rules")["groups"]
            for rule in group["rules"]
        ),
        4 * SCRAPE_SECONDS,
        "every rule evaluated without error",
    )


def load(edge: Edge, trader: Trader) -> None:
    """Orders that fill, one the market cannot take (REJECTED) and one refused outright, then the
    position closed: something for every order, risk and platform panel."""
    buy = types_pb2.SIDE_BUY
    assert place_grpc(edge, trader, market(trader, buy, "0.10")).status == (
        trading_pb2.ORDER_STATUS_FILLED
    )
    unfillable = order_service_pb2.PlaceOrderRequest(
        account_id=trader.account_id,
        client_order_id=f"it-{uuid.uuid4().hex[:20]}",
        symbol="EURUSD",
        side=buy,
        type=trading_pb2.ORDER_TYPE_LIMIT,
        time_in_force=trading_pb2.TIME_IN_FORCE_IOC,
        price="0.50000",
        quantity="0.10",
    )
    assert place_grpc(edge, trader, unfillable).status == trading_pb2.ORDER_STATUS_REJECTED
    unknown = market(trader, buy, "0.10")
    unknown.symbol = "NOSUCH"
    with pytest.raises(grpc.RpcError):
        place_grpc(edge, trader, unknown)


def test_every_dashboard_query_returns_data_after_a_short_load(
    running_stack: RunningStack, url: str, accounts: AccountStack
) -> None:
    edge = Edge(running_stack.state)
    trader = new_trader(edge, accounts)
    load(edge, trader)
    queries = [
        (name, item.title, query.expr)
        for name, (_, panels) in DASHBOARDS.items()
        for item in panels
        for query in item.queries
    ]

    def empty() -> list[tuple[str, str, str]]:
        return [
            (name, title, expr)
            for name, title, expr in queries
            if not prometheus(url, "/api/v1/query", query=expr)["result"]
        ]

    deadline = time.monotonic() + 12 * SCRAPE_SECONDS
    missing = empty()
    while missing and time.monotonic() < deadline:
        time.sleep(SCRAPE_SECONDS)
        missing = empty()
    assert not missing, "dashboard queries without data:\n" + "\n".join(map(str, missing))

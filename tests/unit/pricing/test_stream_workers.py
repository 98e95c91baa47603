"""The stream tier in the stack (ADR 0008): how many workers, their ports and settings, and the
edge's route of StreamQuotes to them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.platform.secrets import Secret
from services.platform.settings import SettingsError
from services.pricing.streams import StreamsConfig
from stack.components.base import Context
from stack.components.envoy import STREAM_CLUSTER
from stack.components.envoy import STREAM_METHOD
from stack.components.envoy import routes
from stack.components.envoy import stream_cluster
from stack.components.services import StreamWorker
from stack.contracts import EdgeService
from stack.paths import StackPaths
from stack.ports import STREAM_WORKERS
from stack.ports import Ports
from stack.ports import stream_worker_count
from stack.ports import stream_workers

PRICING = EdgeService(
    "tradingmesh.pricing.v1.PricingService", "pricing", streaming_methods=("StreamQuotes",)
)
NOTIFICATIONS = EdgeService(
    "tradingmesh.notification.v1.NotificationService", "notification", ("StreamNotifications",)
)


def test_two_workers_unless_the_setting_says_otherwise() -> None:
    assert stream_worker_count({}) == 2
    assert stream_worker_count({"TM_PRICING_STREAM_WORKERS": "0"}) == 0
    assert stream_workers({"TM_PRICING_STREAM_WORKERS": "3"}) == STREAM_WORKERS[:3]


@pytest.mark.parametrize("value", ["11", "-1", "two", "1.5"])
def test_a_bad_worker_count_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="TM_PRICING_STREAM_WORKERS"):
        stream_worker_count({"TM_PRICING_STREAM_WORKERS": value})


def test_each_worker_has_ports_of_its_own_inside_the_stacks_block() -> None:
    ports = Ports(20000)

    assert [ports.stream_worker_grpc(w) for w in STREAM_WORKERS[:2]] == [20030, 20031]
    assert [ports.stream_worker_metrics(w) for w in STREAM_WORKERS[:2]] == [20050, 20051]
    used = ports.all_used()
    assert len(used) == len(set(used))
    assert all(20000 <= port < 20100 for port in used)


def test_a_worker_runs_the_stream_module_as_the_pricing_service_on_its_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TM_PRICING_STREAM_COALESCE_MS", "25")
    monkeypatch.setenv("TM_PRICING_LPS", "should-not-pass")
    ctx = Context(StackPaths.for_name("unit"), Ports(20000), Path("/repo"), "INFO")
    worker = StreamWorker(ctx, "pricing-streams-2")

    env = worker.environment("http://127.0.0.1:20004", Secret("token"))

    assert worker.module == "services.pricing.streams"
    assert (worker.service, worker.address, worker.ports()) == (
        "pricing",
        "127.0.0.1:20031",
        (20031, 20051),
    )
    assert env["TM_SERVICE"] == "pricing"  # its Vault policy and database role are pricing's
    assert env["TM_GRPC_ADDR"] == "127.0.0.1:20031"
    assert env["TM_METRICS_ADDR"] == "127.0.0.1:20051"
    assert env["TM_PRICING_STREAM_COALESCE_MS"] == "25"
    assert "TM_PRICING_LPS" not in env


def _route_of(found: list[dict[str, Any]], path: str) -> str:
    (route,) = [r for r in found if r["match"].get("path") == path]
    cluster: str = route["route"]["cluster"]
    return cluster


def test_stream_quotes_goes_to_the_workers_and_everything_else_stays() -> None:
    with_workers = routes([PRICING, NOTIFICATIONS], STREAM_CLUSTER)
    without = routes([PRICING, NOTIFICATIONS])

    assert _route_of(with_workers, STREAM_METHOD) == STREAM_CLUSTER
    (route,) = [r for r in with_workers if r["match"].get("path") == STREAM_METHOD]
    assert "connect-failure" in route["route"]["retry_policy"]["retry_on"]  # to another worker
    assert _route_of(without, STREAM_METHOD) == "pricing"
    notifications = "/tradingmesh.notification.v1.NotificationService/StreamNotifications"
    assert _route_of(with_workers, notifications) == "notification"
    prefix = [r for r in with_workers if r["match"].get("prefix") == f"/{PRICING.full_name}/"]
    assert prefix[0]["route"]["cluster"] == "pricing"  # the unary RPCs


def test_the_workers_cluster_balances_by_least_request_with_health_checks() -> None:
    cluster = stream_cluster([20030, 20031])

    endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"]["socket_address"]["port_value"] for e in endpoints] == [
        20030,
        20031,
    ]
    (policy,) = cluster["load_balancing_policy"]["policies"]
    least_request = policy["typed_extension_config"]["typed_config"]
    assert least_request["@type"].endswith("least_request.v3.LeastRequest")
    assert least_request["selection_method"] == "FULL_SCAN"
    (check,) = cluster["health_checks"]
    assert check["grpc_health_check"]["service_name"] == "tradingmesh.pricing.v1.PricingService"
    # The small windows that make a slow reader back up into the worker (ADR 0006) stay.
    assert cluster["per_connection_buffer_limit_bytes"] == 32768


def test_the_workers_settings_are_read_once_and_checked() -> None:
    assert StreamsConfig.from_env({}) == StreamsConfig(0.01, 5.0)
    assert StreamsConfig.from_env({"TM_PRICING_STREAM_COALESCE_MS": "0"}).coalesce_seconds == 0
    with pytest.raises(SettingsError, match="TM_PRICING_STREAM_COALESCE_MS"):
        StreamsConfig.from_env({"TM_PRICING_STREAM_COALESCE_MS": "5000"})
    with pytest.raises(SettingsError, match="TM_PRICING_STREAM_REFRESH_S"):
        StreamsConfig.from_env({"TM_PRICING_STREAM_REFRESH_S": "soon"})

"""`up --replicas N` (ADR 0017): the instances' names and ports, their environment, Envoy's
clusters and the internal channels' targets; one replica stays exactly as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.platform.leader import lock_key
from services.platform.secrets import Secret
from services.platform.settings import Settings
from stack.components.base import Context
from stack.components.envoy import replicated_clusters
from stack.components.services import Service
from stack.components.services import service_instances
from stack.paths import StackPaths
from stack.ports import BLOCK
from stack.ports import MAX_REPLICAS
from stack.ports import SERVICES
from stack.ports import Ports
from stack.ports import instance_names
from stack.ports import service_of
from stack.ports import validate_replicas

BASE = 20000
PORTS = Ports(BASE)


def _ctx() -> Context:
    return Context(StackPaths.for_name("unit"), PORTS, Path("/repo"), "INFO")


def test_instance_one_keeps_the_ports_of_a_single_service() -> None:
    assert PORTS.service_grpc("oms") == PORTS.service_grpc("oms", 1) == BASE + 22
    assert PORTS.service_metrics("oms", 1) == BASE + 42


def test_every_instance_port_is_in_the_block_and_distinct_from_every_other() -> None:
    ports = [
        p
        for k in range(1, MAX_REPLICAS + 1)
        for s in SERVICES
        for p in (PORTS.service_grpc(s, k), PORTS.service_metrics(s, k))
    ]
    assert len(set(ports)) == len(ports)
    assert all(BASE <= p < BASE + BLOCK for p in ports)
    fixed = set(PORTS.all_used())
    assert set(ports) <= fixed  # a block is free only if every instance could start
    assert len(set(PORTS.all_used())) == len(PORTS.all_used())  # no offset used twice
    assert PORTS.service_grpc("oms", 2) == BASE + 83
    assert PORTS.service_metrics("oms", 2) == BASE + 89


def test_names_and_limits() -> None:
    assert instance_names(2)[:7] == (*SERVICES, "account-2")
    assert service_of("oms-2") == "oms"
    assert service_of("oms") == "oms"
    assert service_of("pricing-streams-1") is None
    validate_replicas(1)
    validate_replicas(MAX_REPLICAS)
    with pytest.raises(ValueError, match="must be between"):
        validate_replicas(0)
    with pytest.raises(ValueError, match="must be between"):
        validate_replicas(MAX_REPLICAS + 1)


def test_one_replica_reaches_other_services_at_one_address() -> None:
    env = Service(_ctx(), "oms").environment("http://127.0.0.1:20004", Secret("t"))
    assert env["TM_RISK_ADDR"] == f"127.0.0.1:{BASE + 23}"
    assert env["TM_INSTANCE"] == "oms"


def test_two_replicas_list_every_instance_and_share_the_data_directory() -> None:
    services = service_instances(_ctx(), 2, 2)
    assert list(services)[6:8] == ["account-2", "pricing-2"]
    oms2 = services["oms-2"]
    env = oms2.environment("http://127.0.0.1:20004", Secret("t"))
    assert env["TM_INSTANCE"] == "oms-2"
    assert env["TM_SERVICE"] == "oms"
    assert env["TM_GRPC_ADDR"] == f"127.0.0.1:{BASE + 83}"
    assert env["TM_RISK_ADDR"] == f"ipv4:127.0.0.1:{BASE + 23},127.0.0.1:{BASE + 84}"
    assert "TM_OMS_LPS" in env
    assert env["TM_DATA_DIR"] == services["oms"].environment("x", Secret("t"))["TM_DATA_DIR"]


def test_envoy_balances_and_health_checks_only_several_instances() -> None:
    one, two = replicated_clusters({"oms": [1], "risk": [2, 3]})
    assert "health_checks" not in one
    endpoints = two["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"]["socket_address"]["port_value"] for e in endpoints] == [2, 3]
    assert two["health_checks"][0]["grpc_health_check"] == {"service_name": ""}


def test_the_settings_read_the_instance() -> None:
    env = {
        "TM_SERVICE": "oms",
        "TM_GRPC_ADDR": "127.0.0.1:1",
        "TM_METRICS_ADDR": "127.0.0.1:2",
        "TM_VAULT_ADDR": "http://127.0.0.1:3",
        "TM_VAULT_TOKEN": "t",
        "TM_DATABASE_HOST": "127.0.0.1",
        "TM_DATABASE_PORT": "4",
        "TM_DATABASE_NAME": "tradingmesh",
        "TM_REDIS_HOST": "127.0.0.1",
        "TM_REDIS_PORT": "5",
        "TM_NATS_URL": "nats://127.0.0.1:6",
    }
    assert Settings.from_env(env).instance_name == "oms"
    assert Settings.from_env({**env, "TM_INSTANCE": "oms-2"}).instance_name == "oms-2"


def test_lock_keys_are_stable_positive_and_distinct() -> None:
    jobs = ["oms-stp", "oms-expiry", "oms-rollover", "pricing-feed", "pricing-candles"]
    keys = [lock_key(j) for j in jobs]
    assert len(set(keys)) == len(keys)
    assert all(0 < k < 2**63 for k in keys)
    assert lock_key("oms-stp") == lock_key("oms-stp")

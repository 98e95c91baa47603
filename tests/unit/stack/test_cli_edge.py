"""`tradingmesh up` and the edge's plaintext switch (stack/cli.py, ADR 0018): on by default and
said so with the way to turn it off; off with --production-edge or TM_EDGE_PLAINTEXT=0."""

from __future__ import annotations

import pytest

from stack import cli
from stack.state import Endpoints
from stack.state import StackState
from stack.state import VaultInfo


def _state(plaintext: bool) -> StackState:
    return StackState(
        name="dev",
        base_port=17000,
        state_dir="/x",
        vault=VaultInfo("http://127.0.0.1:17004", "/x/root-token"),
        endpoints=Endpoints(
            grpc="127.0.0.1:17010",
            http="https://127.0.0.1:17010",
            ca_file="/x/tls/ca.pem",
            envoy_admin="http://127.0.0.1:17011",
            plaintext=plaintext,
        ),
    )


def test_up_turns_plaintext_on_unless_told_otherwise() -> None:
    assert cli._edge_plaintext(production_edge=False, env={}) is True
    assert cli._edge_plaintext(production_edge=True, env={}) is False
    assert cli._edge_plaintext(production_edge=False, env={"TM_EDGE_PLAINTEXT": "0"}) is False
    assert cli._edge_plaintext(production_edge=True, env={"TM_EDGE_PLAINTEXT": "1"}) is False
    with pytest.raises(ValueError, match="TM_EDGE_PLAINTEXT"):
        cli._edge_plaintext(production_edge=False, env={"TM_EDGE_PLAINTEXT": "true"})


def test_the_summary_says_plaintext_is_on_and_how_to_turn_it_off() -> None:
    lines = "\n".join(cli._edge_lines(_state(plaintext=True)))

    assert "PLAINTEXT IS ON" in lines
    assert "TM_EDGE_PLAINTEXT=1" in lines
    assert "up --production-edge" in lines


def test_the_summary_of_a_production_edge_says_tls_1_3_only() -> None:
    state = _state(plaintext=False)
    lines = "\n".join(cli._edge_lines(state))

    assert "PLAINTEXT" not in lines
    assert "TLS 1.3 only" in lines
    assert "no plaintext" in lines


def test_up_refuses_a_switch_that_is_neither_1_nor_0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TM_EDGE_PLAINTEXT", "yes")

    assert cli.main(["up", "--name", "never-started", "--detach"]) == 1

"""stack.json (stack/state.py): what older versions wrote still reads."""

from __future__ import annotations

from typing import Any

from stack.state import StackState
from stack.state import web_url


def _state(endpoints: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "dev",
        "base_port": 17000,
        "state_dir": "/x/.tradingmesh/dev",
        "vault": {"address": "http://127.0.0.1:17004", "root_token_file": "/x/root-token"},
        "endpoints": endpoints,
    }


OLD_ENDPOINTS = {
    "grpc": "127.0.0.1:17010",
    "http": "https://127.0.0.1:17010",
    "ca_file": "/x/ca.pem",
    "envoy_admin": "http://127.0.0.1:17011",
}


def test_a_state_file_from_before_the_web_terminal_gets_its_url_from_the_edge() -> None:
    state = StackState.from_json(_state(OLD_ENDPOINTS))

    assert state.endpoints.web == "http://127.0.0.1:17010/"


def test_the_web_url_round_trips() -> None:
    state = StackState.from_json(_state({**OLD_ENDPOINTS, "web": "http://127.0.0.1:1/"}))

    assert StackState.from_json(state.to_json()).endpoints.web == "http://127.0.0.1:1/"
    assert web_url("https://127.0.0.1:17010") == "http://127.0.0.1:17010/"


def test_a_state_file_from_before_the_plaintext_switch_had_plaintext_on() -> None:
    state = StackState.from_json(_state(OLD_ENDPOINTS))

    assert state.endpoints.plaintext is True


def test_without_plaintext_the_web_terminal_is_https() -> None:
    endpoints = {**OLD_ENDPOINTS, "plaintext": False}
    state = StackState.from_json(_state(endpoints))

    assert state.endpoints.web == "https://127.0.0.1:17010/"
    assert StackState.from_json(state.to_json()).endpoints.plaintext is False
    assert web_url("https://127.0.0.1:17010", plaintext=False) == "https://127.0.0.1:17010/"

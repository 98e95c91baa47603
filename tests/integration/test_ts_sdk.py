"""The TypeScript SDK (clients/typescript) against the real stack, through Envoy over gRPC-web
and TLS, as a web or Node application calls it: tests/node/ts_sdk_client.mjs, run by Node on the
SDK built with `npm run build` (issue 16).

What the SDK reads is compared with what the Python SDK reads over gRPC, so both see the same
exact decimal strings.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import grpc
import pytest

from stack.paths import REPO
from tests.integration.node_clients import run_node_script
from tests.integration.support.edge import Edge
from tests.integration.support.pricing import demo_instruments

SDK = REPO / "clients" / "typescript"
CLIENT = REPO / "tests" / "node" / "ts_sdk_client.mjs"


def _build_sdk() -> None:
    # npm ci once per change of the lock file, then tsc (scripts/check does both too).
    subprocess.run([str(REPO / "scripts" / "bootstrap-node"), str(SDK)], check=True, timeout=300)
    npm = shutil.which("npm")
    assert npm is not None
    subprocess.run([npm, "run", "--silent", "build"], cwd=SDK, check=True, timeout=300)


@pytest.fixture(scope="module")
def report(edge: Edge) -> dict[str, Any]:
    _build_sdk()
    return run_node_script(
        CLIENT,
        edge,
        TM_EDGE_URL=edge.state.endpoints.http,
        NODE_EXTRA_CA_CERTS=edge.state.endpoints.ca_file,
    )


def _instruments_in_python(edge: Edge) -> list[dict[str, Any]]:
    return [
        {
            "symbol": i.symbol,
            "digits": i.digits,
            "tick_size": i.tick_size,
            "contract_size": i.contract_size,
            "min_lot": i.min_lot,
            "max_lot": i.max_lot,
            "lot_step": i.lot_step,
        }
        for i in demo_instruments(edge)
    ]


def _code(status: grpc.StatusCode) -> int:
    number: int = status.value[0]
    return number


def test_refused_calls_are_decoded_to_their_stable_reasons(report: dict[str, Any]) -> None:
    assert report["wrong_password"] == {
        "code": _code(grpc.StatusCode.UNAUTHENTICATED),
        "reason": "INVALID_CREDENTIALS",
        "violations": [],
    }
    assert report["without_token"]["code"] == _code(grpc.StatusCode.UNAUTHENTICATED)
    assert report["without_token"]["reason"] == "UNAUTHENTICATED"
    bad_input = report["bad_input"]
    assert bad_input["code"] == _code(grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_input["reason"] == "VALIDATION_FAILED"
    assert [(v["field"], v["reason"]) for v in bad_input["violations"]] == [
        ("symbol", "string.symbol")
    ]


def test_list_instruments_gives_the_same_decimal_strings_as_the_python_sdk(
    report: dict[str, Any], edge: Edge
) -> None:
    assert report["user_id"]
    assert report["instruments"] == _instruments_in_python(edge)
    assert any(i["symbol"] == "EURUSD" for i in report["instruments"])
    assert report["decimals_round_trip"] is True


def test_quotes_over_grpc_web_are_exact_in_both_forms(report: dict[str, Any]) -> None:
    eurusd = next(i for i in report["instruments"] if i["symbol"] == "EURUSD")
    quote, tick = report["quote"], report["tick"]

    assert quote["spread_is_ask_minus_bid"] is True
    # The stream's fixed-point units become prices with the instrument's digits, exactly.
    assert tick["price_scale"] == eurusd["digits"]
    for price in (tick["bid"], tick["ask"], quote["bid"], quote["ask"]):
        whole, _, fraction = price.partition(".")
        assert whole.isdigit(), price
        assert len(fraction) == eurusd["digits"], price
    assert tick["ask_above_bid"] == 1


def test_the_session_refreshes_before_expiry_and_after_a_refused_token(
    report: dict[str, Any],
) -> None:
    assert report["proactive_refresh"] == {
        "rotated": True,
        "new_access_token": True,
        "expires_in_future": True,
    }
    assert report["refresh_on_refusal"] == {"answered": True, "rotated": True}
    assert report["reused_refresh_token"]["reason"] == "REFRESH_TOKEN_REUSED"
    assert report["signed_out"] is True
    # Sign-in, the refresh's new tokens, the test's two edits, the retry's refresh, the end.
    assert report["token_changes"] == ["tokens"] * 5 + ["ended"]

"""The web terminal in a real browser against the real stack (issue 16's acceptance): Debian's
Chromium, driven by playwright-core from clients/web/e2e/terminal.e2e.mjs, opens the page that
Envoy serves (endpoints.web), signs in as the demo user and trades through it.

The script's steps (each reported as one JSON object on stdout; it exits 1 at the first
failure, naming the step on stderr): a wrong password shows a clear message; sign-in; quotes
change on screen; a market order fills and its position shows P&L; the account strip changes
after the fill; a limit order is amended and then cancelled; an expired access token is
refreshed without the user noticing; sign-out.

It needs the web built (scripts/build-web, which skips an unchanged build) and Chromium
(scripts/bootstrap-browser); both run here, as in scripts/check. Without clients/web in the
checkout the test fails: the terminal is part of the platform.
"""

from __future__ import annotations

import subprocess
import urllib.request

import pytest

from stack.paths import REPO
from tests.integration.conftest import RunningStack
from tests.integration.node_clients import run_node_script
from tests.integration.support.edge import Edge
from tests.integration.support.edge import restart_envoy

WEB = REPO / "clients" / "web"
E2E = WEB / "e2e" / "terminal.e2e.mjs"

# The steps the script reports, in order: issue 16's acceptance.
STEPS = [
    "wrong password",
    "sign in",
    "quotes change",
    "market order fills",
    "position with P&L",
    "account strip changes",
    "limit order placed",
    "limit order amended",
    "limit order cancelled",
    "streams reconnect and say so",
    "token refreshed silently",
    "a duplicated tab shares the session",
    "sign out",
]


def _served_index(edge: Edge) -> bytes | None:
    try:
        with urllib.request.urlopen(edge.state.endpoints.web, timeout=10) as response:
            return bytes(response.read())
    except OSError:  # 503 (not built) included
        return None


@pytest.fixture(scope="module")
def built_index() -> bytes:
    """The web built (each part only when its inputs changed) and Chromium installed, as
    scripts/check does; the built page."""
    assert (WEB / "package.json").is_file(), "clients/web is missing: the web terminal is needed"
    subprocess.run([str(REPO / "scripts" / "build-web")], check=True, timeout=900)
    subprocess.run([str(REPO / "scripts" / "bootstrap-browser")], check=True, timeout=900)
    return (WEB / "dist" / "index.html").read_bytes()


@pytest.fixture(scope="module")
def edge(built_index: bytes, running_stack: RunningStack) -> Edge:
    """The shared stack's Envoy serving the current build: restarted if it started before the
    build (Envoy reads the files when it starts)."""
    edge = Edge(running_stack.state)
    if _served_index(edge) != built_index:
        restart_envoy(running_stack)
    assert _served_index(edge) == built_index
    return edge


def test_the_terminal_signs_in_trades_and_refreshes_its_token_in_a_real_browser(
    edge: Edge,
) -> None:
    report = run_node_script(
        E2E,
        edge,
        cwd=WEB,
        timeout=300,
        report="json-lines",
        TM_WEB_URL=edge.state.endpoints.web,
    )
    steps = {step["step"]: step for step in report["lines"]}

    assert [step["step"] for step in report["lines"]] == STEPS
    assert all(step["ok"] is True for step in steps.values()), report
    # What each step saw.
    assert "Wrong username or password" in steps["wrong password"]["message"]
    assert steps["quotes change"]["first"] != steps["quotes change"]["then"]
    assert "FILLED" in steps["market order fills"]["outcome"]
    assert steps["position with P&L"]["pnl"] not in ("", "—")
    strip = steps["account strip changes"]
    assert strip["usedMarginBefore"] != strip["usedMarginAfter"]
    amended = steps["limit order amended"]
    assert amended["orderId"] == steps["limit order placed"]["orderId"]
    assert amended["price"] != steps["limit order placed"]["price"]
    assert steps["limit order cancelled"]["orderId"] == amended["orderId"]
    assert steps["streams reconnect and say so"]["indicator"].startswith("Reconnecting in")
    refreshed = steps["token refreshed silently"]
    assert refreshed["refreshRequests"] >= 1
    assert refreshed["closedPosition"] == steps["position with P&L"]["positionId"]
    # Two tabs holding one session (a duplicated tab): refreshed once, both still signed in.
    assert steps["a duplicated tab shares the session"]["refreshRequests"] == 1

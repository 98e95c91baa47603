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

import re
import subprocess
import urllib.request
from typing import Any

import pytest

from stack.paths import REPO
from tests.integration.conftest import RunningStack
from tests.integration.node_clients import run_node_script
from tests.integration.test_auth import Edge, restart_envoy

WEB = REPO / "clients" / "web"
E2E = WEB / "e2e" / "terminal.e2e.mjs"

# What issue 16 asks the browser test to show, matched against the names of the reported steps.
ACCEPTANCE = {
    "a wrong password is refused": r"wrong|password|invalid",
    "sign-in": r"sign.?in|login",
    "live quotes": r"quote|price",
    "a market order fills with a position": r"market|position|fill",
    "the account strip follows": r"account|margin|strip",
    "a limit order is amended and cancelled": r"limit|amend|cancel",
    "the token is refreshed": r"refresh|token|expir",
    "sign-out": r"sign.?out|logout",
}

# Until branch web-terminal (clients/web) is merged; the lead removes this mark at merge.
pytestmark = pytest.mark.xfail(
    not (WEB / "package.json").is_file(),
    reason="clients/web is not in this checkout yet (branch web-terminal)",
    strict=True,
)


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


def _steps(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The reported steps: one JSON object per line, or one object holding a `steps` list."""
    lines: list[dict[str, Any]] = report["lines"]
    if len(lines) == 1 and isinstance(lines[0].get("steps"), list):
        nested: list[dict[str, Any]] = lines[0]["steps"]
        return nested
    return lines


def _name(step: dict[str, Any]) -> str:
    return str(step.get("step") or step.get("name") or "")


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
    steps = _steps(report)

    assert steps, report
    for step in steps:
        assert _name(step), f"a step without a name: {step}"
        # Each step says it passed (ok/passed true, or no such flag and no error).
        flags = [step[key] for key in ("ok", "passed") if key in step]
        assert all(flag is True for flag in flags), step
        assert not step.get("error"), step
    names = " | ".join(_name(step).lower() for step in steps)
    missing = [what for what, pattern in ACCEPTANCE.items() if not re.search(pattern, names)]
    assert missing == [], f"steps not reported: {missing} (reported: {names})"

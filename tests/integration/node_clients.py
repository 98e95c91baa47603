"""Node programs run against the stack: the partner client and the TypeScript SDK's client
(tests/node), the web terminal's browser scripts (clients/web/e2e), each signing in as the demo
user and printing its JSON report on stdout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any
from typing import Literal

from tests.integration.support.edge import Edge


def run_node_script(
    script: Path,
    edge: Edge,
    *,
    cwd: Path | None = None,
    timeout: float = 120,
    report: Literal["json", "json-lines"] = "json",
    **settings: str,
) -> dict[str, Any]:
    """Runs `script` with Node (in `cwd`, at most `timeout` seconds), the demo user's login and
    `settings` in its environment; its report: one JSON object on stdout, or with
    `report="json-lines"` one object per line, returned as {"lines": [...]}. Fails the test if
    Node is missing or the script fails (with what it printed)."""
    node = shutil.which("node")
    assert node is not None, f"Node >= 20 is needed to run {script.name}"
    demo = edge.state.demo
    assert demo is not None
    env = {
        **os.environ,
        **settings,
        "TM_DEMO_USERNAME": demo.username,
        "TM_DEMO_PASSWORD": demo.password,
        "TM_DEMO_ACCOUNT_ID": demo.account_id,
    }
    result = subprocess.run(
        [node, str(script)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{script.name} failed:\n{result.stderr}\n{result.stdout}"
    if report == "json-lines":
        lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        return {"lines": lines}
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed

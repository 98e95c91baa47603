"""Node programs run against the stack (tests/node): the partner client and the TypeScript SDK's
client, each signing in as the demo user and printing one JSON report on stdout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.integration.test_auth import Edge


def run_node_script(script: Path, edge: Edge, **settings: str) -> dict[str, Any]:
    """Runs `script` with Node, the demo user's login and `settings` in its environment; its
    report. Fails the test if Node is missing or the script fails."""
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
        [node, str(script)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report

"""The alerting and recording rules (monitoring/prometheus/rules): valid, unit-tested with
`promtool test rules`, and each alert labelled, summarised and explained in the README."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring" / "prometheus"
RULES = MONITORING / "rules" / "tradingmesh.yml"
TESTS = sorted((MONITORING / "tests").glob("*_test.yml"))
SEVERITIES = {"page", "ticket"}


def promtool() -> str:
    found = shutil.which("promtool")
    assert found is not None, "promtool is missing: scripts/bootstrap-monitoring installs it"
    return found


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def alerts(rules: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="module")
def rules() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return loaded


def test_the_rules_are_valid() -> None:
    result = run_promtool("check", "rules", str(RULES), cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_behaves_as_its_unit_tests_say() -> None:
    result = run_promtool("test", "rules", *(t.name for t in TESTS), cwd=MONITORING / "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TESTS)


def test_the_unit_tests_fail_when_an_alert_is_broken(tmp_path: Path) -> None:
    """Negative control: the same tests against rules whose rejection threshold was raised."""
    broken = RULES.read_text().replace(
        "tradingmesh:order_rejections:ratio_rate10m > 0.2",
        "tradingmesh:order_rejections:ratio_rate10m > 0.9",
    )
    assert broken != RULES.read_text()
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / RULES.name).write_text(broken)
    (tmp_path / "tests").mkdir()
    test = MONITORING / "tests" / "tradingmesh_test.yml"
    shutil.copy(test, tmp_path / "tests" / test.name)
    result = run_promtool("test", "rules", test.name, cwd=tmp_path / "tests")
    assert result.returncode != 0
    assert "OrderRejectionsHigh" in result.stdout + result.stderr


def test_every_alert_has_a_unit_test(rules: dict[str, Any]) -> None:
    tested = {
        case["alertname"]
        for path in TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {alert["alert"] for alert in alerts(rules)} <= tested


def test_every_alert_says_how_bad_it_is_and_where_its_runbook_is(rules: dict[str, Any]) -> None:
    readme = (REPO / "README.md").read_text()
    runbooks = set(re.findall(r'<a id="runbook-([a-z-]+)"></a>', readme))
    for alert in alerts(rules):
        name = alert["alert"]
        labels = alert.get("labels", {})
        assert labels.get("severity") in SEVERITIES, name
        assert labels.get("runbook") in runbooks, f"{name}: no README section for its runbook"
        assert alert.get("annotations", {}).get("summary"), name

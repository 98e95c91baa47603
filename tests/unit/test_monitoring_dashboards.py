"""The Grafana dashboards (monitoring/grafana/*.json) are what their table writes, and each is a
dashboard Grafana can import: panels with Prometheus queries and a data source variable."""

from __future__ import annotations

import json

from monitoring.grafana.dashboards import DASHBOARDS
from monitoring.grafana.dashboards import files


def test_the_committed_dashboards_are_up_to_date() -> None:
    for path, text in files().items():
        assert path.is_file(), f"{path.name} is missing: python -m monitoring.grafana.dashboards"
        assert path.read_text() == text, f"{path.name} is stale: python -m monitoring.grafana..."


def test_every_panel_queries_prometheus_through_the_data_source_variable() -> None:
    for path in files():
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"].startswith("tradingmesh-")
        assert dashboard["templating"]["list"][0]["query"] == "prometheus"
        assert dashboard["panels"]
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["expr"].strip(), panel["title"]
                assert "$__" not in target["expr"], "Grafana-only macros cannot be tested"


def test_there_is_a_dashboard_for_each_concern() -> None:
    assert set(DASHBOARDS) == {"broker-operations", "market-data", "risk", "platform"}

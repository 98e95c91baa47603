"""The Grafana dashboards, written as JSON into monitoring/grafana/*.json from the table below.

    python -m monitoring.grafana.dashboards          # write the JSON files
    python -m monitoring.grafana.dashboards --check  # fail if they differ from the table

Grafana imports the files as they are (Dashboards → Import, or a provisioning folder); each asks
for a Prometheus data source (`datasource`). Every panel's query is run against the local
stack's Prometheus after a short load by tests/integration/test_monitoring.py, which fails on a
query that errors or returns nothing. Queries use fixed windows (no Grafana-only macros) so that
the test runs them exactly as Grafana would.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    description: str = ""


def panel(title: str, *queries: Query, unit: str = "short", kind: str = "timeseries") -> Panel:
    return Panel(title, queries, unit, kind)


def q(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), legend)


DASHBOARDS: dict[str, tuple[str, tuple[Panel, ...]]] = {
    "broker-operations": (
        "tradingmesh · broker operations",
        (
            panel(
                "New orders per second, by status",
                q("sum by (status) (rate(tradingmesh_oms_orders_total[1m]))", "{{status}}"),
                unit="reqps",
            ),
            panel(
                "Orders said no to, by reason",
                q("tradingmesh:order_rejections:rate5m", "{{reason}} ({{outcome}})"),
                unit="reqps",
            ),
            panel(
                "Share of new orders rejected (10 min)",
                q("tradingmesh:order_rejections:ratio_rate10m", "rejected"),
                unit="percentunit",
            ),
            panel(
                "PlaceOrder latency",
                q("tradingmesh:place_order_latency_seconds:p50_5m", "p50"),
                q("tradingmesh:place_order_latency_seconds:p99_5m", "p99"),
                unit="s",
            ),
            panel(
                "Latency SLO: share of orders over 250 ms (budget 1%)",
                q("tradingmesh:place_order_slow:ratio_rate5m", "5 min"),
                q("tradingmesh:place_order_slow:ratio_rate1h", "1 h"),
                unit="percentunit",
            ),
            panel(
                "Hedge orders of unknown fate",
                q("max(tradingmesh_oms_hedge_orders_unknown)", "unknown"),
                kind="stat",
            ),
        ),
    ),
    "market-data": (
        "tradingmesh · market data",
        (
            panel(
                "LP sessions logged on / serving",
                q("tradingmesh_pricing_lp_session_up", "{{lp}} logged on"),
                q("tradingmesh_pricing_lp_serving", "{{lp}} serving"),
            ),
            panel("LP ticks per second", q("tradingmesh:lp_ticks:rate1m", "{{lp}}"), unit="reqps"),
            panel(
                "Age of the newest price, by symbol",
                q("tradingmesh:quote_age_seconds", "{{symbol}}"),
                unit="s",
            ),
            panel(
                "Prices published per second",
                q("sum(rate(tradingmesh_pricing_prices_published_total[1m]))", "published"),
                unit="reqps",
            ),
            panel(
                "Open quote streams",
                q("sum by (service) (tradingmesh_pricing_quote_streams)", "{{service}}"),
            ),
            panel(
                "Quotes sent on streams per second",
                q(
                    """sum by (service)
                       (rate(tradingmesh_pricing_stream_ticks_fanned_out_total[1m]))""",
                    "{{service}}",
                ),
                unit="reqps",
            ),
        ),
    ),
    "risk": (
        "tradingmesh · risk",
        (
            panel(
                "Accounts with positions, by margin state",
                q("max by (status) (tradingmesh_risk_accounts)", "{{status}}"),
            ),
            panel(
                "Margin events in 5 minutes, by type",
                q(
                    "sum by (type) (increase(tradingmesh_risk_margin_events_total[5m]))",
                    "{{type}}",
                ),
            ),
            panel(
                "Clients' net position by instrument (lots, + long)",
                q("sum by (symbol) (tradingmesh_risk_client_net_centilots) / 100", "{{symbol}}"),
            ),
            panel(
                "Broker's net exposure by instrument: coverage - clients (lots, + long)",
                q(
                    """((sum by (symbol) (tradingmesh_risk_coverage_centilots)
                         or 0 * sum by (symbol) (tradingmesh_risk_client_net_centilots))
                        - sum by (symbol) (tradingmesh_risk_client_net_centilots)) / 100""",
                    "{{symbol}}",
                ),
            ),
        ),
    ),
    "platform": (
        "tradingmesh · platform",
        (
            panel(
                "Requests per second, by service and method",
                q(
                    "sum by (service, grpc_method) (rate(grpc_server_handled_total[1m]))",
                    "{{service}} {{grpc_method}}",
                ),
                unit="reqps",
            ),
            panel(
                "Answers other than OK, by service and code",
                q(
                    """sum by (service, grpc_code)
                       (rate(grpc_server_handled_total{grpc_code!="OK"}[5m]))""",
                    "{{service}} {{grpc_code}}",
                ),
                unit="reqps",
            ),
            panel(
                "Refusals by reason",
                q("sum by (reason) (rate(tradingmesh_rpc_refusals_total[5m]))", "{{reason}}"),
                unit="reqps",
            ),
            panel(
                "p99 duration of unary calls, by method",
                q(
                    """histogram_quantile(0.99, sum by (service, grpc_method, le)
                       (rate(grpc_server_handling_seconds_bucket{grpc_type="unary"}[5m])))""",
                    "{{service}} {{grpc_method}}",
                ),
                unit="s",
            ),
            panel(
                "Event consumers: messages waiting and delay",
                q(
                    "max by (service, consumer) (tradingmesh_events_consumer_pending)",
                    "{{consumer}} waiting",
                ),
                q(
                    "max by (service, consumer) (tradingmesh_events_consumer_delay_seconds)",
                    "{{consumer}} delay (s)",
                ),
            ),
            panel(
                "Events consumed per second",
                q(
                    "sum by (consumer) (rate(tradingmesh_events_consumed_total[1m]))",
                    "{{consumer}}",
                ),
                unit="reqps",
            ),
            panel(
                "Outbox: envelopes published per second, and the oldest unsent",
                q(
                    "sum by (schema, path) (rate(tradingmesh_outbox_published_total[1m]))",
                    "{{schema}} {{path}}",
                ),
                q(
                    "max by (schema) (tradingmesh_outbox_oldest_unsent_age_seconds)",
                    "{{schema}} oldest unsent (s)",
                ),
            ),
            panel(
                "Edge: responses per second by class",
                q(
                    """sum by (envoy_response_code_class)
                       (rate(envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix!="admin"}[1m]))""",
                    "{{envoy_response_code_class}}xx",
                ),
                unit="reqps",
            ),
            panel(
                "PostgreSQL: commits per second, connections, replica lag",
                q(
                    'sum(rate(pg_stat_database_xact_commit{datname="tradingmesh"}[1m]))',
                    "commits/s",
                ),
                q('sum(pg_stat_activity_count{datname="tradingmesh"})', "connections"),
                q("max(pg_replication_standby_replay_lag_bytes)", "replica lag (bytes)"),
            ),
            panel(
                "Redis: commands per second, clients, memory",
                q("sum(rate(redis_commands_processed_total[1m]))", "commands/s"),
                q("sum(redis_connected_clients)", "clients"),
                q("sum(redis_memory_used_bytes)", "memory (bytes)"),
            ),
            panel(
                "Days until the edge's first certificate expires",
                q("min(envoy_server_days_until_first_cert_expiring)", "days"),
                kind="stat",
            ),
        ),
    ),
}


def render(uid: str, title: str, panels: tuple[Panel, ...]) -> dict[str, object]:
    source = {"type": "prometheus", "uid": "${datasource}"}
    rendered = []
    for index, item in enumerate(panels):
        rendered.append(
            {
                "id": index + 1,
                "type": item.kind,
                "title": item.title,
                "datasource": source,
                "gridPos": {"x": (index % 2) * 12, "y": (index // 2) * 8, "w": 12, "h": 8},
                "fieldConfig": {"defaults": {"unit": item.unit}, "overrides": []},
                "targets": [
                    {
                        "refId": chr(ord("A") + n),
                        "datasource": source,
                        "expr": query.expr,
                        "legendFormat": query.legend,
                    }
                    for n, query in enumerate(item.queries)
                ],
            }
        )
    return {
        "uid": f"tradingmesh-{uid}",
        "title": title,
        "tags": ["tradingmesh"],
        "schemaVersion": 39,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "utc",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                }
            ]
        },
        "panels": rendered,
    }


def files() -> dict[Path, str]:
    return {
        HERE / f"{uid}.json": json.dumps(render(uid, title, panels), indent=2) + "\n"
        for uid, (title, panels) in DASHBOARDS.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args()
    wanted = files()
    stale = [
        path for path, text in wanted.items() if not path.is_file() or path.read_text() != text
    ]
    if args.check:
        for path in stale:
            print(f"{path} is stale: python -m monitoring.grafana.dashboards", file=sys.stderr)
        return 1 if stale else 0
    for path, text in wanted.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Retention (services/platform/retention.py) against the stack's PostgreSQL, with each
service's own role and the rules its `main.py` runs: rows older than a rule's keep are deleted,
recent ones stay, and so do the OMS's LP rows still to apply or parked; each service runs its
rules from its start; every rule's time column has its index (migration 0017)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field

import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from services.account.main import RETENTION as ACCOUNT
from services.oms.main import RETENTION as OMS
from services.platform.db import Database
from services.platform.retention import Retention
from services.platform.retention import RetentionRule
from services.pricing.main import RETENTION as PRICING
from services.risk.main import RETENTION as RISK
from tests.integration.conftest import RunningStack
from tests.integration.support.waiting import eventually_async


@dataclass(frozen=True)
class Rows:
    """Test rows of one table, told apart from all others by `marker`: `insert` writes one
    (parameters `marker`, `label`, and `age` / `applied`, intervals ago or NULL), `labels`
    reads the labels left, `delete` removes them all."""

    insert: str
    labels: str
    delete: str
    rows: dict[str, dict[str, str | None]]
    kept: set[str]
    marker: str = field(default_factory=lambda: str(uuid.uuid4()))


def _inbox(schema: str) -> Rows:
    """Envelope ids received 8 and 6 days ago: the first goes (7 days)."""
    return Rows(
        insert=f"INSERT INTO {schema}.inbox (event_id, subject, received_at)"
        " VALUES (%(marker)s || ':' || %(label)s, 'test.retention', now() - %(age)s::interval)",
        labels=f"SELECT split_part(event_id, ':', 2) FROM {schema}.inbox"
        " WHERE event_id LIKE %(marker)s || ':%%'",
        delete=f"DELETE FROM {schema}.inbox WHERE event_id LIKE %(marker)s || ':%%'",
        rows={"old": {"age": "8 days"}, "recent": {"age": "6 days"}},
        kept={"recent"},
    )


CHECK_DECISIONS = Rows(
    insert="INSERT INTO risk.check_decisions (check_id, account_id, order_id, purpose, symbol,"
    " side, quantity, remaining_quantity, open_order_count, approved, reject_message,"
    " required_margin, free_margin, free_margin_after, currency, checked_at)"
    " VALUES (gen_random_uuid(), %(marker)s, gen_random_uuid(), 'OPEN', 'EURUSD', 'BUY', 1, 1,"
    " 0, true, %(label)s, 0, 0, 0, 'USD', now() - %(age)s::interval)",
    labels="SELECT reject_message FROM risk.check_decisions WHERE account_id = %(marker)s",
    delete="DELETE FROM risk.check_decisions WHERE account_id = %(marker)s",
    rows={"old": {"age": "91 days"}, "recent": {"age": "89 days"}},
    kept={"recent"},
)

# An LP no session is configured for: the OMS's desk reapplies rows still to apply only for the
# LP that logs on (and all at start), so the live service leaves these alone.
EXECUTION_REPORTS = Rows(
    insert="INSERT INTO oms.lp_execution_reports (liquidity_provider_id, cl_ord_id, report_key,"
    " exec_id, report, raw_message, received_at, applied_at) VALUES ('lp-retention-' ||"
    " %(marker)s, %(label)s, 'k', 'e', '{}', '', now() - interval '200 days',"
    " now() - %(applied)s::interval)",
    labels="SELECT cl_ord_id FROM oms.lp_execution_reports"
    " WHERE liquidity_provider_id = 'lp-retention-' || %(marker)s",
    delete="DELETE FROM oms.lp_execution_reports"
    " WHERE liquidity_provider_id = 'lp-retention-' || %(marker)s",
    rows={"old": {"applied": "91 days"}, "recent": {"applied": "89 days"}, "pending": {}},
    kept={"recent", "pending"},
)

LP_MESSAGES = Rows(
    insert="INSERT INTO oms.lp_messages (liquidity_provider_id, message_key, kind, msg_type,"
    " msg_seq_num, raw_message, status, received_at, applied_at) VALUES ('lp-retention-' ||"
    " %(marker)s, %(label)s, 'REJECT', '3', 1, '', %(status)s, now() - interval '200 days',"
    " now() - %(applied)s::interval)",
    labels="SELECT message_key FROM oms.lp_messages"
    " WHERE liquidity_provider_id = 'lp-retention-' || %(marker)s",
    delete="DELETE FROM oms.lp_messages"
    " WHERE liquidity_provider_id = 'lp-retention-' || %(marker)s",
    rows={
        "old": {"status": "APPLIED", "applied": "91 days"},
        "recent": {"status": "APPLIED", "applied": "89 days"},
        "parked": {"status": "PARKED", "applied": "200 days"},  # parked by the desk
        "received": {"status": "RECEIVED"},
    },
    kept={"recent", "parked", "received"},
)

SENT_MESSAGES = Rows(
    insert="INSERT INTO oms.lp_sent_messages (liquidity_provider_id, msg_seq_num, msg_type,"
    " cl_ord_id, sent_at) VALUES ('lp-retention-' || %(marker)s, 1, 'D', %(label)s,"
    " now() - %(age)s::interval)",
    labels="SELECT cl_ord_id FROM oms.lp_sent_messages"
    " WHERE liquidity_provider_id = 'lp-retention-' || %(marker)s",
    delete="DELETE FROM oms.lp_sent_messages"
    " WHERE liquidity_provider_id = 'lp-retention-' || %(marker)s",
    rows={"old": {"age": "31 days"}, "recent": {"age": "29 days"}},
    kept={"recent"},
)

SERVICES: dict[str, tuple[Sequence[RetentionRule], dict[str, Rows]]] = {
    "oms": (
        OMS,
        {
            "oms.inbox": _inbox("oms"),
            "oms.lp_execution_reports": EXECUTION_REPORTS,
            "oms.lp_messages": LP_MESSAGES,
            "oms.lp_sent_messages": SENT_MESSAGES,
        },
    ),
    "risk": (RISK, {"risk.inbox": _inbox("risk"), "risk.check_decisions": CHECK_DECISIONS}),
    "account": (ACCOUNT, {"account.inbox": _inbox("account")}),
    "pricing": (PRICING, {"pricing.inbox": _inbox("pricing")}),
}


def _write(admin: str, tables: dict[str, Rows]) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        for rows in tables.values():
            for label, ages in rows.rows.items():
                params = {"age": None, "applied": None, "status": None, **ages}
                conn.execute(rows.insert, {"marker": rows.marker, "label": label, **params})


def _left(admin: str, rows: Rows) -> set[str]:
    with psycopg.connect(admin, autocommit=True) as conn:
        return {str(r[0]) for r in conn.execute(rows.labels, {"marker": rows.marker})}


def _live_runs(admin: str, role: str, table: str) -> int:
    """How often `role` ran a rule's DELETE on `table` (pg_stat_statements, which the stack's
    PostgreSQL keeps for every database in its maintenance database)."""
    with psycopg.connect(admin, dbname="postgres", autocommit=True) as conn:
        found = conn.execute(
            "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s"
            " JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = %s AND s.query LIKE %s",
            (role, f"DELETE FROM {table} WHERE ctid = ANY%"),
        ).fetchone()
    return int(found[0]) if found is not None else 0


def _indexed(admin: str, rule: RetentionRule) -> bool:
    """Whether an index of the rule's table starts with its time column."""
    schema, table = rule.table.split(".")
    with psycopg.connect(admin, autocommit=True) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_indexes WHERE schemaname = %s AND tablename = %s"
            " AND indexdef LIKE %s",
            (schema, table, f"%USING btree ({rule.time_column})%"),
        ).fetchone()
    return found is not None


@pytest.mark.parametrize("service", list(SERVICES))
async def test_rows_older_than_each_rule_keeps_are_deleted_with_the_services_role(
    running_stack: RunningStack, service: str
) -> None:
    admin, url = running_stack.database_urls(service)
    rules, tables = SERVICES[service]
    assert {rule.table for rule in rules} == set(tables)  # every rule of the service is tested

    # The service started its job (main.py): its first pass ran each rule at start. This test's
    # own pass below is the first by anyone else with the role.
    async def each_rule_ran() -> bool:
        return all(_live_runs(admin, service, table) for table in tables)

    await eventually_async(each_rule_ran, 30, f"{service}'s job ran each rule at start", 0.5)
    _write(admin, tables)
    try:
        engine = create_async_engine(url)
        try:
            deleted = await Retention(Database(engine, engine), rules).prune()
        finally:
            await engine.dispose()
        # Every rule ran without an error (a missing grant would be one). The live service's own
        # job may have deleted the old rows first: the rows left are what proves the rules.
        assert set(deleted) == set(tables)
        for table, rows in tables.items():
            assert _left(admin, rows) == rows.kept, table
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for rows in tables.values():
                conn.execute(rows.delete, {"marker": rows.marker})


@pytest.mark.parametrize("service", list(SERVICES))
def test_every_rules_time_column_is_indexed_and_its_role_may_delete(
    running_stack: RunningStack, service: str
) -> None:
    admin, _ = running_stack.database_urls(service)
    rules, _ = SERVICES[service]
    with psycopg.connect(admin, autocommit=True) as conn:
        for rule in rules:
            allowed = conn.execute(
                "SELECT has_table_privilege(%s, %s, 'DELETE')", (service, rule.table)
            ).fetchone()
            assert allowed == (True,), rule.table
    assert [rule.table for rule in rules if not _indexed(admin, rule)] == []

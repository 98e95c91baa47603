"""The retention job (`services/platform/retention.py`) without PostgreSQL: the DELETE it
builds per rule, the names it refuses, its batches (one statement each, until one deletes fewer
than the batch size) and its task, which outlives a failing rule."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from collections.abc import Iterable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest

from services.platform.retention import Retention
from services.platform.retention import RetentionRule
from services.platform.retention import inbox_rule

WEEK = timedelta(days=7)


class _Result:
    def __init__(self, rowcount: int) -> None:
        self.rowcount = rowcount


class LoneWrites:
    """A stand-in for `Database` with `lone_writes` only: each statement "deletes" the next count
    scripted for its table (0 once the script is spent), or raises what is scripted instead."""

    def __init__(self, counts: dict[str, Iterable[int | Exception]]) -> None:
        self.counts = {table: list(script) for table, script in counts.items()}
        self.executed: list[tuple[str, dict[str, Any]]] = []
        self.sessions = 0

    @asynccontextmanager
    async def lone_writes(self) -> AsyncIterator[LoneWrites]:
        self.sessions += 1
        yield self

    async def execute(self, statement: Any, params: dict[str, Any]) -> _Result:
        sql = str(statement)
        self.executed.append((sql, params))
        table = sql.split()[2]  # DELETE FROM <table> ...
        script = self.counts.get(table, [])
        outcome = script.pop(0) if script else 0
        if isinstance(outcome, Exception):
            raise outcome
        return _Result(outcome)

    def tables(self) -> list[str]:
        return [sql.split()[2] for sql, _ in self.executed]


def _retention(db: LoneWrites, rules: list[RetentionRule], **options: Any) -> Retention:
    return Retention(db, rules, **options)  # type: ignore[arg-type]


def test_a_rule_deletes_its_oldest_rows_by_their_time_column() -> None:
    statement = inbox_rule("risk").statement()

    assert statement == (
        "DELETE FROM risk.inbox WHERE ctid = ANY(ARRAY(SELECT ctid FROM risk.inbox"
        " WHERE received_at < now() - make_interval(secs => :keep)"
        " ORDER BY received_at LIMIT :batch))"
    )


def test_a_rules_condition_narrows_the_rows_it_deletes() -> None:
    rule = RetentionRule("oms.lp_messages", "applied_at", timedelta(days=90), "status = 'APPLIED'")

    assert (
        "WHERE applied_at < now() - make_interval(secs => :keep) AND (status = 'APPLIED')"
        " ORDER BY applied_at LIMIT :batch" in rule.statement()
    )


@pytest.mark.parametrize(
    ("table", "column", "keep", "where", "refusal"),
    [
        ("inbox", "received_at", WEEK, "", "not a schema-qualified table"),
        ("risk.inbox; DROP TABLE x", "received_at", WEEK, "", "not a table name"),
        ('risk."Inbox"', "received_at", WEEK, "", "not a table name"),
        ("Risk.inbox", "received_at", WEEK, "", "not a schema name"),
        ("risk.inbox", "received_at desc", WEEK, "", "not a column name"),
        ("risk.inbox", "", WEEK, "", "not a column name"),
        ("risk.inbox", "received_at", timedelta(0), "", "keep must be positive"),
        ("risk.inbox", "received_at", WEEK, "true; DELETE FROM risk.trades", "not one condition"),
    ],
)
def test_names_that_are_not_plain_names_are_refused(
    table: str, column: str, keep: timedelta, where: str, refusal: str
) -> None:
    with pytest.raises(ValueError, match=refusal):
        RetentionRule(table, column, keep, where)


async def test_the_keep_and_the_batch_size_are_the_statements_parameters() -> None:
    db = LoneWrites({})
    rule = RetentionRule("oms.lp_sent_messages", "sent_at", timedelta(days=30))

    await _retention(db, [rule], batch=250).prune()

    assert db.executed == [(rule.statement(), {"keep": 30 * 86400.0, "batch": 250})]


async def test_batches_run_until_one_deletes_fewer_than_the_batch_size() -> None:
    db = LoneWrites({"risk.inbox": [5000, 5000, 1234, 5000], "risk.check_decisions": [5000, 0]})
    rules = [inbox_rule("risk"), RetentionRule("risk.check_decisions", "checked_at", WEEK)]

    deleted = await _retention(db, rules).prune()

    assert deleted == {"risk.inbox": 11234, "risk.check_decisions": 5000}
    assert db.tables() == ["risk.inbox"] * 3 + ["risk.check_decisions"] * 2
    assert db.sessions == 2  # one autocommit session per rule, a statement per batch


async def test_a_failing_rule_does_not_stop_the_others() -> None:
    db = LoneWrites({"oms.inbox": [RuntimeError("permission denied")], "oms.lp_messages": [3]})
    rules = [
        inbox_rule("oms"),
        RetentionRule("oms.lp_messages", "applied_at", WEEK, "status = 'APPLIED'"),
    ]

    deleted = await _retention(db, rules).prune()

    assert deleted == {"oms.lp_messages": 3}


async def test_a_failure_is_retried_at_the_next_pass_and_the_task_runs_on() -> None:
    db = LoneWrites({"pricing.inbox": [OSError("connection refused"), 7]})
    retention = _retention(db, [inbox_rule("pricing")], every_seconds=0.01)

    await retention.start()
    try:
        for _ in range(200):
            if len(db.executed) >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        await retention.stop()

    # The first pass failed, the second deleted 7, the third found nothing.
    assert len(db.executed) >= 3
    assert db.counts["pricing.inbox"] == []


async def test_stop_ends_the_task() -> None:
    db = LoneWrites({})
    retention = _retention(db, [inbox_rule("account")], every_seconds=3600)
    await retention.start()
    await asyncio.sleep(0)

    await retention.stop()
    await retention.stop()  # twice is harmless

    assert [t for t in asyncio.all_tasks() if t.get_name() == "retention"] == []

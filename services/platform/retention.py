"""Retention of the tables that grow with every order (issue 14): rows older than a rule's
`keep` are deleted, a batch per statement, every `every_seconds` (10 minutes).

What each service keeps (wired in its `main.py`, beside its `OutboxRelay`, whose sent rows go
after 7 days the same way):

- `<schema>.inbox` (oms, risk, account, pricing), by `received_at`: 7 days, as the outbox keeps
  its sent rows. A row has to outlive any redelivery of its envelope: JetStream redelivers an
  unacknowledged message after 30 s, and a producer publishes an envelope again only when it
  restarted before marking it sent (seconds after publishing it, unless it stays down for
  days). A durable consumer created anew replays its stream from the start
  (`DeliverPolicy.ALL`), which no inbox of bounded size covers: consumers stay idempotent
  without it (the copies compare versions, the ledger posts once per business reference).
- `risk.check_decisions`, by `checked_at`: 90 days (the risk side of the audit trail).
- `oms.lp_execution_reports`, by `applied_at`: 90 days once applied; a report still to apply
  (`applied_at` NULL) is never deleted.
- `oms.lp_messages`, by `applied_at`, APPLIED only: 90 days; RECEIVED (still to apply) and
  PARKED (waiting for an operator) rows are never deleted.
- `oms.lp_sent_messages`, by `sent_at`: 30 days (where an LP's Reject finds the message it
  refuses; LPs answer within seconds).

Each batch is one autocommit DELETE on the primary (`Database.lone_writes`) of at most
`BATCH` rows, the oldest first (an index on the time column, migration 0017, finds them), so
no transaction holds many row locks for long; a rule is done for the pass when a batch deletes
fewer. A rule that fails (PostgreSQL away, a missing grant) is logged and tried again at the
next pass; the other rules run regardless. Several replicas may run the job: they delete the
same rows at worst, and one of them finds them gone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from sqlalchemy import text

from services.platform.db import Database
from services.platform.tasks import Repeating

__all__ = ["BATCH", "INBOX_KEEP", "Retention", "RetentionRule", "inbox_rule"]

_log = logging.getLogger(__name__)
_NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
BATCH: Final = 5000
_EVERY_SECONDS: Final = 600.0
INBOX_KEEP: Final = timedelta(days=7)


def _checked(name: str, what: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a {what} name")


@dataclass(frozen=True)
class RetentionRule:
    """Rows of `table` ("schema.table") whose `time_column` is older than `keep` go; `where`,
    an SQL condition written in the code (never from input), narrows them further. A row whose
    time column is NULL is never deleted."""

    table: str
    time_column: str
    keep: timedelta
    where: str = ""

    def __post_init__(self) -> None:
        schema, dot, table = self.table.partition(".")
        if not dot:
            raise ValueError(f"{self.table!r} is not a schema-qualified table name")
        _checked(schema, "schema")
        _checked(table, "table")
        _checked(self.time_column, "column")
        if self.keep <= timedelta(0):
            raise ValueError(f"keep must be positive, not {self.keep}")
        if ";" in self.where:
            raise ValueError(f"{self.where!r} is not one condition")

    def statement(self) -> str:
        """The DELETE of one batch (parameters `keep`, in seconds, and `batch`): the oldest
        rows first, found by their time column, deleted by their physical address (any table,
        whatever its key)."""
        condition = f"{self.time_column} < now() - make_interval(secs => :keep)"
        if self.where:
            condition += f" AND ({self.where})"
        return (
            f"DELETE FROM {self.table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {self.table}"
            f" WHERE {condition} ORDER BY {self.time_column} LIMIT :batch))"
        )


def inbox_rule(schema: str) -> RetentionRule:
    """`<schema>.inbox`: envelope ids received more than `INBOX_KEEP` ago go."""
    return RetentionRule(f"{schema}.inbox", "received_at", INBOX_KEEP)


class Retention:
    """Applies `rules` every `every_seconds` (the first pass at `start`); `stop` at shutdown."""

    def __init__(
        self,
        db: Database,
        rules: Sequence[RetentionRule],
        every_seconds: float = _EVERY_SECONDS,
        *,
        batch: int = BATCH,
    ) -> None:
        if batch < 1 or every_seconds <= 0:
            raise ValueError("batch and every_seconds must be positive")
        self._db = db
        self.rules = tuple(rules)
        self._batch = batch
        self._passes = Repeating("retention", self.prune, pause=every_seconds, log=_log)

    async def prune_rule(self, rule: RetentionRule) -> int:
        """Deletes a rule's rows older than its `keep`, a batch per statement, until a batch
        deletes fewer than the batch size; returns how many. Raises what the database raises
        (what earlier batches deleted stays deleted)."""
        statement = text(rule.statement())
        params = {"keep": rule.keep.total_seconds(), "batch": self._batch}
        deleted = 0
        async with self._db.lone_writes() as session:
            while True:
                result = await session.execute(statement, params)
                count = int(result.rowcount)  # type: ignore[attr-defined]
                deleted += count
                if count < self._batch:
                    return deleted

    async def prune(self) -> dict[str, int]:
        """One pass over every rule: rows deleted per table. A rule that fails is logged and
        left out of the answer; the others run."""
        deleted: dict[str, int] = {}
        for rule in self.rules:
            try:
                count = await self.prune_rule(rule)
            except Exception:
                _log.exception(
                    "retention failed; tried again at the next pass", extra={"table": rule.table}
                )
                continue
            deleted[rule.table] = deleted.get(rule.table, 0) + count
            if count:
                _log.info("old rows deleted", extra={"table": rule.table, "rows": count})
        return deleted

    async def start(self) -> None:
        self._passes.start()

    async def stop(self) -> None:
        await self._passes.stop()

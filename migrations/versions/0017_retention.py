"""Retention of the tables that grow with every order (services/platform/retention.py).

Each service deletes its old rows a batch at a time, the oldest first: envelope ids of the
inboxes after 7 days (`received_at`), risk's check decisions after 90 days (`checked_at`), the
OMS's applied execution reports and APPLIED LP messages 90 days after they were applied
(`applied_at`; rows still to apply, and parked ones, stay) and its sent LP messages after 30 days
(`sent_at`). This revision adds an index on each of those time columns (partial where the job
deletes only some rows), so that a batch reads the rows it deletes and no others, and grants
each service's role DELETE on those of its tables no earlier revision granted it on by name
(they hold it by their schema's default privileges, 0001, where their roles existed when the
tables were made).

The downgrade drops the indexes and keeps the grants: the roles held them before this revision
(by those default privileges), so revoking them would take away more than this revision gave.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

INBOXES = ("oms", "risk", "account", "pricing")

# (schema, index, table and columns, predicate or "")
INDEXES = (
    *((schema, "inbox_received", "inbox (received_at)", "") for schema in INBOXES),
    ("risk", "check_decisions_checked", "check_decisions (checked_at)", ""),
    (
        "oms",
        "lp_execution_reports_applied",
        "lp_execution_reports (applied_at)",
        "applied_at IS NOT NULL",
    ),
    ("oms", "lp_messages_applied", "lp_messages (applied_at)", "status = 'APPLIED'"),
    ("oms", "lp_sent_messages_sent", "lp_sent_messages (sent_at)", ""),
)

# Per role, its tables the retention deletes from (account.inbox has DELETE by name since 0007).
DELETES = {
    "oms": "oms.inbox, oms.lp_execution_reports, oms.lp_messages, oms.lp_sent_messages",
    "risk": "risk.inbox, risk.check_decisions",
    "pricing": "pricing.inbox",
}

UPGRADE = "\n".join(
    f"CREATE INDEX IF NOT EXISTS {index} ON {schema}.{columns}"
    + (f" WHERE {predicate}" if predicate else "")
    + ";"
    for schema, index, columns, predicate in INDEXES
)

GRANTS = "\n".join(
    f"""
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
    GRANT DELETE ON {tables} TO {role};
  END IF;
END $$;"""
    for role, tables in DELETES.items()
)

DOWNGRADE = "\n".join(f"DROP INDEX IF EXISTS {schema}.{index};" for schema, index, _, _ in INDEXES)


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(DOWNGRADE)

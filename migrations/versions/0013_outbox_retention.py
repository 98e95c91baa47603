"""The outboxes keep sent rows for a week (services/platform/outbox.py, "Retention").

Each service's relay deletes rows sent more than `OutboxRelay.keep` ago (default 7 days): an
event's home after publication is its JetStream stream, and the outbox only has to outlive
JetStream's 2-minute duplicate window and an operator's look at recent traffic. This revision
gives each service's role DELETE on its own outbox (the account and OMS roles had it with their
schemas' tables) and an index on `sent_at` for the sweep.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SCHEMAS = ("account", "pricing", "oms", "risk")

UPGRADE = "\n".join(
    f"""
CREATE INDEX IF NOT EXISTS outbox_sent ON {schema}.outbox (sent_at) WHERE sent_at IS NOT NULL;
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{schema}') THEN
    GRANT DELETE ON {schema}.outbox TO {schema};
  END IF;
END $$;
"""
    for schema in SCHEMAS
)

DOWNGRADE = "\n".join(f"DROP INDEX IF EXISTS {schema}.outbox_sent;" for schema in SCHEMAS)


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

"""The notification service's daily statements (ADR 0011): the rollovers it has heard of.

- `rollovers`: one row per trading day whose `oms.rollover.completed` arrived; `period_end` is
  the end of that day's statements (the completion plus the settling delay, when the day's SWAP
  entries are in the ledger and on the replica), `claimed_until` the lease of the job making
  them, `statements_done_at` when every opted-in account has its statement. A day's statement
  period starts at the `period_end` of the latest earlier trading day (none: the account's
  opening).
- The statement itself is a notification like the others (kind DAILY_STATEMENT) with its
  email delivery; its `event_id` is `daily_statement:<trading date>:<account id>`, so the
  UNIQUE `event_id` makes it once per account and trading day, whatever restarts, redelivered
  events or a second RunRollover do.

Revision ID: 0021
Revises: 0019
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0019"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE notification.rollovers (
    trading_date        DATE PRIMARY KEY,
    rollover_time       TIMESTAMPTZ NOT NULL,
    completed_at        TIMESTAMPTZ NOT NULL,
    period_end          TIMESTAMPTZ NOT NULL,
    claimed_until       TIMESTAMPTZ,
    statements_done_at  TIMESTAMPTZ
);
CREATE INDEX rollovers_due ON notification.rollovers (period_end)
    WHERE statements_done_at IS NULL;
"""

# Tables get the service's rights by the schema's default privileges (0001); granted again here
# as 0019 does, for a database whose defaults predate the role.
GRANTS = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'notification') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON notification.rollovers TO notification;
  END IF;
END $$;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute("DROP TABLE notification.rollovers")

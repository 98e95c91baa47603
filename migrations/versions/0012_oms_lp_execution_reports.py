"""OMS: execution reports kept before QuickFIX moves on (ADR 0007, "The OMS's FIX sessions").

- `lp_execution_reports`: every ExecutionReport the OMS's order sessions receive, committed on
  QuickFIX's thread before the callback returns (before the session counts the message as
  received), then applied by the STP desk, which sets `applied_at` in the transaction that
  applies it. Rows not applied (the process died between the two) are applied again, in
  received order (`id`), at start and after each logon. Unique per
  `(liquidity_provider_id, cl_ord_id, report_key)`: `report_key` is the provider's ExecID, or
  for the answer to an OrderStatusRequest (ExecType I, whose ExecID FIX leaves at 0) the state
  it reports, so a resent report is stored once. No foreign key to `hedge_orders`: a report may
  name an order the OMS never sent, and storing a report must not wait on a hedge order's row
  lock.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE oms.lp_execution_reports (
    id                     BIGSERIAL PRIMARY KEY,
    liquidity_provider_id  TEXT NOT NULL,
    cl_ord_id              TEXT NOT NULL,
    report_key             TEXT NOT NULL,
    exec_id                TEXT NOT NULL,
    report                 JSONB NOT NULL,
    raw_message            TEXT NOT NULL,
    received_at            TIMESTAMPTZ NOT NULL,
    applied_at             TIMESTAMPTZ,
    UNIQUE (liquidity_provider_id, cl_ord_id, report_key)
);
CREATE INDEX lp_execution_reports_unapplied ON oms.lp_execution_reports (id)
    WHERE applied_at IS NULL;
CREATE INDEX lp_execution_reports_order ON oms.lp_execution_reports (cl_ord_id);
"""

GRANTS = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'oms') THEN
    GRANT SELECT, INSERT, UPDATE ON oms.lp_execution_reports TO oms;
    GRANT USAGE, SELECT ON SEQUENCE oms.lp_execution_reports_id_seq TO oms;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reporting') THEN
    GRANT SELECT ON oms.lp_execution_reports TO reporting;
  END IF;
END $$;
"""

DOWNGRADE = """
DROP TABLE oms.lp_execution_reports;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(DOWNGRADE)

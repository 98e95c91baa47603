"""Account: booking of the OMS's trades and the risk service's stop-outs (ADR 0007).

The OMS commits a fill and writes `oms.trade.executed` to its outbox; the account service books
the trade's realized P&L (STOP_OUT_LOSS for a stop-out's loss) and commission to the ledger,
idempotent on (reason, "trade", trade id) and on the event id (`account.inbox`).
`account.trade_bookings` records each trade booked, with its order: a stop-out's
`risk.account.stop_out_completed` is applied (the balance credited back to zero) only once every
closing order it names has its trades booked, whatever order the two streams deliver in.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE account.trade_bookings (
    trade_id    UUID PRIMARY KEY,
    order_id    UUID NOT NULL,
    account_id  UUID NOT NULL REFERENCES account.trading_accounts (id),
    booked_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX trade_bookings_order ON account.trade_bookings (order_id);
"""

GRANTS = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'account') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON account.trade_bookings TO account;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reporting') THEN
    GRANT SELECT ON account.trade_bookings TO reporting;
  END IF;
END $$;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute("DROP TABLE account.trade_bookings")

"""Account: its own copy of what it needs of the instrument catalogue, and its event inbox.

The account service checks a group's instrument settings against the instrument's lot rules, but
instruments are the pricing domain's and the account service never reads the pricing schema
(ADR 0004). It keeps `account.instruments` (the lot rules and the version of pricing's row they
come from), fed by pricing's instrument events (`pricing.instrument.>`) and de-duplicated on
event id through `account.inbox`, as pricing keeps its copy of the account data (0004).

Instruments that exist before this revision are copied once, here: the migration runs as the
owner of every schema, and their creation events may predate pricing's outbox (0006). On a new
database the table starts empty and the demo seed, which runs after the migrations, fills both.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE account.instruments (
    symbol      TEXT PRIMARY KEY,
    lot_step    NUMERIC(30, 12) NOT NULL CHECK (lot_step > 0),
    min_lot     NUMERIC(30, 12) NOT NULL CHECK (min_lot > 0),
    max_lot     NUMERIC(30, 12) NOT NULL CHECK (max_lot >= min_lot),
    -- pricing.instruments.version of the row copied (the events' metadata.aggregate_version):
    -- an event applies only if newer, so a late redelivery of an older change changes nothing.
    version     BIGINT NOT NULL CHECK (version >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Events already applied: a redelivered event finds its id here and changes nothing.
CREATE TABLE account.inbox (
    event_id     TEXT PRIMARY KEY,
    subject      TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

INSERT INTO account.instruments (symbol, lot_step, min_lot, max_lot, version)
SELECT symbol, lot_step, min_lot, max_lot, version FROM pricing.instruments;
"""

GRANTS = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'account') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON account.instruments, account.inbox TO account;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reporting') THEN
    GRANT SELECT ON account.instruments, account.inbox TO reporting;
  END IF;
END $$;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute("DROP TABLE account.inbox, account.instruments")

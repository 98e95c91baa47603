"""Pricing: what instrument administration needs (PricingAdminService), and pricing's outbox.

- `instruments.halt_reason`: staff's reason while an instrument is HALTED, empty otherwise.
- `instruments.sessions`: the weekly trading schedule in UTC, a JSON array of
  `{"day": "MONDAY", "start_minute": 0, "end_minute": 1440}` (the contract's TradingSession). An
  empty array means the instrument is never open. Rows written without a schedule (those that
  exist before this revision, and the demo seed, which runs after the migrations) get a
  round-the-clock schedule: they traded at any time before, and keep doing so.
- `instruments.version`: counts the changes of a row, for the events' aggregate_version and so
  that the service applies a change to its in-memory copy only if it is newer.
- `instruments.trading_status` stores only staff's decision, TRADING or HALTED; CLOSED is not
  stored but derived from the schedule at read time.
- `outbox`: pricing's transactional outbox (services/platform/outbox.py), as account.outbox.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import json

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
# json's default separators put a space after every ":", which SQLAlchemy's text() (what
# op.execute runs) would otherwise read as a bind parameter (":0").
AROUND_THE_CLOCK = json.dumps(
    [{"day": day, "start_minute": 0, "end_minute": 1440} for day in _DAYS]
)

UPGRADE = f"""
ALTER TABLE pricing.instruments
    ADD COLUMN halt_reason TEXT NOT NULL DEFAULT '' CHECK (length(halt_reason) <= 500),
    ADD COLUMN sessions JSONB NOT NULL DEFAULT '{AROUND_THE_CLOCK}'::jsonb
        CHECK (jsonb_typeof(sessions) = 'array'),
    ADD COLUMN version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    ADD CONSTRAINT instruments_trading_status CHECK (trading_status IN ('TRADING', 'HALTED')),
    ADD CONSTRAINT instruments_halt_reason CHECK (trading_status = 'HALTED' OR halt_reason = '');

-- The transactional outbox (services/platform/outbox.py).
CREATE TABLE pricing.outbox (
    position    BIGSERIAL PRIMARY KEY,
    event_id    UUID NOT NULL UNIQUE,
    subject     TEXT NOT NULL,
    payload     BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at     TIMESTAMPTZ
);
CREATE INDEX outbox_unsent ON pricing.outbox (position) WHERE sent_at IS NULL;
"""

GRANTS = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pricing') THEN
    GRANT SELECT, INSERT, UPDATE ON pricing.outbox TO pricing;
    GRANT USAGE, SELECT ON SEQUENCE pricing.outbox_position_seq TO pricing;
  END IF;
END $$;
"""

DOWNGRADE = """
DROP TABLE pricing.outbox;
ALTER TABLE pricing.instruments
    DROP CONSTRAINT instruments_halt_reason,
    DROP CONSTRAINT instruments_trading_status,
    DROP COLUMN version,
    DROP COLUMN sessions,
    DROP COLUMN halt_reason;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(DOWNGRADE)

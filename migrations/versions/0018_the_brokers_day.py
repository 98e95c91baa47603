"""The broker's day (ADR 0010): swap terms, rollovers and their charges, daily snapshots.

- `oms.operator_audit_records` may record swap terms set by an operator (entity type
  `swap_rates`; the downgrade keeps the wider check, the append-only records stay).
- `oms.swap_rates`: the swap terms per instrument (`group_id` '') or per client group and
  instrument (OrderAdminService.SetSwapRates): points or percent a year, long and short rates,
  the triple-swap weekday (ISO, 1 = Monday .. 5 = Friday).
- `oms.rollovers`: one row per trading day's rollover (its instant, when it started, when it
  completed).
- `oms.swap_charges`: one row per (position, trading day), the primary key: a position is
  charged at most once per rollover, however often the job is interrupted and resumed. Written
  in the transaction that writes the position's new swap, its audit record and its
  `oms.position.swap_charged` event.
- `risk.daily_snapshots`: per (account, trading day) the balance, equity, used margin, free
  margin and floating P&L at the rollover, in the account currency (reporting's equity curves
  read it, on the replica).
- `risk.rollover_snapshots`: the rollovers whose snapshots are due (from
  `oms.rollover.completed`) and when they were taken.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE oms.operator_audit_records
    DROP CONSTRAINT operator_audit_records_entity_type_check,
    ADD CONSTRAINT operator_audit_records_entity_type_check
        CHECK (entity_type IN ('lp_order_session', 'hedge_order', 'swap_rates'));

CREATE TABLE oms.swap_rates (
    symbol           TEXT NOT NULL,
    group_id         TEXT NOT NULL DEFAULT '',
    swap_type        TEXT NOT NULL CHECK (swap_type IN ('POINTS', 'PERCENT')),
    long_rate        NUMERIC(30, 12) NOT NULL,
    short_rate       NUMERIC(30, 12) NOT NULL,
    triple_swap_day  SMALLINT NOT NULL CHECK (triple_swap_day BETWEEN 1 AND 5),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, group_id)
);

CREATE TABLE oms.rollovers (
    trading_date   DATE PRIMARY KEY,
    rollover_time  TIMESTAMPTZ NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at   TIMESTAMPTZ
);
CREATE INDEX rollovers_running ON oms.rollovers (trading_date) WHERE completed_at IS NULL;

CREATE TABLE oms.swap_charges (
    position_id   UUID NOT NULL,
    trading_date  DATE NOT NULL REFERENCES oms.rollovers (trading_date),
    id            UUID NOT NULL UNIQUE,
    account_id    UUID NOT NULL,
    symbol        TEXT NOT NULL,
    side          TEXT NOT NULL,
    quantity      NUMERIC(30, 12) NOT NULL,
    swap_type     TEXT NOT NULL DEFAULT '',
    rate          NUMERIC(30, 12) NOT NULL DEFAULT 0,
    nights        SMALLINT NOT NULL,
    amount        NUMERIC(30, 12) NOT NULL,
    currency      TEXT NOT NULL,
    charged_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (position_id, trading_date)
);
CREATE INDEX swap_charges_date_account ON oms.swap_charges (trading_date, account_id);

CREATE TABLE risk.daily_snapshots (
    account_id    UUID NOT NULL,
    trading_date  DATE NOT NULL,
    currency      TEXT NOT NULL,
    balance       NUMERIC(30, 12) NOT NULL,
    equity        NUMERIC(30, 12) NOT NULL,
    margin        NUMERIC(30, 12) NOT NULL,
    free_margin   NUMERIC(30, 12) NOT NULL,
    floating_pnl  NUMERIC(30, 12) NOT NULL,
    margin_level  NUMERIC(30, 12),
    taken_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, trading_date)
);
CREATE INDEX daily_snapshots_date ON risk.daily_snapshots (trading_date);

CREATE TABLE risk.rollover_snapshots (
    trading_date   DATE PRIMARY KEY,
    rollover_time  TIMESTAMPTZ NOT NULL,
    received_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    taken_at       TIMESTAMPTZ
);
"""

# The schemas' default privileges (0001) give these to the service roles and to reporting when
# the roles existed then; granted by name too, as 0015 does, for databases where they did not.
GRANTS = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'oms') THEN
    GRANT SELECT, INSERT, UPDATE ON oms.swap_rates, oms.rollovers TO oms;
    GRANT SELECT, INSERT ON oms.swap_charges TO oms;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'risk') THEN
    GRANT SELECT, INSERT, UPDATE ON risk.daily_snapshots, risk.rollover_snapshots TO risk;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reporting') THEN
    GRANT SELECT ON oms.swap_rates, oms.rollovers, oms.swap_charges, risk.daily_snapshots,
        risk.rollover_snapshots TO reporting;
  END IF;
END $$;
"""

DOWNGRADE = """
DROP TABLE risk.rollover_snapshots, risk.daily_snapshots, oms.swap_charges, oms.rollovers,
    oms.swap_rates;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(DOWNGRADE)

"""Schemas per service, instruments, client groups, users, trading accounts and the ledger.

Money columns are NUMERIC(30, 12): the wire allows 18 integer and 12 fraction digits (ADR 0001),
so every value a client can send or receive fits exactly. Ledger entries are append-only: a
trigger refuses UPDATE and DELETE, so history can only grow.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SERVICE_SCHEMAS = ("account", "pricing", "oms", "risk", "notification")
READERS = ("reporting",)  # reads every schema (through the read replica in production)

UPGRADE = """
CREATE TABLE pricing.instruments (
    symbol          TEXT PRIMARY KEY CHECK (symbol ~ '^[A-Z0-9][A-Z0-9._-]{0,31}$'),
    description     TEXT NOT NULL,
    asset_class     TEXT NOT NULL,
    base_currency   CHAR(3) NOT NULL,
    quote_currency  CHAR(3) NOT NULL,
    digits          SMALLINT NOT NULL CHECK (digits BETWEEN 0 AND 12),
    tick_size       NUMERIC(30, 12) NOT NULL CHECK (tick_size > 0),
    contract_size   NUMERIC(30, 12) NOT NULL CHECK (contract_size > 0),
    min_lot         NUMERIC(30, 12) NOT NULL CHECK (min_lot > 0),
    max_lot         NUMERIC(30, 12) NOT NULL CHECK (max_lot >= min_lot),
    lot_step        NUMERIC(30, 12) NOT NULL CHECK (lot_step > 0),
    margin_rate     NUMERIC(30, 12) NOT NULL CHECK (margin_rate > 0 AND margin_rate <= 1),
    trading_status  TEXT NOT NULL DEFAULT 'TRADING',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE account.client_groups (
    id                    UUID PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE,
    currency              CHAR(3) NOT NULL,
    leverage              INTEGER NOT NULL CHECK (leverage BETWEEN 1 AND 10000),
    margin_call_level     NUMERIC(30, 12) NOT NULL CHECK (margin_call_level > 0),
    stop_out_level        NUMERIC(30, 12) NOT NULL CHECK (stop_out_level > 0),
    execution_mode        TEXT NOT NULL,
    position_mode         TEXT NOT NULL,
    spread_markup_type    TEXT NOT NULL,
    spread_markup         NUMERIC(30, 12) NOT NULL CHECK (spread_markup >= 0),
    commission_per_lot    NUMERIC(30, 12) NOT NULL CHECK (commission_per_lot >= 0),
    max_deviation_points  INTEGER NOT NULL DEFAULT 0 CHECK (max_deviation_points >= 0),
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (stop_out_level < margin_call_level)
);

CREATE TABLE account.group_instrument_settings (
    group_id              UUID NOT NULL REFERENCES account.client_groups (id),
    symbol                TEXT NOT NULL,
    enabled               BOOLEAN NOT NULL DEFAULT TRUE,
    spread_markup_type    TEXT,
    spread_markup         NUMERIC(30, 12) CHECK (spread_markup >= 0),
    commission_per_lot    NUMERIC(30, 12) CHECK (commission_per_lot >= 0),
    execution_mode        TEXT,
    max_deviation_points  INTEGER CHECK (max_deviation_points >= 0),
    max_order_size        NUMERIC(30, 12) CHECK (max_order_size > 0),
    max_position          NUMERIC(30, 12) CHECK (max_position > 0),
    margin_rate           NUMERIC(30, 12) CHECK (margin_rate > 0 AND margin_rate <= 1),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, symbol)
);

CREATE TABLE account.users (
    id             UUID PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    email          TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    roles          TEXT[] NOT NULL,
    kyc_status     TEXT NOT NULL,
    status         TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE account.trading_accounts (
    id              UUID PRIMARY KEY,
    account_number  TEXT NOT NULL UNIQUE,
    user_id         UUID NOT NULL REFERENCES account.users (id),
    group_id        UUID NOT NULL REFERENCES account.client_groups (id),
    currency        CHAR(3) NOT NULL,
    position_mode   TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX trading_accounts_user_id ON account.trading_accounts (user_id);

-- The ledger: one row per movement, never changed. The balance is derived; balance_after is the
-- running balance of the account after this entry, written in the same transaction, so a
-- statement needs no sum and a test can check it against one.
CREATE TABLE account.ledger_entries (
    id              UUID PRIMARY KEY,
    account_id      UUID NOT NULL REFERENCES account.trading_accounts (id),
    sequence        BIGINT NOT NULL,
    reason          TEXT NOT NULL,
    amount          NUMERIC(30, 12) NOT NULL,
    balance_after   NUMERIC(30, 12) NOT NULL,
    currency        CHAR(3) NOT NULL,
    reference_type  TEXT,
    reference_id    TEXT,
    actor_kind      TEXT NOT NULL,
    actor_id        TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (account_id, sequence),
    UNIQUE (reason, reference_type, reference_id)
);

CREATE FUNCTION account.refuse_ledger_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'account.ledger_entries is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER ledger_entries_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON account.ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION account.refuse_ledger_change();
"""


def _grants() -> str:
    """Each service role owns what it needs in its schema; reporting reads all. Roles are made by
    the platform's deployment (the local stack, or the operator in Kubernetes); a missing role is
    skipped so migrations also run against a bare database."""
    statements = []
    for schema in SERVICE_SCHEMAS:
        statements.append(f"""
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{schema}') THEN
    GRANT USAGE ON SCHEMA {schema} TO {schema};
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {schema};
    ALTER DEFAULT PRIVILEGES IN SCHEMA {schema}
      GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {schema};
  END IF;
END $$;""")
        for reader in READERS:
            statements.append(f"""
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{reader}') THEN
    GRANT USAGE ON SCHEMA {schema} TO {reader};
    GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {reader};
    ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {reader};
  END IF;
END $$;""")
    return "\n".join(statements)


def upgrade() -> None:
    for schema in SERVICE_SCHEMAS:
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    op.execute(UPGRADE)
    op.execute(_grants())


def downgrade() -> None:
    for schema in reversed(SERVICE_SCHEMAS):
        op.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

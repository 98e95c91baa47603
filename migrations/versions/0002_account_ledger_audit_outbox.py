"""Account: the double-entry ledger, balances, withdrawals, balance adjustments, webhook events,
the audit chain and the outbox (ADR 0005).

- Every ledger transaction (a journal) has two or more legs that sum to zero per currency: the
  client's legs are rows of `ledger_entries`, the broker's are rows of `house_ledger_entries`. A
  deferred constraint trigger refuses a commit whose journal does not balance.
- `balances` caches each account's balance and last sequence; postings update it under
  `SELECT ... FOR UPDATE` in the entry's transaction.
- A client's balance never goes below zero unless the entry that does it is a credit or a booked
  stop-out loss (a CHECK on `ledger_entries`, besides the service's own check).
- `ledger_entries`, `house_ledger_entries` and `audit_records` are append-only: a trigger refuses
  UPDATE, DELETE and TRUNCATE, and the service role is not granted them either.
- `outbox` holds events written in the change's transaction until the relay publishes them.

Entries that existed before this revision (the seeded demo deposit) get a journal id and a house
leg, and every account a balances row, so the invariants hold for old data too.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

HOUSE_ACCOUNTS = ("house:cash", "house:trading", "house:fees", "house:adjustments")

UPGRADE = """
-- Ledger: the client's legs. References name what caused each entry; `reference_type` and
-- `reference_id` (from 0001) carry the idempotency key of the business event.
ALTER TABLE account.ledger_entries
    ADD COLUMN journal_id             UUID,
    ADD COLUMN order_id               UUID,
    ADD COLUMN trade_id               UUID,
    ADD COLUMN position_id            UUID,
    ADD COLUMN withdrawal_id          UUID,
    ADD COLUMN balance_adjustment_id  UUID,
    ADD COLUMN provider_event_id      TEXT;

ALTER TABLE account.ledger_entries DISABLE TRIGGER ledger_entries_append_only;
UPDATE account.ledger_entries SET journal_id = id WHERE journal_id IS NULL;
ALTER TABLE account.ledger_entries ENABLE TRIGGER ledger_entries_append_only;

ALTER TABLE account.ledger_entries
    ALTER COLUMN journal_id SET NOT NULL,
    ADD CONSTRAINT ledger_entries_amount_not_zero CHECK (amount <> 0),
    ADD CONSTRAINT ledger_entries_sequence_positive CHECK (sequence >= 1),
    ADD CONSTRAINT ledger_entries_no_silent_negative
        CHECK (balance_after >= 0 OR amount > 0 OR reason = 'STOP_OUT_LOSS');
CREATE INDEX ledger_entries_journal_id ON account.ledger_entries (journal_id);
CREATE INDEX ledger_entries_account_created ON account.ledger_entries (account_id, created_at);

-- Ledger: the broker's legs, on its house accounts.
CREATE TABLE account.house_ledger_entries (
    id             UUID PRIMARY KEY,
    journal_id     UUID NOT NULL,
    house_account  TEXT NOT NULL CHECK (house_account IN ({house_accounts})),
    reason         TEXT NOT NULL,
    amount         NUMERIC(30, 12) NOT NULL CHECK (amount <> 0),
    currency       CHAR(3) NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX house_ledger_entries_journal_id ON account.house_ledger_entries (journal_id);

INSERT INTO account.house_ledger_entries
       (id, journal_id, house_account, reason, amount, currency, created_at)
SELECT gen_random_uuid(), e.journal_id,
       CASE
           WHEN e.reason IN ('DEPOSIT', 'WITHDRAWAL', 'WITHDRAWAL_REVERSAL') THEN 'house:cash'
           WHEN e.reason IN ('COMMISSION', 'SWAP') THEN 'house:fees'
           WHEN e.reason IN ('REALIZED_PNL', 'STOP_OUT_LOSS', 'NEGATIVE_BALANCE_CORRECTION')
               THEN 'house:trading'
           ELSE 'house:adjustments'
       END,
       e.reason, -e.amount, e.currency, e.created_at
  FROM account.ledger_entries e;

-- A journal must balance per currency when its transaction commits.
CREATE FUNCTION account.check_journal_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced TEXT;
BEGIN
    SELECT string_agg(currency || ' ' || total::text, ', ') INTO unbalanced
      FROM (SELECT currency, sum(amount) AS total
              FROM (SELECT currency, amount FROM account.ledger_entries
                     WHERE journal_id = NEW.journal_id
                    UNION ALL
                    SELECT currency, amount FROM account.house_ledger_entries
                     WHERE journal_id = NEW.journal_id) legs
             GROUP BY currency) totals
     WHERE total <> 0;
    IF unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'journal % does not balance: %', NEW.journal_id, unbalanced
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER ledger_entries_journal_balanced
    AFTER INSERT ON account.ledger_entries DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION account.check_journal_balanced();
CREATE CONSTRAINT TRIGGER house_ledger_entries_journal_balanced
    AFTER INSERT ON account.house_ledger_entries DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION account.check_journal_balanced();

-- One function refuses changes to every append-only table.
CREATE FUNCTION account.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'account.% is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER house_ledger_entries_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON account.house_ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION account.refuse_change();

-- The balance cache: one row per trading account, locked by every posting.
CREATE TABLE account.balances (
    account_id     UUID PRIMARY KEY REFERENCES account.trading_accounts (id),
    currency       CHAR(3) NOT NULL,
    balance        NUMERIC(30, 12) NOT NULL DEFAULT 0,
    last_sequence  BIGINT NOT NULL DEFAULT 0 CHECK (last_sequence >= 0),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO account.balances (account_id, currency, balance, last_sequence)
SELECT a.id, a.currency, COALESCE(sum(e.amount), 0), COALESCE(max(e.sequence), 0)
  FROM account.trading_accounts a
  LEFT JOIN account.ledger_entries e ON e.account_id = a.id
 GROUP BY a.id, a.currency;

-- Account numbers: sequential, never reused. The seeded demo account is 1000001.
CREATE SEQUENCE account.account_number_seq START WITH 1000101;
ALTER TABLE account.trading_accounts ADD COLUMN idempotency_key TEXT UNIQUE;

ALTER TABLE account.client_groups ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE account.client_groups ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

-- The time of the last KYC event applied, so an older event delivered late changes nothing.
ALTER TABLE account.users ADD COLUMN kyc_event_time TIMESTAMPTZ;

CREATE TABLE account.withdrawals (
    id                        UUID PRIMARY KEY,
    account_id                UUID NOT NULL REFERENCES account.trading_accounts (id),
    amount                    NUMERIC(30, 12) NOT NULL CHECK (amount > 0),
    currency                  CHAR(3) NOT NULL,
    status                    TEXT NOT NULL
        CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'REJECTED')),
    idempotency_key           TEXT NOT NULL,
    ledger_entry_id           UUID NOT NULL REFERENCES account.ledger_entries (id),
    balance_after             NUMERIC(30, 12) NOT NULL,
    reversal_ledger_entry_id  UUID REFERENCES account.ledger_entries (id),
    rejection_reason          TEXT NOT NULL DEFAULT '',
    requested_by_kind         TEXT NOT NULL,
    requested_by_id           TEXT NOT NULL,
    rejected_by_kind          TEXT,
    rejected_by_id            TEXT,
    created_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at              TIMESTAMPTZ,
    updated_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (account_id, idempotency_key),
    CHECK ((status = 'REJECTED') = (reversal_ledger_entry_id IS NOT NULL))
);
CREATE INDEX withdrawals_account_created ON account.withdrawals (account_id, created_at DESC);
CREATE INDEX withdrawals_status_created ON account.withdrawals (status, created_at DESC);

CREATE TABLE account.balance_adjustments (
    id               UUID PRIMARY KEY,
    account_id       UUID NOT NULL REFERENCES account.trading_accounts (id),
    amount           NUMERIC(30, 12) NOT NULL CHECK (amount <> 0),
    currency         CHAR(3) NOT NULL,
    reason           TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('PENDING_APPROVAL', 'APPROVED', 'REJECTED')),
    idempotency_key  TEXT NOT NULL,
    maker_kind       TEXT NOT NULL,
    maker_id         TEXT NOT NULL,
    checker_kind     TEXT,
    checker_id       TEXT,
    checker_comment  TEXT NOT NULL DEFAULT '',
    ledger_entry_id  UUID REFERENCES account.ledger_entries (id),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    reviewed_at      TIMESTAMPTZ,
    UNIQUE (account_id, idempotency_key),
    -- Four eyes, also in the database: the checker is never the maker.
    CHECK (checker_id IS NULL OR checker_id <> maker_id),
    CHECK ((status = 'APPROVED') = (ledger_entry_id IS NOT NULL))
);
CREATE INDEX balance_adjustments_status_created
    ON account.balance_adjustments (status, created_at DESC);

-- Every webhook event received, once per (provider, event_id).
CREATE TABLE account.webhook_events (
    provider     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('payment', 'kyc')),
    outcome      TEXT NOT NULL,
    body         TEXT NOT NULL,
    occurred_at  TIMESTAMPTZ,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);

-- The audit chain: hash = sha256 of the AuditRecord message with `hash` empty (the contract),
-- which includes previous_hash, so every record seals the one before it.
CREATE TABLE account.audit_records (
    sequence        BIGINT PRIMARY KEY CHECK (sequence >= 1),
    id              UUID NOT NULL UNIQUE,
    actor_kind      TEXT NOT NULL,
    actor_id        TEXT NOT NULL,
    action          TEXT NOT NULL,
    resource_type   TEXT NOT NULL,
    resource_id     TEXT NOT NULL,
    before          TEXT NOT NULL DEFAULT '',
    after           TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    correlation_id  TEXT NOT NULL DEFAULT '',
    source_ip       TEXT NOT NULL DEFAULT '',
    previous_hash   TEXT NOT NULL,
    hash            TEXT NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$')
);
CREATE INDEX audit_records_resource ON account.audit_records (resource_type, resource_id);
CREATE INDEX audit_records_actor ON account.audit_records (actor_id);
CREATE INDEX audit_records_created ON account.audit_records (created_at);
CREATE TRIGGER audit_records_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON account.audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION account.refuse_change();

-- The transactional outbox (services/platform/outbox.py).
CREATE TABLE account.outbox (
    position    BIGSERIAL PRIMARY KEY,
    event_id    UUID NOT NULL UNIQUE,
    subject     TEXT NOT NULL,
    payload     BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at     TIMESTAMPTZ
);
CREATE INDEX outbox_unsent ON account.outbox (position) WHERE sent_at IS NULL;
""".replace("{house_accounts}", ", ".join(f"'{h}'" for h in HOUSE_ACCOUNTS))

GRANTS = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'account') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA account TO account;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA account TO account;
    -- Append-only tables: the service may add rows, never change or remove them.
    REVOKE UPDATE, DELETE, TRUNCATE ON account.ledger_entries, account.house_ledger_entries,
        account.audit_records FROM account;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reporting') THEN
    GRANT SELECT ON ALL TABLES IN SCHEMA account TO reporting;
  END IF;
END $$;
"""

DOWNGRADE = """
DROP TABLE account.outbox;
DROP TABLE account.audit_records;
DROP TABLE account.webhook_events;
DROP TABLE account.balance_adjustments;
DROP TABLE account.withdrawals;
ALTER TABLE account.users DROP COLUMN kyc_event_time;
ALTER TABLE account.client_groups DROP COLUMN version, DROP COLUMN description;
ALTER TABLE account.trading_accounts DROP COLUMN idempotency_key;
DROP SEQUENCE account.account_number_seq;
DROP TABLE account.balances;
DROP TABLE account.house_ledger_entries;
DROP TRIGGER ledger_entries_journal_balanced ON account.ledger_entries;
DROP FUNCTION account.check_journal_balanced();
DROP FUNCTION account.refuse_change();
DROP INDEX account.ledger_entries_journal_id;
DROP INDEX account.ledger_entries_account_created;
ALTER TABLE account.ledger_entries
    DROP CONSTRAINT ledger_entries_amount_not_zero,
    DROP CONSTRAINT ledger_entries_sequence_positive,
    DROP CONSTRAINT ledger_entries_no_silent_negative,
    DROP COLUMN journal_id,
    DROP COLUMN order_id,
    DROP COLUMN trade_id,
    DROP COLUMN position_id,
    DROP COLUMN withdrawal_id,
    DROP COLUMN balance_adjustment_id,
    DROP COLUMN provider_event_id;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(DOWNGRADE)

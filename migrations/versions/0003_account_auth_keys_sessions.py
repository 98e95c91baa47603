"""Account: token signing keys, refresh token families and tokens, partner API keys (ADR 0005).

A signing key's status is derived from its times (services/account/auth/keys.py): PUBLISHED until
activate_at, ACTIVE until retire_at, RETIRED until remove_at, then REMOVED. Refresh tokens and API
key secrets are stored only as hashes (SHA-256 and argon2), so this schema holds nothing that
signs a user in. Reporting reads the account schema, but not these hashes.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE account.signing_keys (
    kid             TEXT PRIMARY KEY,
    key_version     INTEGER NOT NULL UNIQUE CHECK (key_version > 0),
    public_key_pem  TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- NULL: will never sign (a published key superseded by an emergency rotation).
    activate_at     TIMESTAMPTZ,
    retire_at       TIMESTAMPTZ,
    remove_at       TIMESTAMPTZ,
    CHECK (retire_at IS NULL OR (activate_at IS NOT NULL AND retire_at >= activate_at)),
    CHECK (remove_at IS NULL OR retire_at IS NULL OR remove_at >= retire_at)
);

CREATE TABLE account.refresh_families (
    id               UUID PRIMARY KEY,
    user_id          UUID NOT NULL REFERENCES account.users (id),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at       TIMESTAMPTZ NOT NULL,
    revoked_at       TIMESTAMPTZ,
    revoke_reason    TEXT,
    revoked_from_ip  TEXT NOT NULL DEFAULT '',
    CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL))
);
CREATE INDEX refresh_families_user ON account.refresh_families (user_id)
    WHERE revoked_at IS NULL;

CREATE TABLE account.refresh_tokens (
    token_hash  TEXT PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    family_id   UUID NOT NULL REFERENCES account.refresh_families (id),
    issued_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    spent_at    TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_family ON account.refresh_tokens (family_id);

CREATE TABLE account.api_keys (
    id             UUID PRIMARY KEY,
    user_id        UUID NOT NULL REFERENCES account.users (id),
    name           TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    prefix         TEXT NOT NULL,
    secret_hash    TEXT NOT NULL,
    scopes         TEXT[] NOT NULL CHECK (cardinality(scopes) BETWEEN 1 AND 8),
    account_ids    UUID[] NOT NULL CHECK (cardinality(account_ids) BETWEEN 1 AND 100),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at   TIMESTAMPTZ,
    expire_at      TIMESTAMPTZ,
    revoked_at     TIMESTAMPTZ,
    revoke_reason  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX api_keys_user ON account.api_keys (user_id, created_at DESC);
"""

GRANTS = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'account') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON account.signing_keys, account.refresh_families,
        account.refresh_tokens, account.api_keys TO account;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reporting') THEN
    -- Default privileges give reporting every account table; hashes of credentials are not
    -- reporting's business.
    REVOKE ALL ON account.refresh_tokens, account.api_keys FROM reporting;
  END IF;
END $$;
"""

DOWNGRADE = """
DROP TABLE account.api_keys;
DROP TABLE account.refresh_tokens;
DROP TABLE account.refresh_families;
DROP TABLE account.signing_keys;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(DOWNGRADE)

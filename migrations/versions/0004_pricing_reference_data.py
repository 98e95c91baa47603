"""Pricing's own copy of the account data it prices with (ADR 0006), and its event inbox.

Pricing never reads the account schema: it keeps the client groups' markups, the instruments each
group is offered (with overrides) and which group each trading account belongs to, from the
account events, de-duplicated on event id through `pricing.inbox`.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE pricing.groups (
    group_id      UUID PRIMARY KEY,
    name          TEXT NOT NULL,
    markup_type   TEXT NOT NULL CHECK (markup_type IN ('POINTS', 'PERCENT')),
    markup        NUMERIC(30, 12) NOT NULL CHECK (markup >= 0),
    version       BIGINT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE pricing.group_instruments (
    group_id      UUID NOT NULL,
    symbol        TEXT NOT NULL,
    enabled       BOOLEAN NOT NULL,
    markup_type   TEXT CHECK (markup_type IN ('POINTS', 'PERCENT')),
    markup        NUMERIC(30, 12) CHECK (markup >= 0),
    version       BIGINT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, symbol),
    CHECK ((markup_type IS NULL) = (markup IS NULL))
);

CREATE TABLE pricing.accounts (
    account_id    UUID PRIMARY KEY,
    user_id       UUID NOT NULL,
    group_id      UUID NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Events already applied: a redelivered event finds its id here and changes nothing.
CREATE TABLE pricing.inbox (
    event_id      TEXT PRIMARY KEY,
    subject       TEXT NOT NULL,
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(
        "DROP TABLE pricing.inbox, pricing.accounts, pricing.group_instruments, pricing.groups"
    )

"""The notification service's schema (ADR 0011): notifications, email deliveries, preferences,
the copies of users and accounts it addresses mail with, margin-call throttling, the addresses
each user signed in from, and its inbox.

- `notifications`: one per domain event (`event_id` UNIQUE: a redelivered event makes none),
  for an account (`account_id`: fills, orders, margin, money) or for a user (`user_id`: KYC,
  security); `position` orders them for streams and pages. Kept 90 days (the contract).
- `deliveries`: one email per notification (its primary key), PENDING -> SENDING (claimed,
  `next_attempt_at` is then the claim's lease) -> SENT | SKIPPED (email off, or no address) |
  DEAD (after the last attempt); a failed attempt goes back to PENDING with the back-off in
  `next_attempt_at` and the reason in `last_error`.
- `preferences`: a user's email setting per notification kind; no row is the default (on).
- `users`, `accounts`: copies from `account.>` (email address, owner of each account).
- `margin_call_throttle`: per account, when its last margin call was notified and whether that
  call is still open (its resolution is notified only then).
- `sign_in_addresses`: per user, the addresses they signed in from (a new one is notified).

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE notification.users (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    status        TEXT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE notification.accounts (
    id              UUID PRIMARY KEY,
    user_id         UUID NOT NULL,
    account_number  TEXT NOT NULL,
    currency        CHAR(3) NOT NULL
);
CREATE INDEX accounts_user ON notification.accounts (user_id);

CREATE TABLE notification.notifications (
    id          UUID PRIMARY KEY,
    position    BIGSERIAL NOT NULL UNIQUE,
    event_id    TEXT NOT NULL UNIQUE,
    user_id     UUID,
    account_id  UUID,
    kind        TEXT NOT NULL,
    severity    TEXT NOT NULL,
    title       TEXT NOT NULL CHECK (char_length(title) <= 120),
    body        TEXT NOT NULL CHECK (char_length(body) <= 2000),
    details     JSONB NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    read_at     TIMESTAMPTZ,
    CHECK (user_id IS NOT NULL OR account_id IS NOT NULL)
);
CREATE INDEX notifications_account ON notification.notifications (account_id, position)
    WHERE account_id IS NOT NULL;
CREATE INDEX notifications_user ON notification.notifications (user_id, position)
    WHERE user_id IS NOT NULL;
CREATE INDEX notifications_created ON notification.notifications (created_at);

CREATE TABLE notification.deliveries (
    notification_id  UUID PRIMARY KEY
                     REFERENCES notification.notifications (id) ON DELETE CASCADE,
    channel          TEXT NOT NULL DEFAULT 'EMAIL',
    status           TEXT NOT NULL DEFAULT 'PENDING'
                     CHECK (status IN ('PENDING', 'SENDING', 'SENT', 'SKIPPED', 'DEAD')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error       TEXT NOT NULL DEFAULT '',
    recipient        TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at          TIMESTAMPTZ
);
CREATE INDEX deliveries_due ON notification.deliveries (next_attempt_at)
    WHERE status IN ('PENDING', 'SENDING');

CREATE TABLE notification.preferences (
    user_id        UUID NOT NULL,
    kind           TEXT NOT NULL,
    email_enabled  BOOLEAN NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, kind)
);

CREATE TABLE notification.margin_call_throttle (
    account_id        UUID PRIMARY KEY,
    last_notified_at  TIMESTAMPTZ,
    open              BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE notification.sign_in_addresses (
    user_id        UUID NOT NULL,
    address        TEXT NOT NULL,
    first_seen_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, address)
);

CREATE TABLE notification.inbox (
    event_id     TEXT PRIMARY KEY,
    subject      TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX inbox_received ON notification.inbox (received_at);
"""

# Tables get the service's rights by the schema's default privileges (0001); sequences do not.
GRANTS = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'notification') THEN
    GRANT USAGE, SELECT ON SEQUENCE notification.notifications_position_seq TO notification;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA notification TO notification;
  END IF;
END $$;
"""

DOWNGRADE = """
DROP TABLE notification.inbox, notification.sign_in_addresses, notification.margin_call_throttle,
    notification.preferences, notification.deliveries, notification.notifications,
    notification.accounts, notification.users;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(DOWNGRADE)

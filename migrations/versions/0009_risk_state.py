"""Risk: copies of accounts, groups, instruments, positions; checks, limits, margin events.

The risk service never reads another service's schema (ADR 0004). It keeps what the pre-trade
check and the margin watcher need in `risk.*`, fed by events and de-duplicated on event id through
`risk.inbox`, and holds it in memory while it runs:

- `accounts`: owner, group, currency, position mode and status (account.trading_account.*), and
  the ledger balance with the sequence of the entry it is at (account.ledger_entry.posted; an
  entry applies only if its sequence is newer).
- `groups`, `group_instruments`: leverage, margin-call and stop-out levels; per instrument the
  offer, maximum order size and position, and margin rate (account.client_group.*). `version` is
  the event's occurred_at in microseconds, as pricing's copy (0004) keeps it.
- `instruments`: what margin and trading hours need (pricing.instrument.*), `version` being
  pricing's row version (the events' aggregate_version).
- `positions`: the OMS's positions (oms.position.*), applied only if `version` is newer; closed
  positions stay, so that a late older event cannot reopen one.
- `trades`: the OMS's trades (oms.trade.executed) until the ledger has booked their realized
  P&L and commission (account.ledger_entry.posted naming the trade): the margin figures add what
  is executed but not yet booked (ADR 0007). Either side may arrive first.
- `hedge_fills`: STP hedge fills at LPs (oms.hedge_order.filled), the broker's coverage.
- `account_limits` (AccountRiskLimits) and `limit_changes`, their append-only audit.
- `check_decisions`: every CheckOrder decision (check_id), written in batches.
- `margin_status`: each account's margin state as the margin watcher last decided it, with the
  open MARGIN_CALL and STOP_OUT_TRIGGERED events of the running episodes.
- `margin_events` (append-only), and `stop_out_closes`: each ForceClosePosition attempt of a
  stop-out, its client_order_id stored before the call so a retry reuses it.
- `outbox` and `inbox` (services/platform/outbox.py, inbox.py).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE risk.accounts (
    account_id       UUID PRIMARY KEY,
    user_id          UUID NOT NULL,
    group_id         UUID NOT NULL,
    currency         CHAR(3) NOT NULL,
    position_mode    TEXT NOT NULL CHECK (position_mode IN ('NETTING', 'HEDGING')),
    status           TEXT NOT NULL
                     CHECK (status IN ('ACTIVE', 'CLOSE_ONLY', 'DISABLED', 'CLOSED')),
    version          BIGINT NOT NULL CHECK (version >= 0),
    balance          NUMERIC(30, 12) NOT NULL DEFAULT 0,
    ledger_sequence  BIGINT NOT NULL DEFAULT 0 CHECK (ledger_sequence >= 0),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX accounts_group ON risk.accounts (group_id);

CREATE TABLE risk.groups (
    group_id           UUID PRIMARY KEY,
    name               TEXT NOT NULL,
    currency           CHAR(3) NOT NULL,
    leverage           INTEGER NOT NULL CHECK (leverage BETWEEN 1 AND 10000),
    margin_call_level  NUMERIC(30, 12) NOT NULL CHECK (margin_call_level >= 0),
    stop_out_level     NUMERIC(30, 12) NOT NULL CHECK (stop_out_level >= 0),
    version            BIGINT NOT NULL CHECK (version >= 0),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE risk.group_instruments (
    group_id        UUID NOT NULL,
    symbol          TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL,
    max_order_size  NUMERIC(30, 12) CHECK (max_order_size > 0),
    max_position    NUMERIC(30, 12) CHECK (max_position > 0),
    margin_rate     NUMERIC(30, 12) CHECK (margin_rate > 0 AND margin_rate <= 1),
    version         BIGINT NOT NULL CHECK (version >= 0),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, symbol)
);

CREATE TABLE risk.instruments (
    symbol          TEXT PRIMARY KEY,
    base_currency   CHAR(3) NOT NULL,
    quote_currency  CHAR(3) NOT NULL,
    contract_size   NUMERIC(30, 12) NOT NULL CHECK (contract_size > 0),
    margin_rate     NUMERIC(30, 12) NOT NULL CHECK (margin_rate >= 0 AND margin_rate <= 1),
    -- The weekly schedule in UTC, as pricing stores it (0006).
    sessions        JSONB NOT NULL CHECK (jsonb_typeof(sessions) = 'array'),
    halted          BOOLEAN NOT NULL DEFAULT FALSE,
    version         BIGINT NOT NULL CHECK (version >= 0),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE risk.positions (
    position_id  UUID PRIMARY KEY,
    account_id   UUID NOT NULL,
    symbol       TEXT NOT NULL,
    side         TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    status       TEXT NOT NULL CHECK (status IN ('OPEN', 'CLOSED')),
    quantity     NUMERIC(30, 12) NOT NULL CHECK (quantity >= 0),
    open_price   NUMERIC(30, 12) NOT NULL CHECK (open_price >= 0),
    open_time    TIMESTAMPTZ NOT NULL,
    version      BIGINT NOT NULL CHECK (version >= 1),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX positions_open ON risk.positions (account_id) WHERE status = 'OPEN';

CREATE TABLE risk.trades (
    trade_id           UUID PRIMARY KEY,
    account_id         UUID NOT NULL,
    order_id           UUID,
    quantity           NUMERIC(30, 12) CHECK (quantity > 0),
    realized_pnl       NUMERIC(30, 12) NOT NULL DEFAULT 0,
    commission         NUMERIC(30, 12) NOT NULL DEFAULT 0 CHECK (commission >= 0),
    executed           BOOLEAN NOT NULL DEFAULT FALSE,
    pnl_booked         BOOLEAN NOT NULL DEFAULT FALSE,
    commission_booked  BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX trades_unbooked ON risk.trades (account_id)
    WHERE executed AND ((NOT pnl_booked AND realized_pnl <> 0)
                        OR (NOT commission_booked AND commission <> 0));
CREATE INDEX trades_order ON risk.trades (order_id);

CREATE TABLE risk.hedge_fills (
    hedge_order_id   UUID NOT NULL,
    lp_execution_id  TEXT NOT NULL,
    symbol           TEXT NOT NULL,
    side             TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    quantity         NUMERIC(30, 12) NOT NULL CHECK (quantity > 0),
    fill_time        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (hedge_order_id, lp_execution_id)
);

CREATE TABLE risk.account_limits (
    account_id          UUID PRIMARY KEY,
    max_open_positions  INTEGER NOT NULL DEFAULT 0 CHECK (max_open_positions BETWEEN 0 AND 100000),
    max_open_orders     INTEGER NOT NULL DEFAULT 0 CHECK (max_open_orders BETWEEN 0 AND 100000),
    max_gross_notional  NUMERIC(30, 12) CHECK (max_gross_notional > 0),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Who changed an account's limits, from what to what, when (RiskAdminService).
CREATE TABLE risk.limit_changes (
    id          BIGSERIAL PRIMARY KEY,
    account_id  UUID NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    request_id  TEXT NOT NULL DEFAULT '',
    before      JSONB,
    after       JSONB NOT NULL,
    changed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX limit_changes_account ON risk.limit_changes (account_id, changed_at);

CREATE TABLE risk.check_decisions (
    check_id            UUID PRIMARY KEY,
    account_id          UUID NOT NULL,
    order_id            UUID NOT NULL,
    purpose             TEXT NOT NULL,
    symbol              TEXT NOT NULL,
    side                TEXT NOT NULL,
    quantity            NUMERIC(30, 12) NOT NULL,
    remaining_quantity  NUMERIC(30, 12) NOT NULL,
    price               NUMERIC(30, 12),
    position_id         UUID,
    open_order_count    INTEGER NOT NULL,
    approved            BOOLEAN NOT NULL,
    reject_reason       TEXT,
    reject_message      TEXT NOT NULL DEFAULT '',
    required_margin     NUMERIC(30, 12) NOT NULL,
    free_margin         NUMERIC(30, 12) NOT NULL,
    free_margin_after   NUMERIC(30, 12) NOT NULL,
    margin_level_after  NUMERIC(30, 12),
    valuation_price     NUMERIC(30, 12),
    currency            CHAR(3) NOT NULL,
    checked_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX check_decisions_order ON risk.check_decisions (order_id);
CREATE INDEX check_decisions_account ON risk.check_decisions (account_id, checked_at);

CREATE TABLE risk.margin_status (
    account_id            UUID PRIMARY KEY,
    status                TEXT NOT NULL CHECK (status IN ('OK', 'MARGIN_CALL', 'STOP_OUT')),
    -- The aggregate version of the account's margin state: +1 per margin event.
    version               BIGINT NOT NULL CHECK (version >= 0),
    margin_call_event_id  UUID,
    stop_out_event_id     UUID,
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((status = 'STOP_OUT') = (stop_out_event_id IS NOT NULL))
);

CREATE TABLE risk.margin_events (
    margin_event_id          UUID PRIMARY KEY,
    account_id               UUID NOT NULL,
    group_id                 UUID NOT NULL,
    type                     TEXT NOT NULL CHECK (type IN ('MARGIN_CALL', 'MARGIN_CALL_RESOLVED',
                                 'STOP_OUT_TRIGGERED', 'STOP_OUT_COMPLETED')),
    related_margin_event_id  UUID,
    closed_position_ids      UUID[] NOT NULL DEFAULT '{}',
    closing_order_ids        UUID[] NOT NULL DEFAULT '{}',
    realized_pnl             NUMERIC(30, 12) NOT NULL DEFAULT 0,
    negative_balance         NUMERIC(30, 12) NOT NULL DEFAULT 0 CHECK (negative_balance >= 0),
    -- The account's figures at the event: a serialized tradingmesh.risk.v1.AccountRisk.
    account_risk             BYTEA NOT NULL,
    created_at               TIMESTAMPTZ NOT NULL
);
CREATE INDEX margin_events_account ON risk.margin_events (account_id, created_at DESC);
CREATE INDEX margin_events_time ON risk.margin_events (created_at DESC);

CREATE FUNCTION risk.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END;
$$;
CREATE TRIGGER margin_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON risk.margin_events
    FOR EACH STATEMENT EXECUTE FUNCTION risk.refuse_change();
CREATE TRIGGER limit_changes_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON risk.limit_changes
    FOR EACH STATEMENT EXECUTE FUNCTION risk.refuse_change();

CREATE TABLE risk.stop_out_closes (
    client_order_id  TEXT PRIMARY KEY CHECK (client_order_id LIKE 'tm:so:%'),
    margin_event_id  UUID NOT NULL,
    account_id       UUID NOT NULL,
    position_id      UUID NOT NULL,
    order_id         UUID,
    order_status     TEXT,
    filled_quantity  NUMERIC(30, 12),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    answered_at      TIMESTAMPTZ
);
CREATE INDEX stop_out_closes_event ON risk.stop_out_closes (margin_event_id);

-- The transactional outbox (services/platform/outbox.py).
CREATE TABLE risk.outbox (
    position    BIGSERIAL PRIMARY KEY,
    event_id    UUID NOT NULL UNIQUE,
    subject     TEXT NOT NULL,
    payload     BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at     TIMESTAMPTZ
);
CREATE INDEX outbox_unsent ON risk.outbox (position) WHERE sent_at IS NULL;

-- Events already applied: a redelivered event finds its id here and changes nothing.
CREATE TABLE risk.inbox (
    event_id     TEXT PRIMARY KEY,
    subject      TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""

# Tables get the service's rights by the schema's default privileges (0001); sequences do not.
GRANTS = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'risk') THEN
    GRANT USAGE, SELECT ON SEQUENCE risk.outbox_position_seq, risk.limit_changes_id_seq TO risk;
  END IF;
END $$;
"""

DOWNGRADE = """
DROP TABLE risk.inbox, risk.outbox, risk.stop_out_closes, risk.margin_events,
    risk.margin_status, risk.check_decisions, risk.limit_changes, risk.account_limits,
    risk.hedge_fills, risk.trades, risk.positions, risk.instruments, risk.group_instruments,
    risk.groups, risk.accounts;
DROP FUNCTION risk.refuse_change();
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(DOWNGRADE)

"""OMS: orders, trades, positions, hedge orders, audit, outbox, reference copies (ADR 0007).

- `orders`: one row per order, unique `(account_id, client_order_id)` (PlaceOrder's idempotency)
  with the request's fingerprint beside it; `status` is the contract's OrderStatus name and is
  changed only by the repository's `apply` (services/oms/store/changes.py), each change with
  `version` + 1, an audit row and outbox rows in the same transaction.
- `trades`: one row per fill, immutable (a trigger refuses UPDATE and DELETE).
- `positions`: netting accounts hold at most one open position per (account, symbol), enforced
  by a partial unique index over the open netting rows; hedging accounts one per opening fill.
- `audit_records`: append-only (trigger), hash-chained per account: `hash` = SHA-256 of the
  record's canonical form including `previous_hash`; the chain's head (last sequence and hash)
  lives on the account's `oms.accounts` row, which every change of the account's orders and
  positions locks anyway, so appends need no global lock.
- `outbox` / `inbox`: the platform's transactional outbox and consumer inbox (ADR 0005).
- `accounts`, `groups`, `group_instruments`, `instruments`: the OMS's copies of the account and
  pricing domains' data, fed by their events (services/oms/feeds/reference.py); `version` orders
  them (an older change delivered late changes nothing). Existing rows are copied once here,
  as 0007 does: the migration runs as the owner of every schema.
- `hedge_orders`, `hedge_order_orders`, `hedge_fills`: STP hedging (built later), with a
  fill unique per `(hedge_order_id, lp_execution_id)` so a resent execution report counts once.

Quantities, prices and amounts are NUMERIC(30, 12) (the wire's 18 + 12 digits).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ORDER_STATUSES = (
    "'NEW', 'PENDING', 'ACCEPTED', 'WORKING', 'PARTIALLY_FILLED', 'FILLED', 'CANCELLED',"
    " 'REJECTED', 'EXPIRED', 'PENDING_CANCEL', 'PENDING_AMEND'"
)
_OPEN_ORDER_STATUSES = (
    "'NEW', 'PENDING', 'ACCEPTED', 'WORKING', 'PARTIALLY_FILLED', 'PENDING_CANCEL', 'PENDING_AMEND'"
)

UPGRADE = f"""
-- Copies of reference data -----------------------------------------------------------------

CREATE TABLE oms.groups (
    group_id              UUID PRIMARY KEY,
    name                  TEXT NOT NULL,
    currency              CHAR(3) NOT NULL,
    leverage              INTEGER NOT NULL CHECK (leverage BETWEEN 1 AND 10000),
    margin_call_level     NUMERIC(30, 12) NOT NULL,
    stop_out_level        NUMERIC(30, 12) NOT NULL,
    execution_mode        TEXT NOT NULL CHECK (execution_mode IN ('INSTANT', 'MARKET', 'STP')),
    position_mode         TEXT NOT NULL CHECK (position_mode IN ('NETTING', 'HEDGING')),
    commission_per_lot    NUMERIC(30, 12) NOT NULL CHECK (commission_per_lot >= 0),
    max_deviation_points  INTEGER NOT NULL DEFAULT 0 CHECK (max_deviation_points >= 0),
    version               BIGINT NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE oms.group_instruments (
    group_id              UUID NOT NULL,
    symbol                TEXT NOT NULL,
    enabled               BOOLEAN NOT NULL,
    commission_per_lot    NUMERIC(30, 12) CHECK (commission_per_lot >= 0),
    execution_mode        TEXT CHECK (execution_mode IN ('INSTANT', 'MARKET', 'STP')),
    max_deviation_points  INTEGER CHECK (max_deviation_points >= 0),
    max_order_size        NUMERIC(30, 12) CHECK (max_order_size > 0),
    max_position          NUMERIC(30, 12) CHECK (max_position > 0),
    margin_rate           NUMERIC(30, 12) CHECK (margin_rate > 0 AND margin_rate <= 1),
    version               BIGINT NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, symbol)
);

CREATE TABLE oms.instruments (
    symbol          TEXT PRIMARY KEY,
    base_currency   CHAR(3) NOT NULL,
    quote_currency  CHAR(3) NOT NULL,
    digits          SMALLINT NOT NULL CHECK (digits BETWEEN 0 AND 12),
    tick_size       NUMERIC(30, 12) NOT NULL CHECK (tick_size > 0),
    contract_size   NUMERIC(30, 12) NOT NULL CHECK (contract_size > 0),
    min_lot         NUMERIC(30, 12) NOT NULL CHECK (min_lot > 0),
    max_lot         NUMERIC(30, 12) NOT NULL CHECK (max_lot >= min_lot),
    lot_step        NUMERIC(30, 12) NOT NULL CHECK (lot_step > 0),
    margin_rate     NUMERIC(30, 12) NOT NULL CHECK (margin_rate >= 0 AND margin_rate <= 1),
    trading_status  TEXT NOT NULL,
    sessions        JSONB NOT NULL CHECK (jsonb_typeof(sessions) = 'array'),
    -- pricing.instruments.version of the row copied (the events' aggregate_version).
    version         BIGINT NOT NULL CHECK (version >= 0),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The OMS's trading accounts: the copy of the account domain's, plus the head of the account's
-- audit chain. Every change to the account's orders and positions locks this row.
CREATE TABLE oms.accounts (
    account_id      UUID PRIMARY KEY,
    user_id         UUID NOT NULL,
    group_id        UUID NOT NULL,
    currency        CHAR(3) NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('ACTIVE', 'CLOSE_ONLY', 'DISABLED', 'CLOSED')),
    position_mode   TEXT NOT NULL CHECK (position_mode IN ('NETTING', 'HEDGING')),
    version         BIGINT NOT NULL,
    audit_sequence  BIGINT NOT NULL DEFAULT 0 CHECK (audit_sequence >= 0),
    audit_hash      TEXT NOT NULL DEFAULT '',
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX accounts_user_id ON oms.accounts (user_id);

-- Orders, trades, positions ------------------------------------------------------------------

CREATE TABLE oms.orders (
    id                  UUID PRIMARY KEY,
    account_id          UUID NOT NULL REFERENCES oms.accounts (account_id),
    client_order_id     TEXT NOT NULL CHECK (length(client_order_id) BETWEEN 1 AND 64),
    -- SHA-256 (hex) of the request that created the order, with defaults applied: a retry
    -- with the same client_order_id must match it (services/oms/entry/fingerprint.py).
    request_fingerprint TEXT NOT NULL CHECK (request_fingerprint ~ '^[0-9a-f]{{64}}$'),
    symbol              TEXT NOT NULL,
    side                TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    type                TEXT NOT NULL CHECK (type IN ('MARKET', 'LIMIT', 'STOP', 'STOP_LIMIT')),
    time_in_force       TEXT NOT NULL CHECK (time_in_force IN ('GTC', 'IOC', 'FOK', 'DAY')),
    status              TEXT NOT NULL CHECK (status IN ({_ORDER_STATUSES})),
    quantity            NUMERIC(30, 12) NOT NULL CHECK (quantity > 0),
    filled_quantity     NUMERIC(30, 12) NOT NULL DEFAULT 0
                            CHECK (filled_quantity >= 0 AND filled_quantity <= quantity),
    price               NUMERIC(30, 12) CHECK (price > 0),
    stop_price          NUMERIC(30, 12) CHECK (stop_price > 0),
    requested_price     NUMERIC(30, 12) CHECK (requested_price > 0),
    average_fill_price  NUMERIC(30, 12) CHECK (average_fill_price > 0),
    stop_loss           NUMERIC(30, 12) CHECK (stop_loss > 0),
    take_profit         NUMERIC(30, 12) CHECK (take_profit > 0),
    position_id         UUID,
    status_reason       TEXT NOT NULL DEFAULT 'UNSPECIFIED',
    status_message      TEXT NOT NULL DEFAULT '' CHECK (length(status_message) <= 500),
    requote_price       NUMERIC(30, 12) CHECK (requote_price > 0),
    execution_mode      TEXT CHECK (execution_mode IN ('INSTANT', 'MARKET', 'STP')),
    commission          NUMERIC(30, 12) NOT NULL DEFAULT 0 CHECK (commission >= 0),
    origin              TEXT NOT NULL CHECK (origin IN ('CLIENT', 'OPERATOR', 'STOP_LOSS',
                            'TAKE_PROFIT', 'STOP_OUT')),
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    trigger_time        TIMESTAMPTZ,
    expire_time         TIMESTAMPTZ,
    version             BIGINT NOT NULL CHECK (version >= 1),
    UNIQUE (account_id, client_order_id)
);
CREATE INDEX orders_account_created ON oms.orders (account_id, created_at DESC, id DESC);
CREATE INDEX orders_open ON oms.orders (account_id, symbol)
    WHERE status IN ({_OPEN_ORDER_STATUSES});
CREATE INDEX orders_expiring ON oms.orders (expire_time)
    WHERE expire_time IS NOT NULL AND status IN ({_OPEN_ORDER_STATUSES});
CREATE INDEX orders_position ON oms.orders (position_id) WHERE position_id IS NOT NULL;

CREATE TABLE oms.positions (
    id              UUID PRIMARY KEY,
    account_id      UUID NOT NULL REFERENCES oms.accounts (account_id),
    symbol          TEXT NOT NULL,
    -- True for a position of a netting account: at most one of them is open per instrument.
    netting         BOOLEAN NOT NULL,
    side            TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    status          TEXT NOT NULL CHECK (status IN ('OPEN', 'CLOSED')),
    quantity        NUMERIC(30, 12) NOT NULL CHECK (quantity >= 0),
    open_price      NUMERIC(30, 12) NOT NULL CHECK (open_price > 0),
    realized_pnl    NUMERIC(30, 12) NOT NULL DEFAULT 0,
    commission      NUMERIC(30, 12) NOT NULL DEFAULT 0 CHECK (commission >= 0),
    swap            NUMERIC(30, 12) NOT NULL DEFAULT 0,
    stop_loss       NUMERIC(30, 12) CHECK (stop_loss > 0),
    take_profit     NUMERIC(30, 12) CHECK (take_profit > 0),
    used_margin     NUMERIC(30, 12) NOT NULL DEFAULT 0 CHECK (used_margin >= 0),
    open_order_id   UUID NOT NULL,
    open_time       TIMESTAMPTZ NOT NULL,
    update_time     TIMESTAMPTZ NOT NULL,
    close_time      TIMESTAMPTZ,
    version         BIGINT NOT NULL CHECK (version >= 1),
    CHECK ((status = 'OPEN') = (quantity > 0)),
    CHECK ((status = 'CLOSED') = (close_time IS NOT NULL))
);
CREATE UNIQUE INDEX positions_one_open_netting ON oms.positions (account_id, symbol)
    WHERE status = 'OPEN' AND netting;
CREATE INDEX positions_account_open ON oms.positions (account_id, open_time DESC, id DESC)
    WHERE status = 'OPEN';

CREATE TABLE oms.trades (
    id               UUID PRIMARY KEY,
    order_id         UUID NOT NULL REFERENCES oms.orders (id),
    client_order_id  TEXT NOT NULL,
    account_id       UUID NOT NULL REFERENCES oms.accounts (account_id),
    symbol           TEXT NOT NULL,
    side             TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    quantity         NUMERIC(30, 12) NOT NULL CHECK (quantity > 0),
    price            NUMERIC(30, 12) NOT NULL CHECK (price > 0),
    commission       NUMERIC(30, 12) NOT NULL CHECK (commission >= 0),
    realized_pnl     NUMERIC(30, 12) NOT NULL,
    currency         CHAR(3) NOT NULL,
    position_id      UUID NOT NULL REFERENCES oms.positions (id),
    position_effect  TEXT NOT NULL CHECK (position_effect IN ('OPEN', 'INCREASE', 'REDUCE',
                         'CLOSE', 'REVERSE')),
    origin           TEXT NOT NULL,
    hedge_order_id   UUID,
    fill_time        TIMESTAMPTZ NOT NULL
);
CREATE INDEX trades_account_time ON oms.trades (account_id, fill_time DESC, id DESC);
CREATE INDEX trades_order ON oms.trades (order_id);
CREATE INDEX trades_position ON oms.trades (position_id);

-- Audit: append-only, hash-chained per account ---------------------------------------------

CREATE TABLE oms.audit_records (
    id              BIGSERIAL PRIMARY KEY,
    account_id      UUID NOT NULL REFERENCES oms.accounts (account_id),
    -- 1, 2, ... per account: the chain's order.
    sequence        BIGINT NOT NULL CHECK (sequence >= 1),
    entity_type     TEXT NOT NULL CHECK (entity_type IN ('order', 'position')),
    entity_id       UUID NOT NULL,
    event           TEXT NOT NULL,
    actor_kind      TEXT NOT NULL,
    actor_id        TEXT NOT NULL,
    status_before   TEXT NOT NULL DEFAULT '',
    status_after    TEXT NOT NULL DEFAULT '',
    reason          TEXT NOT NULL DEFAULT '',
    before          TEXT NOT NULL DEFAULT '',
    after           TEXT NOT NULL DEFAULT '',
    version         BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    correlation_id  TEXT NOT NULL DEFAULT '',
    previous_hash   TEXT NOT NULL,
    hash            TEXT NOT NULL CHECK (hash ~ '^[0-9a-f]{{64}}$'),
    UNIQUE (account_id, sequence)
);
CREATE INDEX audit_records_entity ON oms.audit_records (entity_id);

CREATE FUNCTION oms.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%.% is append-only (% refused)', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP;
END;
$$;
CREATE TRIGGER audit_records_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON oms.audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION oms.refuse_change();
CREATE TRIGGER trades_immutable
    BEFORE UPDATE OR DELETE OR TRUNCATE ON oms.trades
    FOR EACH STATEMENT EXECUTE FUNCTION oms.refuse_change();

-- STP hedging ---------------------------------------------------------------------------------

CREATE TABLE oms.hedge_orders (
    id                     UUID PRIMARY KEY,
    symbol                 TEXT NOT NULL,
    side                   TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    quantity               NUMERIC(30, 12) NOT NULL CHECK (quantity > 0),
    gross_buy_quantity     NUMERIC(30, 12) NOT NULL CHECK (gross_buy_quantity >= 0),
    gross_sell_quantity    NUMERIC(30, 12) NOT NULL CHECK (gross_sell_quantity >= 0),
    filled_quantity        NUMERIC(30, 12) NOT NULL DEFAULT 0 CHECK (filled_quantity >= 0),
    average_price          NUMERIC(30, 12) CHECK (average_price > 0),
    liquidity_provider_id  TEXT NOT NULL,
    status                 TEXT NOT NULL CHECK (status IN ('NEW', 'SENT', 'WORKING',
                               'PARTIALLY_FILLED', 'FILLED', 'CANCELLED', 'REJECTED')),
    fix_client_order_id    TEXT NOT NULL UNIQUE,
    lp_order_id            TEXT NOT NULL DEFAULT '',
    status_reason          TEXT NOT NULL DEFAULT 'UNSPECIFIED',
    status_message         TEXT NOT NULL DEFAULT '' CHECK (length(status_message) <= 500),
    -- The raw LP prices of the other side when the hedge was sent (ADR 0007: internalized
    -- client orders fill there).
    raw_bid                NUMERIC(30, 12),
    raw_ask                NUMERIC(30, 12),
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL,
    version                BIGINT NOT NULL CHECK (version >= 1)
);
CREATE INDEX hedge_orders_created ON oms.hedge_orders (created_at DESC);

CREATE TABLE oms.hedge_order_orders (
    hedge_order_id  UUID NOT NULL REFERENCES oms.hedge_orders (id),
    order_id        UUID NOT NULL REFERENCES oms.orders (id),
    PRIMARY KEY (hedge_order_id, order_id)
);
CREATE INDEX hedge_order_orders_order ON oms.hedge_order_orders (order_id);

CREATE TABLE oms.hedge_fills (
    id               UUID PRIMARY KEY,
    hedge_order_id   UUID NOT NULL REFERENCES oms.hedge_orders (id),
    lp_execution_id  TEXT NOT NULL,
    quantity         NUMERIC(30, 12) NOT NULL CHECK (quantity > 0),
    price            NUMERIC(30, 12) NOT NULL CHECK (price > 0),
    fill_time        TIMESTAMPTZ NOT NULL,
    UNIQUE (hedge_order_id, lp_execution_id)
);

-- Events -------------------------------------------------------------------------------------

-- The transactional outbox (services/platform/outbox.py).
CREATE TABLE oms.outbox (
    position    BIGSERIAL PRIMARY KEY,
    event_id    UUID NOT NULL UNIQUE,
    subject     TEXT NOT NULL,
    payload     BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at     TIMESTAMPTZ
);
CREATE INDEX outbox_unsent ON oms.outbox (position) WHERE sent_at IS NULL;

-- Events already applied (services/platform/inbox.py).
CREATE TABLE oms.inbox (
    event_id     TEXT PRIMARY KEY,
    subject      TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The copies, taken once from what exists (a new database has nothing yet: the seed fills them).
INSERT INTO oms.instruments (symbol, base_currency, quote_currency, digits, tick_size,
    contract_size, min_lot, max_lot, lot_step, margin_rate, trading_status, sessions, version)
SELECT symbol, base_currency, quote_currency, digits, tick_size, contract_size, min_lot, max_lot,
    lot_step, margin_rate, trading_status, sessions, version FROM pricing.instruments;
INSERT INTO oms.groups (group_id, name, currency, leverage, margin_call_level, stop_out_level,
    execution_mode, position_mode, commission_per_lot, max_deviation_points, version)
SELECT id, name, currency, leverage, margin_call_level, stop_out_level, execution_mode,
    position_mode, commission_per_lot, max_deviation_points, 0 FROM account.client_groups;
INSERT INTO oms.group_instruments (group_id, symbol, enabled, commission_per_lot, execution_mode,
    max_deviation_points, max_order_size, max_position, margin_rate, version)
SELECT group_id, symbol, enabled, commission_per_lot, execution_mode, max_deviation_points,
    max_order_size, max_position, margin_rate, 0 FROM account.group_instrument_settings;
INSERT INTO oms.accounts (account_id, user_id, group_id, currency, status, position_mode, version)
SELECT id, user_id, group_id, currency, status, position_mode, 0 FROM account.trading_accounts;
"""

GRANTS = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'oms') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA oms TO oms;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA oms TO oms;
    -- Append-only tables: the service may add rows, never change or remove them.
    REVOKE UPDATE, DELETE, TRUNCATE ON oms.trades, oms.audit_records FROM oms;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reporting') THEN
    GRANT USAGE ON SCHEMA oms TO reporting;
    GRANT SELECT ON ALL TABLES IN SCHEMA oms TO reporting;
  END IF;
END $$;
"""

DOWNGRADE = """
DROP TABLE oms.inbox, oms.outbox, oms.hedge_fills, oms.hedge_order_orders, oms.hedge_orders,
    oms.audit_records, oms.trades, oms.positions, oms.orders, oms.accounts, oms.instruments,
    oms.group_instruments, oms.groups;
DROP FUNCTION oms.refuse_change();
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(DOWNGRADE)

"""Pricing: the tick store (LP ticks and published prices, partitioned by day) and candles
(ADR 0006, "Tick store and candles").

- `lp_ticks` and `published_prices` are range-partitioned on `time`, one partition per UTC day,
  named `<table>_pYYYYMMDD`. `pricing.ensure_tick_partitions(days_ahead, days_back)` creates the
  missing ones, `pricing.drop_tick_partitions(retention_days)` drops those wholly older than the
  retention. Both are SECURITY DEFINER (owned by the migration user): PostgreSQL lets only the
  owner of a partitioned table add or drop its partitions, and the service role owns nothing.
  The partitions they create are owned by the migration user, so the default privileges of 0001
  cover them. Only the pricing role may execute them.
- `published_prices.id` comes from a sequence: the candle job's watermark. A writer holds
  `pg_advisory_xact_lock_shared(PUBLISHED_PRICES_WRITE_LOCK)` while it inserts, and the job
  takes the lock exclusively for an instant to read a cutoff id below which every row has
  committed (see services/pricing/candles.py).
- `candles`: OHLC of the bid and tick volume per group, symbol, timeframe and open time.
  `first_tick_time`/`last_tick_time` let a late row merge into a candle exactly (it becomes the
  open or the close only if it is earlier or later than what the candle holds).
- `candle_watermark`: the last `published_prices.id` folded into candles, per job.

Prices are NUMERIC(30, 12) as everywhere (ADR 0001).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Partitions made by the migration itself: today and the next days (the candle job keeps
# creating them ahead from then on).
INITIAL_DAYS_AHEAD = 2

UPGRADE = """
CREATE TABLE pricing.lp_ticks (
    time        TIMESTAMPTZ NOT NULL,
    lp          TEXT NOT NULL,
    symbol      TEXT NOT NULL,
    bid         NUMERIC(30, 12) NOT NULL,
    ask         NUMERIC(30, 12) NOT NULL,
    bid_size    NUMERIC(30, 12) NOT NULL,
    ask_size    NUMERIC(30, 12) NOT NULL,
    quote_id    TEXT NOT NULL,
    lp_time     TIMESTAMPTZ
) PARTITION BY RANGE (time);
CREATE INDEX lp_ticks_symbol_time ON pricing.lp_ticks (symbol, time);

CREATE SEQUENCE pricing.published_prices_id_seq AS BIGINT;

CREATE TABLE pricing.published_prices (
    id            BIGINT NOT NULL DEFAULT nextval('pricing.published_prices_id_seq'),
    time          TIMESTAMPTZ NOT NULL,
    group_id      UUID NOT NULL,
    symbol        TEXT NOT NULL,
    bid           NUMERIC(30, 12) NOT NULL,
    ask           NUMERIC(30, 12) NOT NULL,
    version       BIGINT NOT NULL,
    bid_lp        TEXT NOT NULL,
    ask_lp        TEXT NOT NULL,
    bid_quote_id  TEXT NOT NULL,
    ask_quote_id  TEXT NOT NULL,
    markup_type   TEXT NOT NULL CHECK (markup_type IN ('POINTS', 'PERCENT')),
    markup        NUMERIC(30, 12) NOT NULL
) PARTITION BY RANGE (time);
ALTER SEQUENCE pricing.published_prices_id_seq OWNED BY pricing.published_prices.id;
CREATE INDEX published_prices_group_symbol_time
    ON pricing.published_prices (group_id, symbol, time);
-- The candle job reads by id range (its watermark).
CREATE INDEX published_prices_id ON pricing.published_prices (id);

CREATE TABLE pricing.candles (
    group_id         UUID NOT NULL,
    symbol           TEXT NOT NULL,
    timeframe        TEXT NOT NULL CHECK (timeframe IN ('M1', 'M5', 'H1', 'D1')),
    open_time        TIMESTAMPTZ NOT NULL,
    open             NUMERIC(30, 12) NOT NULL,
    high             NUMERIC(30, 12) NOT NULL,
    low              NUMERIC(30, 12) NOT NULL,
    close            NUMERIC(30, 12) NOT NULL,
    tick_volume      BIGINT NOT NULL CHECK (tick_volume > 0),
    complete         BOOLEAN NOT NULL,
    first_tick_time  TIMESTAMPTZ NOT NULL,
    last_tick_time   TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, symbol, timeframe, open_time),
    CHECK (low <= open AND open <= high AND low <= close AND close <= high),
    CHECK (first_tick_time <= last_tick_time)
);
-- The few open candles, which the job marks complete once their period has ended.
CREATE INDEX candles_open ON pricing.candles (open_time) WHERE NOT complete;

CREATE TABLE pricing.candle_watermark (
    job         TEXT PRIMARY KEY,
    last_id     BIGINT NOT NULL CHECK (last_id >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO pricing.candle_watermark (job, last_id) VALUES ('candles', 0);

CREATE FUNCTION pricing.ensure_tick_partitions(days_ahead INTEGER, days_back INTEGER DEFAULT 0)
RETURNS INTEGER
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '5s'
AS $$
DECLARE
    today      DATE := (now() AT TIME ZONE 'UTC')::date;
    part_day   DATE;
    parent     TEXT;
    part_name  TEXT;
    created    INTEGER := 0;
BEGIN
    IF days_ahead < 0 OR days_back < 0 OR days_ahead + days_back > 366 THEN
        RAISE EXCEPTION 'days_ahead and days_back must be 0 or more, 366 at most together';
    END IF;
    -- One caller at a time: two concurrent CREATEs of the same partition would collide.
    PERFORM pg_advisory_xact_lock(hashtext('pricing.ensure_tick_partitions'));
    FOR part_day IN
        SELECT d::date FROM generate_series(today - days_back, today + days_ahead, '1 day') AS d
    LOOP
        FOREACH parent IN ARRAY ARRAY['lp_ticks', 'published_prices'] LOOP
            part_name := parent || '_p' || to_char(part_day, 'YYYYMMDD');
            IF to_regclass('pricing.' || part_name) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE pricing.%I PARTITION OF pricing.%I FOR VALUES FROM (%L) TO (%L)',
                    part_name, parent,
                    to_char(part_day, 'YYYY-MM-DD') || ' 00:00:00+00',
                    to_char(part_day + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
                created := created + 1;
            END IF;
        END LOOP;
    END LOOP;
    RETURN created;
END;
$$;

CREATE FUNCTION pricing.drop_tick_partitions(retention_days INTEGER)
RETURNS SETOF TEXT
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '5s'
AS $$
DECLARE
    -- Keeps today and the `retention_days` days before it; older days are dropped whole.
    oldest_kept  DATE := (now() AT TIME ZONE 'UTC')::date - retention_days;
    victim       RECORD;
BEGIN
    IF retention_days < 1 THEN
        RAISE EXCEPTION 'retention_days must be 1 or more, got %', retention_days;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('pricing.ensure_tick_partitions'));
    FOR victim IN
        SELECT child.relname AS name
        FROM pg_inherits
        JOIN pg_class child ON child.oid = pg_inherits.inhrelid
        JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
        JOIN pg_namespace ns ON ns.oid = parent.relnamespace
        WHERE ns.nspname = 'pricing'
          AND parent.relname IN ('lp_ticks', 'published_prices')
          AND child.relname ~ ('^' || parent.relname || '_p[0-9]{8}$')
          AND to_date(right(child.relname, 8), 'YYYYMMDD') < oldest_kept
        ORDER BY child.relname
    LOOP
        EXECUTE format('DROP TABLE pricing.%I', victim.name);
        RETURN NEXT victim.name;
    END LOOP;
END;
$$;

REVOKE ALL ON FUNCTION pricing.ensure_tick_partitions(INTEGER, INTEGER) FROM PUBLIC;
REVOKE ALL ON FUNCTION pricing.drop_tick_partitions(INTEGER) FROM PUBLIC;
"""

GRANTS = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pricing') THEN
    GRANT SELECT, INSERT ON pricing.lp_ticks, pricing.published_prices TO pricing;
    GRANT SELECT, INSERT, UPDATE ON pricing.candles, pricing.candle_watermark TO pricing;
    GRANT USAGE, SELECT ON SEQUENCE pricing.published_prices_id_seq TO pricing;
    GRANT EXECUTE ON FUNCTION pricing.ensure_tick_partitions(INTEGER, INTEGER),
        pricing.drop_tick_partitions(INTEGER) TO pricing;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reporting') THEN
    GRANT SELECT ON pricing.lp_ticks, pricing.published_prices, pricing.candles TO reporting;
  END IF;
END $$;
"""

DOWNGRADE = """
DROP FUNCTION pricing.drop_tick_partitions(INTEGER);
DROP FUNCTION pricing.ensure_tick_partitions(INTEGER, INTEGER);
DROP TABLE pricing.candle_watermark;
DROP TABLE pricing.candles;
DROP TABLE pricing.published_prices;
DROP TABLE pricing.lp_ticks;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(f"SELECT pricing.ensure_tick_partitions({INITIAL_DAYS_AHEAD})")
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(DOWNGRADE)

"""OMS: every answer an LP gives our orders is kept and acted on; operators' actions on LP
sessions and hedge orders are audited (ADR 0007, "What an LP may answer"; issue 13).

- `lp_execution_reports.validation_error`: why a stored report fails the strict FIX 4.4 data
  dictionary ('' when it passes). The order sessions parse with a lenient dictionary so that
  the variants real LPs send (ExecType 1/2 on 4.4, missing "required" fields) reach the OMS;
  the strict check is made afterwards, so such a report is stored, counted and understood.
- `lp_messages`: every other message an LP sends the order sessions (Reject 35=3, Business
  Message Reject 35=j, OrderCancelReject 35=9, DontKnowTrade 35=Q), every ExecutionReport the
  OMS cannot understand, and every incoming message the session itself refused: raw, before it
  is acted on. `status` RECEIVED (to apply), APPLIED (`outcome` says what it did) or PARKED (an
  operator must look: `outcome` says why). Unique per provider and `message_key` (MsgSeqNum and
  the original SendingTime), so a resend is stored once.
- `lp_sent_messages`: the MsgSeqNum of every NewOrderSingle, OrderStatusRequest and
  DontKnowTrade the order sessions sent, so a Reject (RefSeqNum) finds what it refuses.
- `operator_audit_records`: operators' actions that belong to no trading account (an LP order
  session's sequence numbers, the settlement of a hedge order), append-only and hash-chained
  (one chain, appended under an advisory lock); the client orders a settlement completes get
  their own records in their accounts' chains (`audit_records`).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE oms.lp_execution_reports ADD COLUMN validation_error TEXT NOT NULL DEFAULT '';

CREATE TABLE oms.lp_messages (
    id                     BIGSERIAL PRIMARY KEY,
    liquidity_provider_id  TEXT NOT NULL,
    message_key            TEXT NOT NULL,
    kind                   TEXT NOT NULL CHECK (kind IN ('REJECT', 'BUSINESS_REJECT',
                               'CANCEL_REJECT', 'DONT_KNOW_TRADE', 'UNREADABLE_REPORT',
                               'REFUSED_BY_SESSION', 'OTHER')),
    msg_type               TEXT NOT NULL,
    msg_seq_num            BIGINT NOT NULL,
    cl_ord_id              TEXT NOT NULL DEFAULT '',
    ref_seq_num            BIGINT,
    ref_msg_type           TEXT NOT NULL DEFAULT '',
    reason                 TEXT NOT NULL DEFAULT '',
    text                   TEXT NOT NULL DEFAULT '',
    validation_error       TEXT NOT NULL DEFAULT '',
    raw_message            TEXT NOT NULL,
    status                 TEXT NOT NULL CHECK (status IN ('RECEIVED', 'APPLIED', 'PARKED')),
    outcome                TEXT NOT NULL DEFAULT '',
    received_at            TIMESTAMPTZ NOT NULL,
    applied_at             TIMESTAMPTZ,
    UNIQUE (liquidity_provider_id, message_key)
);
CREATE INDEX lp_messages_received ON oms.lp_messages (id) WHERE status = 'RECEIVED';
CREATE INDEX lp_messages_parked ON oms.lp_messages (received_at) WHERE status = 'PARKED';
CREATE INDEX lp_messages_order ON oms.lp_messages (cl_ord_id);

CREATE TABLE oms.lp_sent_messages (
    id                     BIGSERIAL PRIMARY KEY,
    liquidity_provider_id  TEXT NOT NULL,
    msg_seq_num            BIGINT NOT NULL CHECK (msg_seq_num >= 1),
    msg_type               TEXT NOT NULL,
    cl_ord_id              TEXT NOT NULL,
    sent_at                TIMESTAMPTZ NOT NULL
);
CREATE INDEX lp_sent_messages_number ON oms.lp_sent_messages (liquidity_provider_id, msg_seq_num);
CREATE INDEX lp_sent_messages_order ON oms.lp_sent_messages (cl_ord_id);

CREATE TABLE oms.operator_audit_records (
    sequence        BIGINT PRIMARY KEY CHECK (sequence >= 1),
    action          TEXT NOT NULL,
    entity_type     TEXT NOT NULL CHECK (entity_type IN ('lp_order_session', 'hedge_order')),
    entity_id       TEXT NOT NULL,
    actor_kind      TEXT NOT NULL,
    actor_id        TEXT NOT NULL,
    reason          TEXT NOT NULL,
    before          TEXT NOT NULL DEFAULT '',
    after           TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    correlation_id  TEXT NOT NULL DEFAULT '',
    previous_hash   TEXT NOT NULL,
    hash            TEXT NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$')
);
CREATE INDEX operator_audit_records_entity ON oms.operator_audit_records (entity_id);
CREATE TRIGGER operator_audit_records_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON oms.operator_audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION oms.refuse_change();
"""

GRANTS = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'oms') THEN
    GRANT SELECT, INSERT, UPDATE ON oms.lp_messages TO oms;
    GRANT SELECT, INSERT ON oms.lp_sent_messages, oms.operator_audit_records TO oms;
    GRANT USAGE, SELECT ON SEQUENCE oms.lp_messages_id_seq, oms.lp_sent_messages_id_seq TO oms;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reporting') THEN
    GRANT SELECT ON oms.lp_messages, oms.lp_sent_messages, oms.operator_audit_records
        TO reporting;
  END IF;
END $$;
"""

DOWNGRADE = """
DROP TABLE oms.operator_audit_records, oms.lp_sent_messages, oms.lp_messages;
ALTER TABLE oms.lp_execution_reports DROP COLUMN validation_error;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(DOWNGRADE)

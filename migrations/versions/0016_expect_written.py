"""A change written as ONE statement checks what it wrote (ADR 0009, issue 14).

`<schema>.expect_written(counts, expected, names)`: the main query of a statement of
data-modifying WITH queries (`services/platform/sql.py`, `one_statement(..., check=...)`) passes
how many rows each checked write touched and how many it had to; on the first mismatch the
function raises SQLSTATE T0409 with that write's name as the message, which aborts the whole
statement, so nothing of it is written. The OMS writes a new order this way in one autocommit
statement, optimistically: the account's audit head moved on (another change committed), the
client_order_id was taken or a position changed meanwhile, and the statement changes nothing.

One function per schema that uses it (each service's role only reaches its own schema).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.expect_written(counts bigint[], expected bigint[], names text[])
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1 .. coalesce(array_length(counts, 1), 0) LOOP
    IF counts[i] IS DISTINCT FROM expected[i] THEN
      RAISE EXCEPTION USING ERRCODE = 'T0409', MESSAGE = names[i];
    END IF;
  END LOOP;
  RETURN true;
END $$;
"""
_SCHEMAS = ("oms",)


def upgrade() -> None:
    for schema in _SCHEMAS:
        op.execute(_FUNCTION.format(schema=schema))


def downgrade() -> None:
    for schema in _SCHEMAS:
        op.execute(f"DROP FUNCTION {schema}.expect_written(bigint[], bigint[], text[])")

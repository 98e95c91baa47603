"""OMS: the STP desk's sweep of orders committed WORKING (services/oms/stp/intake.py).

`orders_stp_unworked` holds only the STP orders the desk must work while they are WORKING:
market orders, and IOC / FOK limit orders. Every second the desk looks for those in no hedge
order whose hand-off after the commit was lost (issue 12 item 7); with this index that query
reads the orders in flight only, never the table. Orders leave the index as they fill or end.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE INDEX orders_stp_unworked ON oms.orders (created_at, id)
    WHERE execution_mode = 'STP' AND status = 'WORKING'
    AND (type = 'MARKET' OR (type = 'LIMIT' AND time_in_force IN ('IOC', 'FOK')));
"""

DOWNGRADE = """
DROP INDEX oms.orders_stp_unworked;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

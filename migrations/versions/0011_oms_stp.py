"""OMS: STP hedging (ADR 0007, "Execution modes").

- `hedge_order_orders` keeps, per client order of a hedge's window, the markup of the order's
  group's price when the hedge was made (`bid_markup`, `ask_markup`, in price units): each
  client fills at the hedge's (or the other side's raw) price plus its own group's markup, and
  the allocation may run after a restart, when that price is gone.
- `hedge_orders_open`: the hedge orders not ended yet, which a restart looks at.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE oms.hedge_order_orders
    ADD COLUMN bid_markup NUMERIC(30, 12) NOT NULL DEFAULT 0,
    ADD COLUMN ask_markup NUMERIC(30, 12) NOT NULL DEFAULT 0;
CREATE INDEX hedge_orders_open ON oms.hedge_orders (created_at)
    WHERE status IN ('NEW', 'SENT', 'WORKING', 'PARTIALLY_FILLED');
"""

DOWNGRADE = """
DROP INDEX oms.hedge_orders_open;
ALTER TABLE oms.hedge_order_orders DROP COLUMN bid_markup, DROP COLUMN ask_markup;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

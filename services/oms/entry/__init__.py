"""Order entry and fills: the placement pipeline, execution decisions, booking a fill."""

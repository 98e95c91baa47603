"""The oms service. Orders, executions, positions and STP hedging (issue #6)."""

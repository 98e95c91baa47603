"""SQL and the unit of change, event messages, list reads and the operators' audit records."""

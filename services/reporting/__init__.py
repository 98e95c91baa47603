"""The reporting service. Statements, performance, history and exports, read from the replica."""

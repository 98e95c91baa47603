"""The notification service. Notifications from domain events: per-user stream, history, email."""

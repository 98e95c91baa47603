"""The trigger engine (working limit/stop orders, stop-loss/take-profit) and DAY expiry."""

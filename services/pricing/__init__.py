"""The pricing service: instruments, LP connectivity over FIX, aggregation, markups, quote streams
and candles (issue #5)."""

"""The reporting service's pure logic: performance maths, statement arithmetic, CSV rows.

No gRPC, SQL or NATS here: each function takes plain values and returns plain values, so it is
unit-tested on fixed inputs (tests/unit/reporting).
"""

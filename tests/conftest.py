"""The whole suite: outgoing events are checked against their contracts (`bus.contract_checks`),
in the test process and in every stack the integration tests start (services inherit the
environment)."""

import os

import pytest

# The shared helpers of the integration tests assert too: their failures are explained as a test's.
pytest.register_assert_rewrite("tests.integration.support")

os.environ["TM_CHECK_EVENTS"] = "1"
# The test stacks roll over only when a test asks (OrderAdminService.RunRollover, ADR 0010): a
# rollover coming due during a run would charge swap on every test's positions. One account per
# rollover transaction, so that a rollover interrupted mid-run has committed part of its work.
os.environ.setdefault("TM_OMS_ROLLOVER_AUTO", "0")
os.environ.setdefault("TM_OMS_ROLLOVER_BATCH", "1")
# A day's daily statements are made this many seconds after its rollover completed (the SWAP
# bookings and the replica catch up in about a second on a loaded test stack; 30 s by default).
os.environ.setdefault("TM_NOTIFICATION_DAILY_STATEMENT_DELAY_S", "5")

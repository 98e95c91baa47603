"""The whole suite: outgoing events are checked against their contracts (`bus.contract_checks`),
in the test process and in every stack the integration tests start (services inherit the
environment)."""

import os

os.environ["TM_CHECK_EVENTS"] = "1"

"""Fixtures: a real in-process gRPC server with the platform's interceptors, and a channel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.unit.platform.pricing_harness import Harness
from tests.unit.platform.pricing_harness import start_harness
from tests.unit.platform.pricing_harness import stop_harness


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    running = await start_harness()
    try:
        yield running
    finally:
        await stop_harness(running)

"""Fixtures every unit test may use."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No TM_* variables; and the root logger as it was, since a service's run() configures
    logging."""
    for name in list(os.environ):
        if name.startswith("TM_"):
            monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield monkeypatch
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)

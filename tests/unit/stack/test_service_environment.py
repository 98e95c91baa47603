"""What a service process inherits from `up`'s environment (stack/components/services.py): its
settings come from the stack only, except the few named switches passed on."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.platform.secrets import Secret
from stack.components.base import Context
from stack.components.services import Service
from stack.paths import StackPaths
from stack.ports import Ports


def _environment(name: str) -> dict[str, str]:
    ctx = Context(StackPaths.for_name("unit"), Ports(20000), Path("/repo"), "INFO")
    return Service(ctx, name).environment("http://127.0.0.1:20004", Secret("token"))


@pytest.mark.parametrize("value", ["1", "0"])
def test_the_event_contract_checks_follow_ups_environment(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TM_CHECK_EVENTS", value)

    assert _environment("oms")["TM_CHECK_EVENTS"] == value
    assert _environment("risk")["TM_CHECK_EVENTS"] == value


def test_the_event_contract_checks_are_off_unless_asked_and_other_settings_stay_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TM_CHECK_EVENTS", raising=False)
    monkeypatch.setenv("TM_DATABASE_PORT", "1")  # a shell's own setting must not leak in

    env = _environment("account")

    assert env["TM_CHECK_EVENTS"] == "0"
    assert env["TM_DATABASE_PORT"] == "20000"

"""The LP simulators' FIX logins, read from the stack's Vault."""

from __future__ import annotations

from pathlib import Path

from stack import secrets as stack_secrets
from stack.secrets import Login
from stack.vault import VaultAdmin
from tests.integration.conftest import RunningStack


def lp_logins(running_stack: RunningStack) -> dict[str, Login]:
    state = running_stack.state
    token = Path(state.vault.root_token_file).read_text().strip()
    known = stack_secrets.read(VaultAdmin(state.vault.address, token))
    assert known is not None
    return known.lp

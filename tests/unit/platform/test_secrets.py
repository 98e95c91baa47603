"""Secret never shows its value; Vault fails with messages that name the problem, not secrets."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import pickle
import socket

import pytest

from services.platform.logging import JsonFormatter
from services.platform.secrets import Secret
from services.platform.secrets import Vault
from services.platform.secrets import VaultError
from services.platform.secrets import postgres_path


def test_secret_reveals_its_value_only_on_request() -> None:
    assert Secret("hunter2").reveal() == "hunter2"


@pytest.mark.parametrize(
    "shown",
    [
        pytest.param(lambda s: repr(s), id="repr"),
        pytest.param(lambda s: str(s), id="str"),
        pytest.param(lambda s: f"{s}", id="f-string"),
        pytest.param(lambda s: f"{s!r}", id="f-string repr"),
        pytest.param(lambda s: repr({"password": s}), id="inside a dict"),
        pytest.param(lambda s: json.dumps({"password": s}, default=str), id="json"),
    ],
)
def test_secret_never_prints_its_value(shown: object) -> None:
    text = shown(Secret("hunter2"))  # type: ignore[operator]

    assert "hunter2" not in text
    assert "***" in text


def test_secret_logged_as_an_extra_field_is_masked() -> None:
    record = logging.LogRecord("test", logging.INFO, __file__, 1, "login", None, None)
    record.password = Secret("hunter2")

    line = JsonFormatter("oms").format(record)

    assert "hunter2" not in line
    assert json.loads(line)["password"] == "Secret('***')"


def test_secret_cannot_be_pickled() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret("hunter2"))


def test_settings_with_secrets_can_be_copied_and_turned_into_dicts() -> None:
    @dataclasses.dataclass(frozen=True)
    class Login:
        password: Secret

    as_dict = dataclasses.asdict(Login(Secret("hunter2")))

    assert repr(as_dict) == "{'password': Secret('***')}"
    assert copy.deepcopy(as_dict)["password"].reveal() == "hunter2"


def test_secrets_compare_by_value_but_do_not_hash() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    with pytest.raises(TypeError):
        hash(Secret("a"))


def test_postgres_credentials_are_per_service() -> None:
    assert postgres_path("oms") == "tradingmesh/postgres/oms"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_unreachable_vault_is_a_vault_error_without_the_token() -> None:
    address = f"http://127.0.0.1:{_closed_port()}"

    with pytest.raises(VaultError) as raised:
        Vault.with_token(address, Secret("s.hunter2"), timeout=2)

    assert str(raised.value) == f"vault: cannot check the token at {address}: Vault is unreachable"


def test_unreachable_vault_refuses_an_approle_login_without_the_secret_id() -> None:
    address = f"http://127.0.0.1:{_closed_port()}"

    with pytest.raises(VaultError) as raised:
        Vault.with_approle(address, "role-1", Secret("hunter2"), timeout=2)

    assert "log in with AppRole" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_read_takes_the_path_under_the_mount() -> None:
    vault = Vault(client=None, address="http://127.0.0.1:17004")

    with pytest.raises(ValueError, match="under the secret/ mount"):
        vault.read("secret/tradingmesh/edge")

"""Settings.from_env: every TM_* variable of ADR 0004, typed, failing fast and all at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.platform.secrets import Secret
from services.platform.settings import Address
from services.platform.settings import Settings
from services.platform.settings import SettingsError

GOOD = {
    "TM_SERVICE": "oms",
    "TM_GRPC_ADDR": "127.0.0.1:17120",
    "TM_METRICS_ADDR": "127.0.0.1:17220",
    "TM_LOG_LEVEL": "debug",
    "TM_VAULT_ADDR": "http://127.0.0.1:17004",
    "TM_VAULT_TOKEN": "s.dev-token",
    "TM_DATABASE_HOST": "127.0.0.1",
    "TM_DATABASE_PORT": "17000",
    "TM_DATABASE_NAME": "tradingmesh",
    "TM_DATABASE_REPLICA_HOST": "replica.internal",
    "TM_DATABASE_REPLICA_PORT": "5433",
    "TM_REDIS_HOST": "127.0.0.1",
    "TM_REDIS_PORT": "17001",
    "TM_NATS_URL": "nats://127.0.0.1:17002",
}


def _env(**changes: str | None) -> dict[str, str]:
    """GOOD with some variables changed; None removes one."""
    env = dict(GOOD)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _problems(env: dict[str, str]) -> tuple[str, ...]:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    return raised.value.problems


def test_complete_environment_gives_typed_settings() -> None:
    settings = Settings.from_env(GOOD)

    assert settings.service == "oms"
    assert settings.grpc_addr == Address("127.0.0.1", 17120)
    assert settings.metrics_addr == Address("127.0.0.1", 17220)
    assert settings.log_level == "DEBUG"
    assert settings.vault_addr == "http://127.0.0.1:17004"
    assert settings.vault_token == Secret("s.dev-token")
    assert (settings.database_host, settings.database_port) == ("127.0.0.1", 17000)
    assert settings.database_name == "tradingmesh"
    assert (settings.database_replica_host, settings.database_replica_port) == (
        "replica.internal",
        5433,
    )
    assert (settings.redis_host, settings.redis_port) == ("127.0.0.1", 17001)
    assert settings.nats_url == "nats://127.0.0.1:17002"


def test_log_level_defaults_to_info() -> None:
    assert Settings.from_env(_env(TM_LOG_LEVEL=None)).log_level == "INFO"


def test_replica_defaults_to_the_primary() -> None:
    settings = Settings.from_env(_env(TM_DATABASE_REPLICA_HOST=None, TM_DATABASE_REPLICA_PORT=None))

    assert (settings.database_replica_host, settings.database_replica_port) == ("127.0.0.1", 17000)


def test_approle_login_replaces_the_token() -> None:
    settings = Settings.from_env(
        _env(TM_VAULT_TOKEN=None, TM_VAULT_ROLE_ID="role-1", TM_VAULT_SECRET_ID="secret-1")
    )

    assert settings.vault_token is None
    assert settings.vault_role_id == "role-1"
    assert settings.vault_secret_id == Secret("secret-1")


def test_ipv6_listen_address_is_accepted() -> None:
    settings = Settings.from_env(_env(TM_GRPC_ADDR="[::1]:17120"))

    assert settings.grpc_addr == Address("[::1]", 17120)
    assert settings.grpc_addr.bare_host == "::1"
    assert str(settings.grpc_addr) == "[::1]:17120"


def test_empty_environment_names_every_missing_variable_at_once() -> None:
    problems = _problems({})

    assert problems == (
        "TM_SERVICE is missing",
        "TM_GRPC_ADDR is missing",
        "TM_METRICS_ADDR is missing",
        "TM_VAULT_ADDR is missing",
        "TM_VAULT_TOKEN (or TM_VAULT_ROLE_ID + TM_VAULT_SECRET_ID) is missing",
        "TM_DATABASE_HOST is missing",
        "TM_DATABASE_PORT is missing",
        "TM_DATABASE_NAME is missing",
        "TM_REDIS_HOST is missing",
        "TM_REDIS_PORT is missing",
        "TM_NATS_URL is missing",
    )


def test_blank_value_counts_as_missing() -> None:
    assert _problems(_env(TM_SERVICE="  ")) == ("TM_SERVICE is missing",)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TM_SERVICE", "Order Service"),
        ("TM_GRPC_ADDR", "17120"),
        ("TM_GRPC_ADDR", "127.0.0.1:http"),
        ("TM_METRICS_ADDR", "127.0.0.1:70000"),
        ("TM_LOG_LEVEL", "TRACE"),
        ("TM_VAULT_ADDR", "127.0.0.1:17004"),
        ("TM_DATABASE_PORT", "0"),
        ("TM_DATABASE_PORT", "-5432"),
        ("TM_DATABASE_NAME", "trading mesh"),
        ("TM_DATABASE_REPLICA_PORT", "abc"),
        ("TM_REDIS_HOST", "redis host"),
        ("TM_NATS_URL", "http://127.0.0.1:17002"),
    ],
)
def test_malformed_variable_is_named_with_what_it_must_be(name: str, value: str) -> None:
    [problem] = _problems(_env(**{name: value}))

    assert problem.startswith(f"{name} must be ")
    assert problem.endswith(f"got {value!r}")


def test_every_malformed_variable_is_reported_together() -> None:
    problems = _problems(_env(TM_DATABASE_PORT="x", TM_REDIS_PORT="y", TM_NATS_URL=None))

    assert [p.split()[0] for p in problems] == ["TM_DATABASE_PORT", "TM_REDIS_PORT", "TM_NATS_URL"]


def test_url_with_credentials_is_refused_without_echoing_them() -> None:
    [problem] = _problems(_env(TM_NATS_URL="nats://svc:hunter2@127.0.0.1:17002"))

    assert problem == "TM_NATS_URL must not hold credentials (they come from Vault)"
    assert "hunter2" not in problem


def test_token_and_approle_together_are_refused() -> None:
    problems = _problems(_env(TM_VAULT_ROLE_ID="role-1", TM_VAULT_SECRET_ID="secret-1"))

    assert problems == ("set TM_VAULT_TOKEN or TM_VAULT_ROLE_ID + TM_VAULT_SECRET_ID, not both",)


@pytest.mark.parametrize(
    ("given", "missing"),
    [("TM_VAULT_ROLE_ID", "TM_VAULT_SECRET_ID"), ("TM_VAULT_SECRET_ID", "TM_VAULT_ROLE_ID")],
)
def test_half_an_approle_login_names_the_missing_half(given: str, missing: str) -> None:
    [problem] = _problems(_env(TM_VAULT_TOKEN=None, **{given: "value"}))

    assert problem.startswith(f"{missing} is missing")


def test_settings_never_print_the_vault_credentials() -> None:
    settings = Settings.from_env(
        _env(TM_VAULT_TOKEN=None, TM_VAULT_ROLE_ID="role-1", TM_VAULT_SECRET_ID="secret-xyz")
    )
    with_token = Settings.from_env(_env(TM_VAULT_TOKEN="s.token-xyz"))

    assert "secret-xyz" not in repr(settings)
    assert "token-xyz" not in repr(with_token)
    assert "Secret('***')" in repr(with_token)


def test_the_certificate_lifetime_defaults_to_a_day_and_takes_vault_durations() -> None:
    assert Settings.from_env(_env()).tls_cert_ttl == "24h"
    assert Settings.from_env(_env(TM_TLS_CERT_TTL="90s")).tls_cert_ttl == "90s"
    for bad in ("24", "h", "0m", "1.5h", "1d", "-5s"):
        (problem,) = _problems(_env(TM_TLS_CERT_TTL=bad))
        assert problem.startswith("TM_TLS_CERT_TTL"), problem


def test_the_infrastructure_ca_file_is_optional_and_must_be_a_readable_file(
    tmp_path: Path,
) -> None:
    assert Settings.from_env(GOOD).tls_ca_file is None  # the system's trust store
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert Settings.from_env(_env(TM_TLS_CA_FILE=str(ca))).tls_ca_file == str(ca)

    missing = str(tmp_path / "nowhere.pem")
    assert _problems(_env(TM_TLS_CA_FILE=missing)) == (
        f"TM_TLS_CA_FILE must be a readable file, got {missing!r}",
    )

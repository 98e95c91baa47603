"""stack/pki.py: one role per identity, naming only it; certificate files written safely."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

import pytest

from services.platform.certificates import Issued
from services.platform.secrets import Secret
from stack import pki
from stack.ports import SERVICES


def test_a_service_certificate_names_the_service_and_nothing_else() -> None:
    for service in SERVICES:
        role = pki._role(service)
        assert role["allowed_domains"] == [service]
        assert not role["allow_localhost"]
        assert not role["allow_ip_sans"]
        assert not role["allow_subdomains"]
        assert not role["allow_wildcard_certificates"]


@pytest.mark.parametrize("identity", ["edge", "operator", "postgres", "redis", "nats", "lp-alpha"])
def test_servers_reached_by_address_may_also_name_localhost(identity: str) -> None:
    role = pki._role(identity)
    assert role["allowed_domains"] == [identity, "localhost"]
    assert role["allow_localhost"]
    assert role["allow_ip_sans"]


def test_a_policy_may_issue_for_its_own_identity_only() -> None:
    assert pki.issue_policy("oms") == 'path "pki/issue/oms" {\n  capabilities = ["update"]\n}'


def test_an_unknown_identity_is_refused_before_vault_is_asked() -> None:
    with pytest.raises(ValueError, match="unknown identity 'mallory'"):
        pki.issue(None, "mallory")  # type: ignore[arg-type]  # never reached


def _issued(identity: str, key: str) -> Issued:
    now = datetime.datetime.now(datetime.UTC)
    return Issued(identity, b"CERT\n", Secret(key), b"CA\n", now, now)


def test_files_are_written_key_owner_only_and_replaced_whole(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    first = pki.write_files(directory, _issued("redis", "KEY-1"))
    second = pki.write_files(directory, _issued("redis", "KEY-2"))

    assert first == second
    assert second.key.read_text() == "KEY-2"
    assert stat.S_IMODE(second.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert (second.certificate.read_bytes(), second.ca.read_bytes()) == (b"CERT\n", b"CA\n")
    assert sorted(p.name for p in directory.iterdir()) == ["ca.pem", "redis-key.pem", "redis.pem"]

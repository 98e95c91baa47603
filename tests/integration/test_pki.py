"""The platform's CA in OpenBao (ADR 0018): who may issue which certificate, what is on disk,
and `tradingmesh certs rotate`."""

from __future__ import annotations

import ssl
from pathlib import Path

import hvac  # type: ignore[import-untyped]
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from hvac.exceptions import Forbidden  # type: ignore[import-untyped]

from stack import secrets as stack_secrets
from stack.cli import main as cli
from stack.state import StackState
from stack.vault import VaultAdmin
from tests.integration.conftest import RunningStack


def _vault(state: StackState) -> VaultAdmin:
    return VaultAdmin(state.vault.address, Path(state.vault.root_token_file).read_text().strip())


def _tls(state: StackState) -> Path:
    return Path(state.state_dir) / "tls"


def _certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_a_service_may_issue_a_certificate_for_itself_only(running_stack: RunningStack) -> None:
    state = running_stack.state
    token = stack_secrets.issue_service_token(_vault(state), "oms")
    client = hvac.Client(url=state.vault.address, token=token.reveal())

    def issue(role: str, name: str) -> dict[str, str]:
        response = client.secrets.pki.generate_certificate(
            name=role, common_name=name, extra_params={"ttl": "60s"}, mount_point="pki"
        )
        data: dict[str, str] = response["data"]
        return data

    own = x509.load_pem_x509_certificate(issue("oms", "oms")["certificate"].encode())
    assert own.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "oms"
    with pytest.raises(Forbidden):
        issue("risk", "risk")  # another service's role
    with pytest.raises(Forbidden):
        issue("edge", "edge")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        issue("oms", "risk")  # its own role, another name


def test_the_ca_key_stays_in_openbao_and_the_files_chain_to_its_certificate(
    running_stack: RunningStack,
) -> None:
    state = running_stack.state
    vault = _vault(state)
    issuer = vault.client.read("pki/issuer/default")["data"]
    assert "private_key" not in issuer
    ca = x509.load_pem_x509_certificate(issuer["certificate"].encode())
    tls = _tls(state)
    assert _certificate(tls / "ca.pem") == ca

    for identity in ("edge", "operator"):
        certificate = _certificate(tls / f"{identity}.pem")
        certificate.verify_directly_issued_by(ca)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert identity in names.value.get_values_for_type(x509.DNSName)
        assert (tls / f"{identity}-key.pem").stat().st_mode & 0o777 == 0o600


def test_certs_rotate_renews_the_files_of_every_running_reader(
    running_stack: RunningStack, capsys: pytest.CaptureFixture[str]
) -> None:
    state = running_stack.state
    tls = _tls(state)
    before = {i: _certificate(tls / f"{i}.pem").serial_number for i in ("edge", "operator")}

    assert cli(["certs", "rotate", "--name", running_stack.config.name]) == 0

    printed = capsys.readouterr().out
    assert "envoy" in printed
    assert "operator" in printed
    after = {i: _certificate(tls / f"{i}.pem").serial_number for i in ("edge", "operator")}
    assert all(after[i] != before[i] for i in before)
    # The new key matches the new certificate (a client using the pair is accepted).
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.load_cert_chain(tls / "operator.pem", tls / "operator-key.pem")


def test_certs_rotate_on_a_stack_that_never_ran_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli(["certs", "rotate", "--name", "never-ran-here"]) == 1
    assert "never run" in capsys.readouterr().err

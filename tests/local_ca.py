"""A certificate authority of the tests' own, made with `cryptography` (no Vault): certificates
shaped as the platform CA's roles issue them (CN and DNS SAN = the identity), for unit tests of
mutual TLS, as the edge's certificate where Envoy only validates its config, and, in integration
tests, as "another CA" that the platform must refuse. The tests' one certificate builder."""

from __future__ import annotations

import datetime
import socket
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.platform.certificates import CertificateSource
from services.platform.certificates import Issued
from services.platform.secrets import Secret

__all__ = ["LocalCA", "LocalCertificateSource", "served_certificate", "write_files"]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class LocalCA:
    def __init__(self, name: str = "tests' own CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self._name = _name(name)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_pem = self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        identity: str,
        lifetime: datetime.timedelta = datetime.timedelta(hours=1),
        *,
        not_before: datetime.datetime | None = None,
    ) -> Issued:
        """A certificate of `identity`, valid for `lifetime` from now or from `not_before`
        (backdated 30 s when not given, for a clock a little behind)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        start, end = now - datetime.timedelta(seconds=30), now + lifetime
        if not_before is not None:
            start, end = not_before, not_before + lifetime
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(identity))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(identity)]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return Issued(
            identity=identity,
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
            key_pem=Secret(key_pem.decode()),
            ca_pem=self.ca_pem,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
        )

    def write_ca(self, path: Path) -> Path:
        """This CA's certificate as a file (what a client given "a CA file" reads)."""
        path.write_bytes(self.ca_pem)
        return path

    def source(self, identity: str) -> LocalCertificateSource:
        """A `CertificateSource` of `identity` that this CA issues and renews."""
        return LocalCertificateSource(self, identity)


class LocalCertificateSource(CertificateSource):
    """`CertificateSource` with the certificates of a `LocalCA` instead of Vault's."""

    def __init__(self, ca: LocalCA, identity: str) -> None:
        self._ca = ca
        super().__init__(vault=_NoVault(), identity=identity)  # type: ignore[arg-type]

    def _issue(self) -> Issued:
        return self._ca.issue(self.identity)


class _NoVault:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError("a LocalCertificateSource never asks Vault")


def write_files(issued: Issued, certificate: Path, key: Path, ca: Path) -> None:
    """An issued certificate, its key (0600) and its CA's certificate, as files."""
    certificate.write_bytes(issued.certificate_pem)
    key.touch(mode=0o600)
    key.write_text(issued.key_pem.reveal())
    ca.write_bytes(issued.ca_pem)


def served_certificate(address: str, certificate: Path, key: Path, ca: Path) -> x509.Certificate:
    """The certificate a TLS server (a service's gRPC port) presents in a new handshake, asked
    with the client certificate `certificate` and `key` (files), trusting `ca` only."""
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False  # the certificate names a service, not the address
    context.set_alpn_protocols(["h2"])
    context.load_cert_chain(certificate, key)
    host, port = address.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)

"""A throwaway CA and a server certificate for 127.0.0.1/localhost, for the tests that render
the edge's config without a stack (`envoy --mode validate`: tests/unit/contracts,
tests/k8s). The stack's own certificates come from OpenBao's PKI engine (stack/pki.py).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.platform.secrets import Secret

VALIDITY = datetime.timedelta(days=30)


@dataclass(frozen=True)
class EdgeCertificates:
    ca_pem: bytes
    server_cert_pem: bytes
    server_key_pem: Secret


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tradingmesh local stack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def issue(stack_name: str) -> EdgeCertificates:
    now = datetime.datetime.now(datetime.UTC)
    # Backdate a little so a client whose clock is slightly behind still accepts the certificate.
    not_before = now - datetime.timedelta(minutes=5)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"tradingmesh dev CA ({stack_name})")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(now + VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return EdgeCertificates(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        server_cert_pem=server_cert.public_bytes(serialization.Encoding.PEM),
        server_key_pem=Secret(key_pem.decode()),
    )


def write(certificates: EdgeCertificates, certificate: Path, key: Path, ca: Path) -> None:
    """The server certificate, its key (0600) and the CA certificate, as files."""
    certificate.write_bytes(certificates.server_cert_pem)
    key.touch(mode=0o600)
    key.write_text(certificates.server_key_pem.reveal())
    ca.write_bytes(certificates.ca_pem)

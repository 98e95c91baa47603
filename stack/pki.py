"""The platform's certificate authority: OpenBao's PKI secrets engine (ADR 0018).

    pki/                         the engine; its root CA's private key never leaves OpenBao
    pki/roles/<identity>         one role per identity: a certificate names that identity only
    pki/issue/<identity>         a service's policy may issue for its own identity, nothing else

Identities are the six services (a service's stream workers are that service), `edge` (Envoy:
the clients' server certificate and its client certificate towards the services), the
infrastructure it runs (`postgres`, `redis`, `nats`, the LP simulators) and `operator` (the
stack itself, tests and tools such as grpcurl calling a service directly).

A service issues its own certificate with its Vault token at start and renews it while it runs
(`services.platform.certificates`); the private key stays in its memory. The processes that read
their certificate from files (Envoy, PostgreSQL, Redis, NATS, QuickFIX) get theirs from
`write_files`: in the stack's state directory, the key owner-only (0600).

OpenBao's dev server keeps everything in memory: a new OpenBao is a new CA, and every process
holding a certificate of the old one is restarted with the other secrets' holders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import Final

from hvac.exceptions import InvalidPath  # type: ignore[import-untyped]

from services.platform.certificates import PKI_MOUNT
from services.platform.certificates import Issued
from services.platform.certificates import parse_issued
from stack.ports import LP_SIMULATORS
from stack.ports import SERVICES
from stack.vault import VaultAdmin

CA_TTL: Final = "87600h"  # ten years: the local root; production plugs in its own (ADR 0018)
# The longest certificate a role issues. Services renew at two thirds of their lifetime
# (TM_TLS_CERT_TTL, default 24h); the files the stack writes live as long as the stack's run
# (`tradingmesh certs rotate` renews them in place).
MAX_TTL: Final = "720h"
FILE_TTL: Final = "720h"
EDGE: Final = "edge"
OPERATOR: Final = "operator"
INFRASTRUCTURE: Final = ("postgres", "redis", "nats", *LP_SIMULATORS)
IDENTITIES: Final = (*SERVICES, EDGE, OPERATOR, *INFRASTRUCTURE)
# Names a certificate may carry besides its identity: servers reached on this host by address.
LOCAL_NAMES: Final = ("localhost",)
LOCAL_IPS: Final = ("127.0.0.1",)


@dataclass(frozen=True)
class CertificateFiles:
    """Where `write_files` put an identity's certificate, key (0600) and the CA."""

    certificate: Path
    key: Path
    ca: Path


def _pki(vault: VaultAdmin) -> Any:
    return vault.client.secrets.pki


def ensure_ca(vault: VaultAdmin, stack_name: str) -> tuple[bytes, bool]:
    """The CA certificate (PEM), generating the root inside OpenBao if there is none yet, and
    every identity's role. Returns (ca_pem, new): a new CA means every holder of a certificate
    of the old one must be restarted."""
    client = vault.client
    mounts = client.sys.list_mounted_secrets_engines()
    listed = mounts.get("data", mounts)
    new = False
    if f"{PKI_MOUNT}/" not in listed:
        client.sys.enable_secrets_engine(
            backend_type="pki", path=PKI_MOUNT, config={"max_lease_ttl": CA_TTL}
        )
    ca_pem = _read_ca(vault)
    if ca_pem is None:
        _pki(vault).generate_root(
            type="internal",
            common_name=f"tradingmesh internal CA ({stack_name})",
            extra_params={"key_type": "ec", "key_bits": 256, "ttl": CA_TTL},
            mount_point=PKI_MOUNT,
        )
        ca_pem = _read_ca(vault)
        new = True
    if ca_pem is None:
        raise RuntimeError("openbao: the PKI engine has no CA after generating one")
    for identity in IDENTITIES:
        _pki(vault).create_or_update_role(
            identity,
            extra_params=_role(identity),
            mount_point=PKI_MOUNT,
        )
    return ca_pem, new


def _role(identity: str) -> dict[str, Any]:
    """A role that issues certificates naming `identity` (and, for servers reached by address,
    localhost and 127.0.0.1) and nothing else; usable by servers and clients alike."""
    local = identity not in SERVICES
    return {
        "allowed_domains": [identity, *(LOCAL_NAMES if local else ())],
        "allow_bare_domains": True,
        "allow_subdomains": False,
        "allow_localhost": local,
        "allow_ip_sans": local,
        "allow_wildcard_certificates": False,
        "enforce_hostnames": False,
        "server_flag": True,
        "client_flag": True,
        "key_type": "ec",
        "key_bits": 256,
        "max_ttl": MAX_TTL,
        "no_store": False,
        # Backdated a little, so that a peer whose clock is slightly behind accepts it.
        "not_before_duration": "30s",
    }


def _read_ca(vault: VaultAdmin) -> bytes | None:
    try:
        pem = _pki(vault).read_ca_certificate(mount_point=PKI_MOUNT)
    except InvalidPath:
        return None
    return pem.encode() if pem else None


def issue(vault: VaultAdmin, identity: str, ttl: str = FILE_TTL) -> Issued:
    """A new certificate for `identity` (one of `IDENTITIES`), with the local names if it is
    one the stack runs as a server on this host."""
    if identity not in IDENTITIES:
        raise ValueError(f"unknown identity {identity!r}")
    local = identity not in SERVICES
    params: dict[str, Any] = {"ttl": ttl, "format": "pem", "private_key_format": "pkcs8"}
    if local:
        params["alt_names"] = ",".join(LOCAL_NAMES)
        params["ip_sans"] = ",".join(LOCAL_IPS)
    response = _pki(vault).generate_certificate(
        name=identity, common_name=identity, extra_params=params, mount_point=PKI_MOUNT
    )
    return parse_issued(identity, response["data"])


def write_files(
    directory: Path, issued: Issued, *, owner: tuple[int, int] | None = None
) -> CertificateFiles:
    """Writes `<identity>.pem`, `<identity>-key.pem` (0600) and `ca.pem` into `directory`, each
    replaced atomically (a process watching the files sees either the old or the new one).

    `owner` (uid, gid): the key's owner, for a server that runs as another system user
    (PostgreSQL started by root runs as `postgres`, and refuses a key it does not own)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = CertificateFiles(
        certificate=directory / f"{issued.identity}.pem",
        key=directory / f"{issued.identity}-key.pem",
        ca=directory / "ca.pem",
    )
    _replace(files.key, issued.key_pem.reveal().encode(), 0o600, owner)
    _replace(files.certificate, issued.certificate_pem, 0o644, owner)
    _replace(files.ca, issued.ca_pem, 0o644, None)
    return files


def _replace(path: Path, content: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    if owner is not None:
        os.chown(temporary, *owner)
    os.replace(temporary, path)


def issue_policy(identity: str) -> str:
    """The Vault policy lines that let a process issue certificates for `identity` only."""
    return f'path "{PKI_MOUNT}/issue/{identity}" {{\n  capabilities = ["update"]\n}}'

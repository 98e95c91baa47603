"""A process's own TLS certificate, issued by Vault's PKI engine and renewed while it runs
(ADR 0018).

A service asks `pki/issue/<its service name>` with its own Vault token (its policy allows no
other identity) for a short-lived certificate (`TM_TLS_CERT_TTL`, default 24h), keeps the private
key in memory only, and renews at two thirds of the certificate's lifetime. Whoever uses the
certificate (the gRPC server's credentials, the internal channels, QuickFIX's files) subscribes
and takes the new one without a restart.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import Final

from cryptography import x509
from prometheus_client import Gauge

from services.platform.secrets import Secret
from services.platform.secrets import Vault
from services.platform.secrets import VaultError

__all__ = [
    "PKI_MOUNT",
    "CertificateSource",
    "Issued",
    "own_certificate",
    "parse_issued",
    "set_own_certificate",
]

PKI_MOUNT: Final = "pki"
"""Where the platform's CA lives in Vault (OpenBao's PKI secrets engine)."""
RENEW_AT: Final = 2 / 3
"""The fraction of its lifetime after which a certificate is renewed."""

_log = logging.getLogger(__name__)

# What Prometheus alerts on (monitoring/prometheus/rules: ServiceCertificateRenewalOverdue,
# ServiceCertificateExpiring): a renewal that keeps failing shows long before the certificate ends.
_EXPIRY = Gauge(
    "tradingmesh_certificate_expiry_timestamp_seconds",
    "When the process's own TLS certificate expires (not-after), Unix seconds",
    ["identity"],
)
_RENEW_AFTER = Gauge(
    "tradingmesh_certificate_renew_after_timestamp_seconds",
    "When the process's own TLS certificate is due for renewal, Unix seconds",
    ["identity"],
)


@dataclass(frozen=True)
class Issued:
    """A certificate of one identity, its private key (PEM, PKCS#8) and the issuing CA's."""

    identity: str
    certificate_pem: bytes
    key_pem: Secret
    ca_pem: bytes
    not_before: datetime.datetime
    not_after: datetime.datetime

    @property
    def renew_after(self) -> datetime.datetime:
        """When to renew: `RENEW_AT` of the way from not-before to not-after."""
        return self.not_before + (self.not_after - self.not_before) * RENEW_AT


def parse_issued(identity: str, data: dict[str, Any]) -> Issued:
    """`Issued` from the data of a `pki/issue/<role>` answer."""
    certificate_pem = str(data["certificate"]).encode() + b"\n"
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    return Issued(
        identity=identity,
        certificate_pem=certificate_pem,
        key_pem=Secret(str(data["private_key"]) + "\n"),
        ca_pem=str(data["issuing_ca"]).encode() + b"\n",
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


Subscriber = Callable[[Issued], None]


class CertificateSource:
    """The certificate of one identity: issued at once, renewed by `renew_forever`.

    hvac is synchronous: the constructor issues (start-up, before serving) and renewals run in a
    worker thread. Subscribers run on the event loop's thread after each renewal.
    """

    def __init__(self, vault: Vault, identity: str, ttl: str = "24h") -> None:
        self._vault = vault
        self._identity = identity
        self._ttl = ttl
        self._subscribers: list[Subscriber] = []
        self._current = self._issue()
        self._export()

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def current(self) -> Issued:
        return self._current

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call `subscriber(new)` after every renewal."""
        self._subscribers.append(subscriber)

    def _issue(self) -> Issued:
        try:
            response = self._vault.client.secrets.pki.generate_certificate(
                name=self._identity,
                common_name=self._identity,
                extra_params={"ttl": self._ttl, "format": "pem", "private_key_format": "pkcs8"},
                mount_point=PKI_MOUNT,
            )
        except Exception as error:  # hvac's and requests' errors alike: say what failed
            raise VaultError(
                f"vault: cannot issue a certificate for {self._identity}: {type(error).__name__}"
            ) from error
        return parse_issued(self._identity, response["data"])

    def _export(self) -> None:
        _EXPIRY.labels(self._identity).set(self._current.not_after.timestamp())
        _RENEW_AFTER.labels(self._identity).set(self._current.renew_after.timestamp())

    async def renew(self) -> Issued:
        """Issues a new certificate now and tells the subscribers."""
        self._current = await asyncio.to_thread(self._issue)
        self._export()
        for subscriber in self._subscribers:
            try:
                subscriber(self._current)
            except Exception:
                _log.exception("a certificate subscriber failed", extra={"id": self._identity})
        _log.info(
            "certificate renewed",
            extra={"identity": self._identity, "not_after": self._current.not_after.isoformat()},
        )
        return self._current

    async def renew_forever(self, *, retry_after: float = 30.0) -> None:
        """Renews at `RENEW_AT` of each certificate's lifetime until cancelled; a failed renewal
        is logged and retried (the current certificate stays valid until its not-after)."""
        while True:
            now = datetime.datetime.now(datetime.UTC)
            await asyncio.sleep(max((self._current.renew_after - now).total_seconds(), 0.0))
            try:
                await self.renew()
            except VaultError as error:
                _log.warning("certificate renewal failed", extra={"error": str(error)})
                await asyncio.sleep(retry_after)


_own: CertificateSource | None = None


def set_own_certificate(source: CertificateSource | None) -> None:
    """Makes `source` the process's own certificate (`server.run` does, before building the
    service)."""
    global _own
    _own = source


def own_certificate() -> CertificateSource:
    """The process's own certificate, as `server.run` issued it."""
    if _own is None:
        raise RuntimeError("no certificate issued for this process (services.platform.server.run)")
    return _own

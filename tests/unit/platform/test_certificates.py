"""CertificateSource: a process's own certificate from Vault's PKI engine, renewed in place."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest

from services.platform.certificates import CertificateSource
from services.platform.certificates import Issued
from services.platform.certificates import parse_issued
from services.platform.secrets import Vault
from services.platform.secrets import VaultError
from tests.local_ca import LocalCA

CA = LocalCA()


def _pem(name: str, not_before: datetime.datetime, lifetime: datetime.timedelta) -> str:
    """A certificate of `name` as Vault's PKI answer holds it (no final newline)."""
    issued = CA.issue(name, lifetime, not_before=not_before)
    return issued.certificate_pem.decode().strip()


class _Pki:
    """The slice of hvac's PKI API that CertificateSource calls; counts and records calls."""

    def __init__(self, lifetime: datetime.timedelta) -> None:
        self.lifetime = lifetime
        self.calls: list[dict[str, Any]] = []
        self.fail = False

    def generate_certificate(self, **call: Any) -> dict[str, Any]:
        self.calls.append(call)
        if self.fail:
            raise ConnectionError("vault is away")
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        return {
            "data": {
                "certificate": _pem(call["common_name"], now, self.lifetime),
                "private_key": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----",
                "issuing_ca": "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----",
            }
        }


def _source(lifetime: datetime.timedelta, ttl: str = "24h") -> tuple[CertificateSource, _Pki]:
    pki = _Pki(lifetime)
    client = type("Client", (), {"secrets": type("Secrets", (), {"pki": pki})()})()
    return CertificateSource(Vault(client, "http://vault"), "oms", ttl), pki


def test_a_certificate_is_issued_for_the_identity_with_the_lifetime_asked() -> None:
    source, pki = _source(datetime.timedelta(hours=24), ttl="90s")

    (call,) = pki.calls
    assert (call["name"], call["common_name"], call["mount_point"]) == ("oms", "oms", "pki")
    assert call["extra_params"]["ttl"] == "90s"
    assert source.current.identity == "oms"
    assert "PRIVATE KEY" not in repr(source.current)  # the key is a Secret


def test_it_is_renewed_at_two_thirds_of_its_lifetime() -> None:
    start = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)
    issued = parse_issued(
        "risk",
        {
            "certificate": _pem("risk", start, datetime.timedelta(hours=3)),
            "private_key": "k",
            "issuing_ca": "c",
        },
    )

    assert isinstance(issued, Issued)
    assert (issued.not_before, issued.not_after) == (start, start + datetime.timedelta(hours=3))
    assert issued.renew_after == start + datetime.timedelta(hours=2)


def test_renewal_replaces_the_certificate_and_tells_every_subscriber() -> None:
    source, pki = _source(datetime.timedelta(seconds=3))
    first = source.current
    seen: list[Issued] = []
    source.subscribe(seen.append)
    source.subscribe(lambda _: (_ for _ in ()).throw(RuntimeError("a broken subscriber")))
    source.subscribe(seen.append)

    async def run() -> None:
        task = asyncio.create_task(source.renew_forever())
        await asyncio.sleep(2.5)  # 2 s = two thirds of 3 s: one renewal, not two
        task.cancel()

    asyncio.run(run())

    assert len(pki.calls) == 2
    assert source.current is not first
    assert seen == [source.current, source.current]  # the broken one did not stop the others


def test_a_failed_issue_says_which_identity_and_keeps_the_current_certificate() -> None:
    source, pki = _source(datetime.timedelta(hours=24))
    first = source.current
    pki.fail = True

    with pytest.raises(VaultError, match="cannot issue a certificate for oms"):
        asyncio.run(source.renew())
    assert source.current is first

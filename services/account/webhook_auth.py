"""How a webhook call is authenticated (WebhookService contract): source address, HMAC signature,
freshness. Pure: no I/O; the servicer passes the header, the raw body, the clock and the
provider's configuration.

Providers are configured in Vault at `secret/tradingmesh/account/webhooks`: one key per provider
name, whose value is a JSON object

    {"kind": "payment" | "kyc", "secrets": ["<hmac key>", ...], "allow": ["127.0.0.1/32", ...]}

`secrets` lists the current key first; during a rotation it holds the old one too.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from typing import Literal

from services.platform.errors import DomainError
from services.platform.secrets import Secret
from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = [
    "SIGNATURE_HEADER",
    "TOLERANCE_SECONDS",
    "WEBHOOKS_PATH",
    "Provider",
    "check_source",
    "parse_providers",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER: Final = "x-tradingmesh-signature"  # gRPC metadata keys are lower-case
TOLERANCE_SECONDS: Final = 300
WEBHOOKS_PATH: Final = "tradingmesh/account/webhooks"
_HEX64: Final = re.compile(r"^[0-9a-f]{64}$")
_R = ErrorReason

Kind = Literal["payment", "kyc"]


@dataclass(frozen=True)
class Provider:
    name: str
    kind: Kind
    secrets: tuple[Secret, ...]
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def parse_providers(data: Mapping[str, str]) -> dict[str, Provider]:
    """The providers in the Vault secret; raises ValueError for a malformed entry (fail fast)."""
    providers: dict[str, Provider] = {}
    for name, raw in data.items():
        config = json.loads(raw)
        kind = config.get("kind")
        secrets = config.get("secrets")
        allow = config.get("allow")
        if kind not in ("payment", "kyc") or not secrets or not isinstance(allow, list):
            raise ValueError(f"webhook provider {name!r}: needs kind, secrets and allow")
        providers[name] = Provider(
            name=name,
            kind=kind,
            secrets=tuple(Secret(str(s)) for s in secrets),
            allow=tuple(ipaddress.ip_network(str(a), strict=False) for a in allow),
        )
    return providers


def check_source(provider: Provider, client_ip: str) -> None:
    """WEBHOOK_SOURCE_NOT_ALLOWED unless `client_ip` (as the edge saw it) is on the allow-list."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        address = None
    if address is None or not any(address in network for network in provider.allow):
        raise DomainError(
            _R.ERROR_REASON_WEBHOOK_SOURCE_NOT_ALLOWED,
            f"this address may not call the webhook of {provider.name}",
        )


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The lower-case hex HMAC-SHA256 of `<t>.<body>` (what a provider sends as v1)."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _invalid(message: str) -> DomainError:
    return DomainError(_R.ERROR_REASON_WEBHOOK_SIGNATURE_INVALID, message)


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise _invalid("the signature header is malformed")
        if key == "t":
            if timestamp is not None or not value.isdigit() or len(value) > 12:
                raise _invalid("the signature header has no valid t=")
            timestamp = int(value)
        elif key == "v1":
            if not _HEX64.fullmatch(value):
                raise _invalid("a v1= signature is not 64 lower-case hex digits")
            signatures.append(value)
        # Other schemes (v0=, v2=) are ignored, so providers can add one without breaking us.
    if timestamp is None or not signatures:
        raise _invalid("the signature header needs t= and at least one v1=")
    return timestamp, signatures


def verify_signature(provider: Provider, headers: Sequence[str], body: bytes, now: float) -> int:
    """Checks the `X-Tradingmesh-Signature` header(s), then freshness; returns `t`.

    WEBHOOK_SIGNATURE_INVALID when the header is missing, repeated, malformed or no v1 matches
    any of the provider's secrets (compared in constant time); WEBHOOK_STALE when `t` is more
    than 300 s away from `now`.
    """
    if len(headers) != 1:
        raise _invalid("exactly one X-Tradingmesh-Signature header is required")
    timestamp, signatures = _parse_header(headers[0])
    expected = [sign(secret.reveal(), timestamp, body) for secret in provider.secrets]
    matched = False
    for given in signatures:
        for want in expected:
            matched |= hmac.compare_digest(given, want)
    if not matched:
        raise _invalid("the signature does not match")
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise DomainError(
            _R.ERROR_REASON_WEBHOOK_STALE,
            f"the signature timestamp is more than {TOLERANCE_SECONDS} s from the server's clock",
            metadata={"timestamp": str(timestamp), "tolerance_seconds": str(TOLERANCE_SECONDS)},
        )
    return timestamp

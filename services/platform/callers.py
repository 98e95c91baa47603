"""Who may call whom: the one table of the identities each service accepts (ADR 0018).

A caller's identity is the name in its certificate (its subject's common name; the platform CA's
roles issue each identity's name and no other, `stack/pki.py`). Every service accepts the edge
(`edge`, Envoy, which carries every client's call) and the operator (`operator`: the stack's
probes, the tests, grpcurl), and the services that really call it. Any other certificate from
the CA is refused with PERMISSION_DENIED (`interceptors.CertificateIdentityInterceptor`).

A service's stream workers and replicas are that service: they hold its certificate.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["ACCEPTED_CALLERS", "EDGE", "OPERATOR", "accepted_callers"]

EDGE: Final = "edge"
OPERATOR: Final = "operator"

_EVERYONE_OUTSIDE: Final = frozenset({EDGE, OPERATOR})

ACCEPTED_CALLERS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "account": _EVERYONE_OUTSIDE,
        "pricing": _EVERYONE_OUTSIDE,
        # The stop-out of risk's margin watcher closes positions through the OMS's internal API.
        "oms": _EVERYONE_OUTSIDE | {"risk"},
        # The OMS's pre-trade check; the account service's margin and withdrawal checks.
        "risk": _EVERYONE_OUTSIDE | {"oms", "account"},
        # Notification's daily statements read reporting's internal API (ADR 0011).
        "reporting": _EVERYONE_OUTSIDE | {"notification"},
        "notification": _EVERYONE_OUTSIDE,
    }
)
"""Service -> the certificate names it accepts calls from."""


def accepted_callers(service: str) -> frozenset[str]:
    """The identities `service` accepts; KeyError names an unknown service."""
    try:
        return ACCEPTED_CALLERS[service]
    except KeyError:
        raise KeyError(f"{service!r} is not a service of the platform (callers.py)") from None

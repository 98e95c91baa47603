"""Credentials: a `Secret` that never prints, and `Vault`, where every credential comes from.

Vault (OpenBao locally) holds the credentials in its kv v2 engine mounted at `secret/`, under
`tradingmesh/` (ADR 0004). A service reads them once at start; its token is renewed while it runs.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any
from typing import Final

import hvac  # type: ignore[import-untyped]  # hvac ships no type information
import hvac.exceptions  # type: ignore[import-untyped]

__all__ = [
    "EDGE_PATH",
    "KV_MOUNT",
    "NATS_PATH",
    "REDIS_PATH",
    "Secret",
    "Vault",
    "VaultError",
    "postgres_path",
]

KV_MOUNT: Final = "secret"
"""The kv v2 mount that holds every tradingmesh secret."""
EDGE_PATH: Final = "tradingmesh/edge"
"""`token`: proves that a call came through Envoy (ADR 0004, identity from the edge)."""
REDIS_PATH: Final = "tradingmesh/redis"
"""`password` of Redis."""
NATS_PATH: Final = "tradingmesh/nats"
"""`username` and `password` of NATS."""

_log = logging.getLogger(__name__)


def postgres_path(service: str) -> str:
    """`username` and `password` of the service's own PostgreSQL role."""
    return f"tradingmesh/postgres/{service}"


class Secret:
    """A credential. It prints as `Secret('***')`; only `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value, for the one call that needs it (a login, a connection, a comparison)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time, so that comparing secrets does not leak them through timing.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    # Equal secrets must hash alike, and a hash of the value could leak it: not hashable.
    __hash__ = None  # type: ignore[assignment]

    # Immutable: a copy is the same secret (and dataclasses.asdict() deep-copies fields).
    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self

    def __reduce__(self) -> str | tuple[Any, ...]:
        # Pickling would write the value wherever the pickle goes (caches, queues, crash dumps).
        raise TypeError("a Secret cannot be pickled")


class VaultError(Exception):
    """Vault could not be reached or refused a request. The message never holds a secret."""


class Vault:
    """A logged-in Vault client: reads kv v2 secrets and keeps its token alive.

    hvac is synchronous: `read` is meant for start-up (before or between serving), and
    `renew_forever` moves its calls to a worker thread.
    """

    def __init__(self, client: Any, address: str) -> None:
        self._client = client
        self._address = address

    @classmethod
    def with_token(cls, address: str, token: Secret, *, timeout: float = 10.0) -> Vault:
        """A client that uses the given token (the dev stack gives each service its own)."""
        vault = cls(hvac.Client(url=address, token=token.reveal(), timeout=timeout), address)
        vault._check_token()
        return vault

    @classmethod
    def with_approle(
        cls, address: str, role_id: str, secret_id: Secret, *, timeout: float = 10.0
    ) -> Vault:
        """A client logged in with AppRole (Kubernetes); its token is the login's token."""
        client = hvac.Client(url=address, timeout=timeout)
        vault = cls(client, address)
        with vault._errors("log in with AppRole"):
            client.auth.approle.login(role_id=role_id, secret_id=secret_id.reveal())
        return vault

    @property
    def client(self) -> Any:
        """The logged-in hvac client, for engines other than kv (e.g. transit signing).

        Synchronous: call it from a worker thread while serving."""
        return self._client

    def read(self, path: str) -> dict[str, Secret]:
        """The latest version of the kv v2 secret at `path` under the `secret/` mount.

        `path` is relative to the mount, e.g. "tradingmesh/edge" for `secret/tradingmesh/edge`.
        """
        if path.startswith(f"{KV_MOUNT}/"):
            # The mount is implied; "secret/secret/..." would be a confusing NOT FOUND later.
            raise ValueError(f"give the path under the {KV_MOUNT}/ mount, not {path!r}")
        with self._errors(f"read {KV_MOUNT}/{path}"):
            response = self._client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=KV_MOUNT, raise_on_deleted_version=True
            )
        data = response.get("data", {}).get("data")
        if not isinstance(data, Mapping):
            raise VaultError(f"vault: {KV_MOUNT}/{path} at {self._address} holds no data")
        return {str(key): Secret(str(value)) for key, value in data.items()}

    def read_keys(self, path: str, *keys: str) -> tuple[Secret, ...]:
        """The given keys of the secret at `path`, in order; a missing key is a `VaultError`."""
        data = self.read(path)
        missing = [key for key in keys if key not in data]
        if missing:
            raise VaultError(
                f"vault: {KV_MOUNT}/{path} at {self._address} lacks key(s) {', '.join(missing)}"
            )
        return tuple(data[key] for key in keys)

    def renew(self) -> float | None:
        """Renews the token once; returns its new TTL in seconds, or None if it never expires."""
        with self._errors("look up the token"):
            info = self._client.auth.token.lookup_self()["data"]
        if not info.get("renewable") or not info.get("ttl"):
            # A root or periodic-less dev token: it does not expire and cannot be renewed.
            return None
        with self._errors("renew the token"):
            renewed = self._client.auth.token.renew_self()
        return float(renewed["auth"]["lease_duration"])

    async def renew_forever(self, *, retry_after: float = 30.0) -> None:
        """Renews the token at half its TTL until cancelled; returns if it never expires.

        A failed renewal is logged and retried: the service keeps serving with what it read at
        start, and an expired token only matters at the next start.
        """
        while True:
            try:
                ttl = await asyncio.to_thread(self.renew)
            except VaultError as error:
                _log.warning("vault token renewal failed", extra={"error": str(error)})
                await asyncio.sleep(retry_after)
                continue
            if ttl is None:
                return
            await asyncio.sleep(max(ttl / 2, 1.0))

    def _check_token(self) -> None:
        with self._errors("check the token"):
            self._client.auth.token.lookup_self()

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turns hvac and transport errors into a `VaultError` saying what failed, and why.

        hvac's messages hold Vault's response text and URLs, never a credential we sent; the
        reasons here are what an operator needs, so they replace them.
        """
        try:
            yield
        except hvac.exceptions.VaultError as error:
            reason = next(
                (text for kind, text in _REASONS if isinstance(error, kind)),
                "Vault answered with an error",
            )
            raise VaultError(f"vault: cannot {action} at {self._address}: {reason}") from error
        except OSError as error:  # requests' errors are OSErrors: refused, DNS, timeout, TLS
            raise VaultError(
                f"vault: cannot {action} at {self._address}: Vault is unreachable"
            ) from error


_REASONS: Final[tuple[tuple[type[Exception], str], ...]] = (
    (hvac.exceptions.Unauthorized, "the token or AppRole credentials were refused"),
    # Vault answers 403 both for a token it does not know and for a path the policy denies.
    (hvac.exceptions.Forbidden, "permission denied (an invalid or expired token, or its policy)"),
    (hvac.exceptions.InvalidPath, "nothing at this path"),
    (hvac.exceptions.InvalidRequest, "the request was refused as invalid"),
    (hvac.exceptions.VaultDown, "Vault is sealed or down"),
)

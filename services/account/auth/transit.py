"""Vault's transit engine as the signer of access tokens: the private key never leaves Vault.

The stack creates `transit/keys/access-token` (rsa-2048, not exportable) and gives the account
service's policy `sign`, `read` and `rotate` on it and nothing else (stack/secrets.py). hvac is
synchronous; every call here runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from typing import Final

import hvac.exceptions  # type: ignore[import-untyped]  # hvac ships no type information

from services.account.auth.keys import KEY_NAME
from services.account.auth.tokens import b64url
from services.platform.errors import DomainError
from services.platform.secrets import Vault
from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = ["Transit"]

MOUNT: Final = "transit"


class Transit:
    """Sign with a given key version, list the versions' public keys, rotate."""

    def __init__(self, vault: Vault, *, mount: str = MOUNT, key: str = KEY_NAME) -> None:
        # The platform's Vault client is logged in (token or AppRole) and renewed; transit
        # uses the same login. (Vault exposes only kv reads, hence the private attribute.)
        self._client: Any = vault.client
        self._mount = mount
        self._key = key

    async def sign(self, version: int, message: bytes) -> str:
        """The RS256 signature (RSASSA-PKCS1-v1_5, SHA-256) of `message`, base64url, by
        `version` of the key: exactly a JWS signature."""
        response = await self._call(
            self._client.secrets.transit.sign_data,
            name=self._key,
            key_version=version,
            hash_input=base64.b64encode(message).decode("ascii"),
            hash_algorithm="sha2-256",
            signature_algorithm="pkcs1v15",
            marshaling_algorithm="jws",
            mount_point=self._mount,
        )
        signature: str = response["data"]["signature"]
        # "vault:v<version>:<signature>"; with jws marshaling the signature is base64url.
        prefix, _, encoded = signature.rpartition(":")
        if prefix != f"vault:v{version}":
            raise RuntimeError(f"transit signed with {prefix!r}, not version {version}")
        return b64url(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))

    async def public_keys(self) -> dict[int, str]:
        """Every live version of the key and its public key in PEM form."""
        response = await self._call(
            self._client.secrets.transit.read_key, name=self._key, mount_point=self._mount
        )
        keys: dict[str, Any] = response["data"]["keys"]
        return {int(version): str(entry["public_key"]) for version, entry in keys.items()}

    async def rotate(self) -> int:
        """Adds a new version of the key; returns its number. It signs nothing until asked."""
        await self._call(
            self._client.secrets.transit.rotate_key, name=self._key, mount_point=self._mount
        )
        return max(await self.public_keys())

    async def _call(self, function: Any, **arguments: Any) -> Any:
        try:
            return await asyncio.to_thread(function, **arguments)
        except (hvac.exceptions.VaultError, OSError) as error:
            raise DomainError(
                ErrorReason.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
                "the token signing service is unavailable; try again shortly",
            ) from error

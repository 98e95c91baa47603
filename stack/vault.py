"""A typed sliver of hvac: what the stack does with OpenBao (the Vault API) as its root."""

from __future__ import annotations

from typing import Any
from typing import cast

import hvac  # type: ignore[import-untyped]
from hvac.exceptions import InvalidPath  # type: ignore[import-untyped]

KV_MOUNT = "secret"  # `bao server -dev` mounts kv v2 here


class VaultAdmin:
    def __init__(self, address: str, token: str) -> None:
        self._client: Any = hvac.Client(url=address, token=token, timeout=5)

    @property
    def client(self) -> Any:
        """The hvac client, for engines without a method here (PKI: `stack.pki`)."""
        return self._client

    def read(self, path: str) -> dict[str, str] | None:
        """The latest version of kv v2 secret `path` (under `secret/`), or None."""
        try:
            response = self._client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=KV_MOUNT, raise_on_deleted_version=True
            )
        except InvalidPath:
            return None
        return cast(dict[str, str], response["data"]["data"])

    def write(self, path: str, data: dict[str, str]) -> None:
        self._client.secrets.kv.v2.create_or_update_secret(
            path=path, secret=data, mount_point=KV_MOUNT
        )

    def put_policy(self, name: str, hcl: str) -> None:
        self._client.sys.create_or_update_policy(name=name, policy=hcl)

    def create_token(self, policies: list[str], display_name: str, period: str) -> str:
        """A periodic token: valid as long as its holder renews it within `period`."""
        response = self._client.auth.token.create(
            policies=policies,
            display_name=display_name,
            period=period,
            renewable=True,
            meta={"created_by": "tradingmesh-stack"},
        )
        return cast(str, response["auth"]["client_token"])

    def ensure_transit_key(self, mount: str, name: str, key_type: str) -> None:
        """Enables the transit engine at `mount` and creates key `name` unless they exist.

        Existing keys are left as they are: their versions are the platform's signing keys.
        """
        mounts = self._client.sys.list_mounted_secrets_engines()
        listed = mounts.get("data", mounts)
        if f"{mount}/" not in listed:
            self._client.sys.enable_secrets_engine(backend_type="transit", path=mount)
        try:
            self._client.secrets.transit.read_key(name=name, mount_point=mount)
        except InvalidPath:
            self._client.secrets.transit.create_key(
                name=name, key_type=key_type, exportable=False, mount_point=mount
            )

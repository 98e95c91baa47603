"""Token signing keys (ADR 0005): the ACTIVE key signs through Vault transit, the published
ones make the JWKS; administrators rotate them (the lifecycle itself is keys.py's, pure)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from prometheus_client import Gauge

from services.account.audit import append_audit
from services.account.auth.keys import Rotation
from services.account.auth.keys import RotationRefusedError
from services.account.auth.keys import SigningKeyRecord
from services.account.auth.keys import active_key
from services.account.auth.keys import jwk_of
from services.account.auth.keys import plan_rotation
from services.account.auth.keys import published_keys
from services.account.auth.tokens import AccessClaims
from services.account.auth.tokens import signing_input
from services.account.auth.tokens import utc_now
from services.account.auth.transit import Transit
from services.account.store import auth as auth_store
from services.platform.access import ADMIN
from services.platform.access import require_roles
from services.platform.errors import DomainError
from services.platform.identity import Caller
from services.platform.metrics import REGISTRY
from services.platform.paging import bad_token
from services.platform.paging import page_size as paged
from services.platform.resources import Resources
from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = ["SigningKeys", "signing_key_json"]

_log = logging.getLogger(__name__)
SIGNING_KEY_ACTIVATED = Gauge(
    "tradingmesh_account_signing_key_activated_timestamp_seconds",
    "When the key that signs access tokens now became active (Unix time): its age tells when "
    "a scheduled rotation is due (ADR 0005); set at each signing",
    registry=REGISTRY,
)
_R = ErrorReason


class SigningKeys:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._transit = Transit(resources.vault)
        self._keys_checked = False
        self._keys_lock = asyncio.Lock()

    async def ensure_keys(self) -> None:
        """Registers the transit key's latest version as the first ACTIVE key if none is known.

        If the known keys are not transit's (a new dev OpenBao, whose keys live in memory), they
        can sign nothing any more: they are dropped and the current version registered.
        """
        if self._keys_checked:
            return
        async with self._keys_lock:
            if self._keys_checked:
                return
            versions = await self._transit.public_keys()
            now = utc_now()
            async with self._resources.db.transaction() as session:
                await auth_store.lock_signing_keys(session)
                known = await auth_store.signing_keys(session)
                stale = [k for k in known if versions.get(k.version) != k.public_key_pem]
                if stale:
                    _log.warning(
                        "signing keys unknown to Vault transit were dropped",
                        extra={"kids": [k.kid for k in stale]},
                    )
                    await auth_store.delete_signing_keys(session)
                    known = []
                if not known:
                    latest = max(versions)
                    first = SigningKeyRecord(latest, versions[latest], now, activate_at=now)
                    await auth_store.insert_signing_key(session, first)
            self._keys_checked = True

    async def _keys(self) -> list[SigningKeyRecord]:
        await self.ensure_keys()
        async with self._resources.db.read_session() as session:
            return await auth_store.signing_keys(session)

    async def sign(self, claims: AccessClaims) -> str:
        """The compact JWS of `claims`, signed by the key ACTIVE now (never simply the latest)."""
        key = active_key(await self._keys(), utc_now())
        if key is None:
            raise DomainError(
                _R.ERROR_REASON_DEPENDENCY_UNAVAILABLE, "no token signing key is active"
            )
        if key.activate_at is not None:
            SIGNING_KEY_ACTIVATED.set(key.activate_at.timestamp())
        message = signing_input(key.kid, claims.payload())
        signature = await self._transit.sign(key.version, message)
        return f"{message.decode('ascii')}.{signature}"

    async def jwks(self) -> list[dict[str, str]]:
        """The keys that verify tokens now (PUBLISHED, ACTIVE, RETIRED), newest first."""
        return [
            jwk_of(k.kid, k.public_key_pem) for k in published_keys(await self._keys(), utc_now())
        ]

    async def rotate_signing_key(
        self, caller: Caller, *, revoke_previous_key: bool, reason: str
    ) -> Rotation:
        caller = require_roles([ADMIN], caller)
        await self.ensure_keys()
        async with self._resources.db.transaction() as session:
            await auth_store.lock_signing_keys(session)
            keys = await auth_store.signing_keys(session)
            now = utc_now()
            newest = max((k.version for k in keys), default=0)
            try:
                # Checked before Vault makes a version that would then never be used.
                plan_rotation(
                    keys,
                    new_version=newest + 1,
                    new_public_key_pem="",
                    now=now,
                    revoke_previous_key=revoke_previous_key,
                )
                version = await self._transit.rotate()
                pem = (await self._transit.public_keys())[version]
                rotation = plan_rotation(
                    keys,
                    new_version=version,
                    new_public_key_pem=pem,
                    now=now,
                    revoke_previous_key=revoke_previous_key,
                )
            except RotationRefusedError as refused:
                raise DomainError(_R.ERROR_REASON_INVALID_STATE, str(refused)) from refused
            before = {k.version: k for k in keys}
            await auth_store.insert_signing_key(session, rotation.new_key)
            await append_audit(
                session,
                actor=caller,
                action="signing_key.rotate",
                entity_type="signing_key",
                entity_id=rotation.new_key.kid,
                before=None,
                after={
                    **signing_key_json(rotation.new_key, now),
                    "revoke_previous_key": revoke_previous_key,
                    "reason": reason,
                },
            )
            for changed in rotation.changed:
                await auth_store.update_signing_key_times(session, changed)
                # Removed now (an emergency rotation), or retiring on the new key's activation.
                await append_audit(
                    session,
                    actor=caller,
                    action="signing_key.remove"
                    if changed.remove_at == now
                    else "signing_key.retire",
                    entity_type="signing_key",
                    entity_id=changed.kid,
                    before=signing_key_json(before[changed.version], now),
                    after={**signing_key_json(changed, now), "reason": reason},
                )
        return rotation

    async def list_signing_keys(
        self, caller: Caller, *, page_size: int, page_token: str
    ) -> tuple[list[SigningKeyRecord], str]:
        require_roles([ADMIN], caller)
        now = utc_now()
        keys = published_keys(await self._keys(), now)
        if page_token:
            try:
                below = int(page_token)
            except ValueError:
                raise bad_token() from None
            keys = [k for k in keys if k.version < below]
        limit = paged(page_size)
        following = str(keys[limit - 1].version) if len(keys) > limit else ""
        return keys[:limit], following


def signing_key_json(key: SigningKeyRecord, now: datetime) -> dict[str, Any]:
    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "kid": key.kid,
        "status": key.status(now).value,
        "activate_time": iso(key.activate_at),
        "retire_time": iso(key.retire_at),
        "remove_time": iso(key.remove_at),
    }

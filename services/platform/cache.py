"""Redis: live prices, pub/sub and session state. The password is in Vault (ADR 0004)."""

from __future__ import annotations

import redis.asyncio

from services.platform.infra_tls import redis_tls
from services.platform.secrets import REDIS_PATH
from services.platform.secrets import Vault
from services.platform.settings import Settings

__all__ = ["connect_redis"]


def connect_redis(settings: Settings, vault: Vault) -> redis.asyncio.Redis:
    """A client for the settings' Redis, with the password from `secret/tradingmesh/redis`,
    over TLS (Redis has no plaintext port), its certificate checked against `TM_TLS_CA_FILE`.

    Connections open on first use; close the client with `await client.aclose()` on shutdown.
    """
    (password,) = vault.read_keys(REDIS_PATH, "password")
    return redis.asyncio.Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        password=password.reveal(),
        client_name=f"tradingmesh-{settings.instance_name}",
        socket_connect_timeout=5,
        socket_timeout=10,
        # Detect connections that died while idle before a command is sent on them.
        health_check_interval=30,
        socket_keepalive=True,
        **redis_tls(settings.tls_ca_file),
    )

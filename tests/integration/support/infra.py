"""The tests' clients of the stack's PostgreSQL, Redis and NATS: over TLS, each server checked
against the stack's CA (ADR 0018, `services.platform.infra_tls`), as the services connect.

PostgreSQL URLs made by the stack (`admin_url`, `RunningStack.database_urls`) carry the TLS
parameters already; `connect_postgres` is for connections made from parts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nats
import psycopg
import redis
from nats.aio.client import Client as NatsClient
from psycopg.conninfo import make_conninfo

from services.platform.infra_tls import client_context
from services.platform.infra_tls import libpq_params
from services.platform.infra_tls import redis_tls
from stack.ports import HOST


async def connect_nats(
    url: str, user: str, password: str, ca_file: str | Path, **options: Any
) -> NatsClient:
    """A NATS connection over TLS (the server requires it) with the stack's login."""
    return await nats.connect(
        url, user=user, password=password, tls=client_context(ca_file), **options
    )


def redis_client(port: int, password: str, ca_file: str | Path) -> redis.Redis:
    """A Redis client of the stack's TLS port (there is no other)."""
    return redis.Redis(host=HOST, port=port, password=password, **redis_tls(ca_file))


def connect_postgres(ca_file: str | Path, **params: Any) -> psycopg.Connection[Any]:
    """A psycopg connection with `params` (host, port, user...), `sslmode=verify-full`."""
    return psycopg.connect(make_conninfo("", **libpq_params(ca_file)), **params)

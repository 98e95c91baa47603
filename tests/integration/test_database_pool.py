"""The shared database runtime against the stack's PostgreSQL: a pooled connection whose backend
died while it was idle in the pool is replaced at checkout, without a failed transaction and
without a ping round trip per checkout while the connection is healthy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import URL
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.platform.db import Database
from services.platform.db import watch_pooled_connections
from tests.integration.conftest import RunningStack

APPLICATION = "tradingmesh-pool-test"


@pytest.fixture(scope="module")
def urls(running_stack: RunningStack) -> tuple[str, URL]:
    return running_stack.database_urls("oms")


@pytest.fixture
async def db(urls: tuple[str, URL]) -> AsyncIterator[Database]:
    engine = create_async_engine(
        urls[1],
        pool_size=1,
        max_overflow=0,
        connect_args={"application_name": APPLICATION},
    )
    watch_pooled_connections(engine)
    try:
        yield Database(engine, engine)
    finally:
        await engine.dispose()


def _backends(admin: str) -> list[int]:
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APPLICATION,)
        ).fetchall()
    return [int(r[0]) for r in rows]


def _terminate(admin: str, pids: list[int]) -> None:
    """Ends the backends and waits until they are gone: pg_terminate_backend only signals,
    and on a busy machine a backend may close its socket a while later (the connection has
    not died yet, which is not what the tests are about)."""
    with psycopg.connect(admin, autocommit=True) as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))


async def _backend_pid(db: Database) -> Any:
    async with db.transaction() as session:
        return (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()


async def test_a_connection_killed_while_pooled_is_replaced_at_checkout(
    db: Database, urls: tuple[str, URL]
) -> None:
    first = await _backend_pid(db)
    assert _backends(urls[0]) == [first]
    _terminate(urls[0], [first])

    # The same single pooled connection, its backend gone: the next transactions work.
    second = await _backend_pid(db)
    assert second != first
    async with db.read_session() as session:
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
    assert _backends(urls[0]) == [second]


async def test_a_busy_connection_is_not_pinged_an_idle_one_is(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialect = db.primary.sync_engine.dialect
    pings: list[object] = []
    real_ping = dialect.do_ping

    def counting_ping(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counting_ping)
    pid = await _backend_pid(db)
    for _ in range(20):
        assert await _backend_pid(db) == pid
    assert pings == []

    # Idle in the pool for longer than the limit: pinged once at the next checkout.
    monkeypatch.setattr("services.platform.db._PING_AFTER_IDLE_SECONDS", 0.0)
    assert await _backend_pid(db) == pid
    assert len(pings) == 1

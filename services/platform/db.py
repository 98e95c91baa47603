"""PostgreSQL: the primary for writes, the read replica for reads (ADR 0004).

Connections are TLS only (`sslmode=verify-full` against `TM_TLS_CA_FILE`, ADR 0018). Each
service logs in with its own role, whose credentials are in Vault at
`secret/tradingmesh/postgres/<service>`. Writes go through `transaction()`, which commits when
the block ends and rolls back when it raises, so a refused request changes nothing (ADR 0002).
"""

from __future__ import annotations

import select
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextlib import suppress
from typing import Any
from typing import Final
from typing import cast

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import URL
from sqlalchemy import event
from sqlalchemy import exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine

from services.platform.infra_tls import libpq_params
from services.platform.secrets import Secret
from services.platform.secrets import Vault
from services.platform.secrets import postgres_path
from services.platform.settings import Settings

__all__ = ["Database"]

# Per engine and process. Enough connections kept open for a busy service's concurrent
# transactions (and a leader's lock connection): a connection opened beyond the kept ones is
# closed again after its transaction, and opening one costs a SCRAM authentication (a few ms of
# CPU on both sides), so a pool too small for the steady load spends its time connecting. Six
# services at most 20 each stay within the local PostgreSQL's max_connections (200).
_POOL_SIZE: Final = 12
_MAX_OVERFLOW: Final = 8
_POOL_TIMEOUT_SECONDS: Final = 10
# Reconnect before a proxy or PostgreSQL's idle timeout drops a pooled connection.
_POOL_RECYCLE_SECONDS: Final = 1800
# A pooled connection idle for longer than this is pinged before use (see `_check_on_checkout`).
_PING_AFTER_IDLE_SECONDS: Final = 10.0
_CHECKED_IN: Final = "tradingmesh_checked_in"
# The hot path's plain psycopg connections (`Database.raw`), beside the engines' pools.
_HOT_POOL_MIN: Final = 2
_HOT_POOL_MAX: Final = 8


class Database:
    """The service's engines (primary and replica) and its sessions; and, for a hot path, plain
    psycopg connections to the primary (`raw`)."""

    def __init__(
        self,
        primary: AsyncEngine,
        replica: AsyncEngine,
        hot: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None,
    ) -> None:
        self.primary = primary
        self.replica = replica
        self._hot = hot
        self._hot_opened = False
        self._sessions = async_sessionmaker(primary, expire_on_commit=False)
        # READ ONLY goes with the BEGIN (psycopg's read_only), not as a statement of its own.
        self._read_sessions = async_sessionmaker(
            replica.execution_options(postgresql_readonly=True), expire_on_commit=False
        )
        self._lone_reads = async_sessionmaker(
            replica.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )
        self._lone_writes = async_sessionmaker(
            primary.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )

    @classmethod
    def connect(cls, settings: Settings, vault: Vault) -> Database:
        """Engines for the settings' primary and replica with the service's Vault credentials.

        No connection is opened until the first query. Where the replica is the primary
        (locally), one engine serves both.
        """
        username, password = vault.read_keys(
            postgres_path(settings.service), "username", "password"
        )
        primary = _engine(
            settings, settings.database_host, settings.database_port, username, password
        )
        same = (settings.database_replica_host, settings.database_replica_port) == (
            settings.database_host,
            settings.database_port,
        )
        replica = (
            primary
            if same
            else _engine(
                settings,
                settings.database_replica_host,
                settings.database_replica_port,
                username,
                password,
            )
        )
        hot = AsyncConnectionPool(
            make_conninfo(
                host=settings.database_host,
                port=settings.database_port,
                dbname=settings.database_name,
                user=username.reveal(),
                password=password.reveal(),
                application_name=f"tradingmesh-{settings.instance_name}",
                **libpq_params(settings.tls_ca_file),
            ),
            min_size=_HOT_POOL_MIN,
            max_size=_HOT_POOL_MAX,
            # The hot path's statements are few and fixed, keyed on indexed columns: one generic
            # plan each once prepared, instead of planning them again at every execution (the
            # order's context read: 1.2 ms with custom plans, 0.6 ms generic, measured).
            kwargs={"autocommit": True, "options": "-c plan_cache_mode=force_generic_plan"},
            check=_check_hot,
            open=False,
            name=f"{settings.service}-hot",
        )
        return cls(primary, replica, hot)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session on the primary in one transaction: committed at the end of the block,
        rolled back if the block raises."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session on the replica in a read-only transaction.

        Read-only even where the replica is the primary, so that code which writes through it
        fails locally as it would against a real replica.
        """
        async with self._read_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def lone_reads(self) -> AsyncIterator[AsyncSession]:
        """A session on the replica whose statements each run on their own (autocommit): no
        BEGIN and COMMIT around them, two round trips fewer than `read_session` for a read of
        one statement. For SELECTs that need no snapshot in common (e.g. what a transaction
        checks again under its locks); nothing here enforces read-only."""
        async with self._lone_reads() as session:
            yield session

    @asynccontextmanager
    async def lone_writes(self) -> AsyncIterator[AsyncSession]:
        """A session on the primary whose statements each commit on their own (autocommit): no
        BEGIN and COMMIT around them. For a write that is complete in one statement (e.g. one
        `sql.one_statement`) or writes that need no atomicity together (each idempotent)."""
        async with self._lone_writes() as session:
            yield session

    @asynccontextmanager
    async def raw(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A psycopg connection to the primary in autocommit, without SQLAlchemy's session and
        pool around it (about a millisecond less per use, measured: ADR 0009): for the order
        path's read and its one statement (`sql.execute_raw`, `sql.fetch_raw`). A pooled
        connection that died while idle is replaced at checkout (`_check_hot`). Without a hot
        pool (tests that build a Database from engines) the primary engine's connection serves."""
        if self._hot is None:
            async with self._lone_writes() as session:
                connection = await session.connection()
                raw = await connection.get_raw_connection()
                yield cast(psycopg.AsyncConnection[Any], raw.driver_connection)
            return
        if not self._hot_opened:
            self._hot_opened = True
            await self._hot.open(wait=False)
        async with self._hot.connection() as hot:
            yield hot

    @asynccontextmanager
    async def leadership(self, key: int) -> AsyncIterator[AsyncConnection | None]:
        """The connection holding the session-level advisory lock `key` for the block, or None
        when another instance holds it: one leader among a service's replicas (the risk
        service's margin watcher, the OMS's trigger engine). The lock goes with the connection,
        so a leader that dies frees it."""
        engine = self.primary.execution_options(isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            got = await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
            if not got:
                yield None
                return
            try:
                yield connection
            finally:
                with suppress(Exception):
                    await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})

    async def dispose(self) -> None:
        """Closes every pooled connection (on shutdown)."""
        await self.primary.dispose()
        if self.replica is not self.primary:
            await self.replica.dispose()
        if self._hot is not None and self._hot_opened:
            await self._hot.close()


def _engine(
    settings: Settings, host: str, port: int, username: Secret, password: Secret
) -> AsyncEngine:
    url = URL.create(
        "postgresql+psycopg",
        username=username.reveal(),
        password=password.reveal(),  # URL hides it in repr and str
        host=host,
        port=port,
        database=settings.database_name,
        # Over TLS, the server's certificate checked against the CA (ADR 0018).
        query=libpq_params(settings.tls_ca_file),
    )
    engine = create_async_engine(
        url,
        pool_size=_POOL_SIZE,
        max_overflow=_MAX_OVERFLOW,
        pool_timeout=_POOL_TIMEOUT_SECONDS,
        pool_recycle=_POOL_RECYCLE_SECONDS,
        connect_args={"application_name": f"tradingmesh-{settings.instance_name}"},
    )
    watch_pooled_connections(engine)
    return engine


def watch_pooled_connections(engine: AsyncEngine) -> None:
    """A connection that died while pooled (a restart, a failover, an idle timeout) is replaced,
    not used: checked at every checkout without a round trip while the service is busy.

    SQLAlchemy's `pool_pre_ping` costs a round trip per checkout, i.e. per transaction. Here a
    connection is pinged only when it was idle in the pool for `_PING_AFTER_IDLE_SECONDS`, or
    when its socket has something to read although no query is running: PostgreSQL shutting
    down or terminating the backend sends an error and closes it, which shows as readable. A
    failed ping replaces the connection (and, as with pre-ping, SQLAlchemy invalidates the
    older connections of the pool when a statement fails on a dead one)."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _check_on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        checked_in = record.info.get(_CHECKED_IN)
        if checked_in is None:
            return  # just connected
        idle = time.monotonic() - checked_in
        if idle < _PING_AFTER_IDLE_SECONDS and not _readable(dbapi_connection):
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError(f"pooled connection is dead: {error}") from error
        if not alive:
            raise exc.DisconnectionError("pooled connection did not answer a ping")


async def _check_hot(connection: psycopg.AsyncConnection[Any]) -> None:
    """At checkout from the hot pool: a connection whose socket has something to read while
    idle (PostgreSQL closing it, a restart) is pinged, and replaced if the ping fails; an idle
    healthy one costs no round trip (as `watch_pooled_connections` does for the engines)."""
    try:
        ready, _, _ = select.select([connection.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        ready = [True]
    if ready:
        await connection.execute("SELECT 1")


def _readable(dbapi_connection: Any) -> bool:
    """Whether an idle connection's socket has data (or end of file) waiting."""
    try:
        descriptor = dbapi_connection.driver_connection.fileno()
        ready, _, _ = select.select([descriptor], [], [], 0)
    except Exception:
        return True  # closed or unusable: let the ping decide
    return bool(ready)

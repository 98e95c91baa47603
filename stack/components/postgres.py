"""PostgreSQL 15 from Debian's postgresql-15, on 127.0.0.1, owned by a system user when root.

Authentication: scram-sha-256 over TCP (every role, the superuser included, has a generated
password kept in Vault). The unix socket lives inside the data directory (0700, socket 0700), so
only the data directory's owner (and root) can reach it; `local` connections there are trusted.
That grants nothing new (whoever can reach the socket can already edit pg_hba.conf) and lets the
stack set passwords without ever writing one to disk: initdb runs without a password file, and
passwords are set as SCRAM verifiers computed client-side, so not even the server log of a failed
statement can show one.

TLS (ADR 0018): `ssl=on` with the `postgres` identity's certificate from the platform CA (the
stack's `tls/postgres.pem`, its key owned by the server's user), TLS 1.3 only, and `pg_hba.conf`
(rewritten at every start) accepts TCP connections over TLS only (`hostssl`; a plaintext one is
rejected by name). Clients use `sslmode=verify-full` against `tls/ca.pem`
(`services.platform.infra_tls`). `reload_certificates` (`tradingmesh certs rotate`) makes the
primary and the replica, which serve the same files, read them again (`pg_reload_conf`): new
connections get the new certificate, open ones go on.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from stack.binaries import postgres_bin
from stack.components.base import Component
from stack.components.base import base_env
from stack.paths import StackPaths
from stack.ports import HOST
from stack.process import Launch
from stack.process import RunAs
from stack.secrets import MONITORING_USER
from stack.secrets import REPLICATION_USER
from stack.secrets import Login
from stack.secrets import StackSecrets

SYSTEM_USER = "tradingmesh-pg"
DATABASE = "tradingmesh"
MAX_SOCKET_PATH = 107  # sizeof(sun_path) - 1 on Linux
IDENTITY = "postgres"  # the certificate's identity (stack.pki), the primary's and the replica's
# Who may connect how (ADR 0018): the unix socket inside the data directory (its owner only) is
# trusted; TCP only over TLS, with a password; a connection without TLS is refused by name.
HBA = f"""# Written by `tradingmesh up` at every start (ADR 0018): TCP over TLS only.
local     all          all                    trust
hostssl   all          all          127.0.0.1/32  scram-sha-256
hostssl   replication  {REPLICATION_USER}  127.0.0.1/32  scram-sha-256
hostnossl all          all          all           reject
hostnossl replication  all          all           reject
"""


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


def tls_settings(paths: StackPaths) -> list[str]:
    """The server's TLS settings (`-c` arguments), the primary's and the replica's."""
    certificate = paths.tls_dir / f"{IDENTITY}.pem"
    key = paths.tls_dir / f"{IDENTITY}-key.pem"
    settings = [
        "ssl=on",
        f"ssl_cert_file={certificate}",
        f"ssl_key_file={key}",
        "ssl_min_protocol_version=TLSv1.3",
    ]
    return [argument for setting in settings for argument in ("-c", setting)]


def write_hba(data: Path) -> None:
    """`pg_hba.conf` of a data directory: `HBA`, whatever initdb or a base backup left there;
    and initdb's `max_connections` out of `postgresql.conf`, which the command line sets (else a
    reload, `reload_certificates`, complains that the file's value needs a restart)."""
    hba = data / "pg_hba.conf"
    hba.write_text(HBA)  # in place: keeps the file's owner (the server's user) and mode
    conf = data / "postgresql.conf"
    lines = conf.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("max_connections")]
    if kept != lines:
        conf.write_text("".join(kept))


def reload_configuration(data: Path, port: int) -> bool:
    """`pg_reload_conf()` through the server's unix socket; False if it does not answer."""
    try:
        with psycopg.connect(
            host=str(data), port=port, user="postgres", dbname="postgres", connect_timeout=2
        ) as conn:
            conn.execute("SELECT pg_reload_conf()")
    except psycopg.OperationalError:
        return False
    return True


class Postgres(Component):
    name = "postgres"
    # SIGINT = "fast" shutdown: SIGTERM ("smart") would wait for every service to disconnect.
    stop_signal = signal.SIGINT
    certificate = IDENTITY

    @property
    def address(self) -> str:
        return f"{HOST}:{self.ctx.ports.postgres}"

    def ports(self) -> tuple[int, ...]:
        return (self.ctx.ports.postgres,)

    @property
    def _data(self) -> str:
        return str(self.ctx.paths.postgres_data)

    def certificate_owner(self) -> tuple[int, int] | None:
        # PostgreSQL refuses a key that is not its own user's (or root's, group-readable).
        run_as = system_user()
        return (run_as.uid, run_as.gid) if run_as else None

    def reload_certificates(self) -> None:
        """The primary and, if it runs, the replica (both serve `tls/postgres.pem`) read their
        certificate files again: new connections get the new certificate."""
        if not reload_configuration(self.ctx.paths.postgres_data, self.ctx.ports.postgres):
            raise PostgresSetupError("postgres: could not reload its configuration")
        reload_configuration(self.ctx.paths.replica_data, self.ctx.ports.postgres_replica)

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
        """The server; its certificate files must be written (`certificate_files`) first."""
        write_hba(self.ctx.paths.postgres_data)
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
                *tls_settings(self.ctx.paths),
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

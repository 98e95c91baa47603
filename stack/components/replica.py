"""The read replica: a second PostgreSQL of the same build, a streaming hot standby of the primary.

Made once per stack with `pg_basebackup -R` from the primary over TCP as the replication role
(`secret/tradingmesh/postgres/replication`, password from Vault), then started read-only on its
own port (base + 6) beside the primary. Reporting reads here (ADR 0012); every service gets it
as TM_DATABASE_REPLICA_HOST/PORT.

No password is written to disk: `pg_basebackup` gets it in its environment (PGPASSWORD), the
`primary_conninfo` it writes (`-R`) is rewritten without it, and the standby's walreceiver finds
it in the postmaster's environment (libpq's PGPASSWORD), as Envoy gets the edge token. A new
Vault means a new password: the replica is a secret holder and is restarted with it.

The roles, their passwords and the schema come from the primary through the WAL: a replica
needs no `configure` and no migrations of its own.

TLS (ADR 0018): it streams from the primary with `sslmode=verify-full` against the stack's CA
(`primary_conninfo`, set again at every start), and serves its readers as the primary does: the
same certificate files (`tls/postgres.pem`), TLS 1.3 only, `pg_hba.conf`'s `hostssl` lines.
Its certificate is reloaded with the primary's (`Postgres.reload_certificates`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.conninfo import make_conninfo

from services.platform.infra_tls import libpq_params
from services.platform.secrets import Secret
from stack.binaries import postgres_bin
from stack.components.base import Component
from stack.components.base import base_env
from stack.components.postgres import DATABASE
from stack.components.postgres import MAX_SOCKET_PATH
from stack.components.postgres import PostgresSetupError
from stack.components.postgres import tls_settings
from stack.components.postgres import write_hba
from stack.ports import HOST
from stack.process import Launch
from stack.process import RunAs
from stack.secrets import Login


@dataclass(frozen=True)
class ReplicationStatus:
    """What `tradingmesh status` shows of the replica, read on the primary."""

    streaming: bool
    # WAL the primary sent that the replica has not replayed yet, in bytes.
    lag_bytes: int | None
    # pg_stat_replication.replay_lag: how long the last replayed change took to become visible
    # on the replica (None when nothing was written lately: an idle primary has no lag to show).
    replay_lag_seconds: float | None


class Replica(Component):
    name = "postgres-replica"
    stop_signal = signal.SIGINT  # "fast" shutdown, as the primary

    @property
    def address(self) -> str:
        return f"{HOST}:{self.ctx.ports.postgres_replica}"

    def ports(self) -> tuple[int, ...]:
        return (self.ctx.ports.postgres_replica,)

    @property
    def _data(self) -> str:
        return str(self.ctx.paths.replica_data)

    @property
    def initialized(self) -> bool:
        return (self.ctx.paths.replica_data / "PG_VERSION").is_file()

    def discard(self) -> None:
        """Forget the replica's data (the primary was made anew: the standby must follow it)."""
        shutil.rmtree(self.ctx.paths.replica_data, ignore_errors=True)

    def base_backup(self, replication: Login, run_as: RunAs | None, timeout: float) -> None:
        """`pg_basebackup -R` of the primary into the replica's data directory."""
        socket_path = f"{self._data}/.s.PGSQL.{self.ctx.ports.postgres_replica}"
        if len(socket_path) > MAX_SOCKET_PATH:
            raise PostgresSetupError(f"the replica's socket path would be too long: {socket_path}")
        data = self.ctx.paths.replica_data
        self.discard()
        data.mkdir(mode=0o700, parents=True)
        if run_as is not None:  # pg_basebackup and the standby run as the primary's user
            os.chown(data, run_as.uid, run_as.gid)
        env = base_env() | {"PGPASSWORD": replication.password.reveal()}
        result = subprocess.run(
            [
                str(postgres_bin("pg_basebackup")),
                "--pgdata",
                self._data,
                "--dbname",
                make_conninfo(
                    "",
                    host=HOST,
                    port=self.ctx.ports.postgres,
                    user=replication.username,
                    application_name="postgres-replica",
                    **libpq_params(self.ctx.paths.ca_file),
                ),
                "--write-recovery-conf",
                "--checkpoint=fast",
                "--wal-method=stream",
                "--no-sync",  # a dev replica, as initdb --no-sync for the primary
                "--no-password",
            ],
            env=env,
            cwd=str(data.parent),
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
                f"pg_basebackup failed ({result.returncode}):\n{result.stderr.strip()}"
            )
        self._rewrite_conninfo()

    def _rewrite_conninfo(self) -> None:
        """`-R` writes the connection's password into postgresql.auto.conf: take it out, by
        parsing `primary_conninfo` (a config string holding a libpq connection string); and
        stream over TLS, the primary's certificate checked against the stack's CA (a replica
        made before TLS had `sslmode=prefer` or `disable`)."""
        auto = self.ctx.paths.replica_data / "postgresql.auto.conf"
        lines = []
        for line in auto.read_text().splitlines():
            match = re.fullmatch(r"primary_conninfo = '((?:[^']|'')*)'", line.strip())
            if match:
                params = conninfo_to_dict(match.group(1).replace("''", "'"))
                params.pop("password", None)
                params.update(libpq_params(self.ctx.paths.ca_file))
                conninfo = make_conninfo("", **params)
                line = "primary_conninfo = '{}'".format(conninfo.replace("'", "''"))
            lines.append(line)
        auto.write_text("\n".join(lines) + "\n")

    def launch(self, replication_password: Secret, run_as: RunAs | None) -> Launch:
        """The standby; the `postgres` certificate files must be written first."""
        self._rewrite_conninfo()
        write_hba(self.ctx.paths.replica_data)
        return Launch(
            argv=[
                str(postgres_bin("postgres")),
                "-D",
                self._data,
                "-c",
                f"listen_addresses={HOST}",
                "-c",
                f"port={self.ctx.ports.postgres_replica}",
                "-c",
                f"unix_socket_directories={self._data}",
                "-c",
                "unix_socket_permissions=0700",
                "-c",
                "hot_standby=on",
                # Tell the primary which rows the replica's long reports still read, so vacuum
                # there does not cancel them (a long export against a busy primary).
                "-c",
                "hot_standby_feedback=on",
                "-c",
                "max_connections=200",
                "-c",
                "shared_preload_libraries=pg_stat_statements",
                "-c",
                "pg_stat_statements.save=off",
                *tls_settings(self.ctx.paths),
            ],
            # The walreceiver's libpq reads the replication password from here: never on disk.
            env=base_env() | {"PGPASSWORD": replication_password.reveal()},
            cwd=self.ctx.paths.replica_data,
            run_as=run_as,
        )

    def _socket(self, port: int, data: str) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=data,
            port=port,
            user="postgres",
            dbname="postgres",
            connect_timeout=2,
            autocommit=True,
        )

    def probe(self) -> bool:
        """Accepting reads, in recovery (a standby, not a promoted copy), with the stack's
        database, and streaming from the primary (its WAL receiver connected)."""
        try:
            with self._socket(self.ctx.ports.postgres_replica, self._data) as conn:
                row = conn.execute(
                    """SELECT pg_is_in_recovery(),
                              EXISTS (SELECT 1 FROM pg_database WHERE datname = %s),
                              EXISTS (SELECT 1 FROM pg_stat_wal_receiver
                                       WHERE status = 'streaming')""",
                    (DATABASE,),
                ).fetchone()
        except psycopg.Error:
            return False
        return row == (True, True, True)

    def status(self) -> ReplicationStatus | None:
        """The replica as the primary sees it (pg_stat_replication); None if unreachable."""
        primary_data = str(self.ctx.paths.postgres_data)
        try:
            with self._socket(self.ctx.ports.postgres, primary_data) as conn:
                row = conn.execute(
                    """SELECT state,
                              pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,
                              EXTRACT(EPOCH FROM replay_lag)::float8
                         FROM pg_stat_replication
                        WHERE application_name = 'postgres-replica'
                        ORDER BY backend_start DESC LIMIT 1"""
                ).fetchone()
        except psycopg.Error:
            return None
        if row is None:
            return ReplicationStatus(streaming=False, lag_bytes=None, replay_lag_seconds=None)
        state, lag_bytes, replay_lag = row
        return ReplicationStatus(
            streaming=state == "streaming",
            lag_bytes=int(lag_bytes) if isinstance(lag_bytes, int) else None,
            replay_lag_seconds=float(replay_lag) if isinstance(replay_lag, float) else None,
        )

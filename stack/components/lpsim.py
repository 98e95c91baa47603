"""The LP simulators (`python -m simulators.lp`): FIX 4.4 acceptors with their own prices.

Each has a different seed, spread and rate, so the platform aggregates prices that really
differ. Its logon credentials come from Vault (`secret/tradingmesh/lp/<name>`): the simulator is
given them in its environment, the pricing service's LP gateway reads them from Vault.

A simulator's personality (simulators/lp/personality.py) can be chosen at start from the
environment of `tradingmesh up`: `TM_LPSIM_PERSONALITY_LP_BETA=limit-only,status-bmr` (the LP's
name upper-cased, `-` as `_`); tests change it at run time through the control port. Its FIX
session logs go to the stack's log folder (`logs/fix/`), beside the platform's.

It accepts TLS only (ADR 0018), with a certificate of its own identity (`lp-alpha`, `lp-beta`)
from the platform CA, which the orchestrator writes into the stack's `tls/` before launching it
(`certificate_files`), and requires a client certificate from that CA. QuickFIX's acceptor reads
the files once: `tradingmesh certs rotate` rewrites them, and the simulator uses them from its
next start (`reload_certificates` does nothing; restart it to take them at once).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from stack.components.base import Component
from stack.components.base import Context
from stack.components.base import base_env
from stack.ports import HOST
from stack.ports import port_is_listening
from stack.process import Launch
from stack.secrets import Login

# Who may log on: pricing's LP gateway, the OMS's order sessions (ADR 0007), and tests or
# benchmarks beside them (a FIX session is one connection per pair of comp ids, so each needs its
# own).
PLATFORM_COMP_ID = "TRADINGMESH"
OMS_COMP_ID = "TRADINGMESH-OMS"
QA_COMP_ID = "TRADINGMESH-QA"


@dataclass(frozen=True)
class LpProfile:
    seed: int
    spread_factor: str  # a decimal
    rate: str  # price updates per second per instrument, a decimal
    fill_delay_ms: int


# How each LP of the dev stack differs: lp-alpha is tight and fast, lp-beta wider and slower.
PROFILES: dict[str, LpProfile] = {
    "lp-alpha": LpProfile(seed=11, spread_factor="1", rate="5", fill_delay_ms=2),
    "lp-beta": LpProfile(seed=23, spread_factor="1.5", rate="3", fill_delay_ms=8),
}


class LpSimulator(Component):
    def __init__(self, ctx: Context, lp: str) -> None:
        super().__init__(ctx)
        self.name = lp
        self.profile = PROFILES[lp]
        self.certificate = lp  # its identity in the platform CA (stack.pki.IDENTITIES)

    @property
    def port(self) -> int:
        return self.ctx.ports.lp_fix(self.name)

    @property
    def address(self) -> str:
        return f"fix://{HOST}:{self.port}"

    @property
    def sender_comp_id(self) -> str:
        """The LP's SenderCompID; the gateway's is TRADINGMESH."""
        return self.name.upper()

    @property
    def control_port(self) -> int:
        """The simulator's control API (simulators/lp/control.py), for tests and benchmarks."""
        return self.ctx.ports.lp_control(self.name)

    @property
    def personality_variable(self) -> str:
        """The variable of `up`'s environment that sets its personality at start."""
        return "TM_LPSIM_PERSONALITY_" + self.name.upper().replace("-", "_")

    def ports(self) -> tuple[int, ...]:
        return (self.port, self.control_port)

    def probe(self) -> bool:
        # The acceptor listens once its sessions are created; a FIX logon is the gateway's job.
        return port_is_listening(self.port)

    def launch(self, login: Login) -> Launch:
        workdir = self.ctx.paths.lp_dir(self.name)
        workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tls = self.ctx.paths.tls_dir
        env = base_env()
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "TM_LPSIM_NAME": self.name,
                "TM_LPSIM_PORT": str(self.port),
                "TM_LPSIM_CONTROL_PORT": str(self.control_port),
                "TM_LPSIM_CERT_FILE": str(tls / f"{self.name}.pem"),
                "TM_LPSIM_KEY_FILE": str(tls / f"{self.name}-key.pem"),
                "TM_LPSIM_CA_FILE": str(self.ctx.paths.ca_file),
                "TM_LPSIM_USERNAME": login.username,
                "TM_LPSIM_PASSWORD": login.password.reveal(),
                "TM_LPSIM_SEED": str(self.profile.seed),
                "TM_LPSIM_SPREAD_FACTOR": self.profile.spread_factor,
                "TM_LPSIM_RATE": self.profile.rate,
                "TM_LPSIM_FILL_DELAY_MS": str(self.profile.fill_delay_ms),
                "TM_LPSIM_CLIENTS": f"{PLATFORM_COMP_ID},{OMS_COMP_ID},{QA_COMP_ID}",
                "TM_LPSIM_PERSONALITY": os.environ.get(self.personality_variable, ""),
                "TM_FIX_LOG_DIR": str(self.ctx.paths.fix_logs),
                "TM_FIX_LOG_MARKET_DATA": os.environ.get("TM_FIX_LOG_MARKET_DATA", "N"),
            }
        )
        return Launch(
            argv=[sys.executable, "-m", "simulators.lp"],
            env=env,
            cwd=workdir,
        )

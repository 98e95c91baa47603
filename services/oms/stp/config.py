"""The STP desk's settings (`StpConfig.from_env`) and its logon at each liquidity provider."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta
from pathlib import Path
from typing import Final

from services.platform.fix import LpEndpoint
from services.platform.secrets import Secret
from services.platform.secrets import Vault
from services.platform.settings import EnvReader
from services.platform.settings import whole_number

__all__ = [
    "StpConfig",
    "lp_credentials",
]


@dataclass(frozen=True)
class StpConfig:
    """TM_OMS_LPS (the providers, as pricing's TM_PRICING_LPS), TM_OMS_STP_WINDOW_MS (default
    50), TM_DATA_DIR (the FIX store goes to `<TM_DATA_DIR>/oms/fix`), how long a hedge
    order at its provider may go unanswered: TM_OMS_HEDGE_STATUS_AFTER_S (default 10) before an
    OrderStatusRequest, TM_OMS_HEDGE_UNKNOWN_AFTER_S (default 60) before its fate is reported
    unknown, and how long after its creation an order may wait for a live price:
    TM_OMS_STP_PRICE_WAIT_S (default 30)."""

    lps: tuple[LpEndpoint, ...] = ()
    window: timedelta = timedelta(milliseconds=50)
    data_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    rejoin_after_start: timedelta = timedelta(seconds=2)
    status_after: timedelta = timedelta(seconds=10)
    unknown_after: timedelta = timedelta(seconds=60)
    # After the desk starts, how long a hedge waits for its provider's first logon before it is
    # REJECTED / LP_UNAVAILABLE (the sessions log on within a second or so of a restart).
    first_logon_grace: timedelta = timedelta(seconds=10)
    price_wait: timedelta = timedelta(seconds=30)

    @property
    def chase_every(self) -> timedelta:
        """How often open hedge orders are looked at: a fifth of `status_after`, at least 1 s."""
        return max(self.status_after / 5, timedelta(seconds=1))

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "oms" / "fix"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> StpConfig:
        """The desk's settings; `SettingsError` naming every bad variable (the service exits 2)."""
        read = EnvReader(environ)
        none: tuple[LpEndpoint, ...] = ()
        lps = read.get("TM_OMS_LPS", lambda text: tuple(LpEndpoint.parse_list(text)), none)
        window_ms = read.get("TM_OMS_STP_WINDOW_MS", whole_number(1, 60_000), 50)
        status_after = read.get("TM_OMS_HEDGE_STATUS_AFTER_S", _SECONDS, 10)
        unknown_after = read.get("TM_OMS_HEDGE_UNKNOWN_AFTER_S", _SECONDS, 60)
        price_wait = read.get("TM_OMS_STP_PRICE_WAIT_S", _SECONDS, 30)
        if unknown_after <= status_after:
            read.problems.append(
                "TM_OMS_HEDGE_UNKNOWN_AFTER_S must be longer than TM_OMS_HEDGE_STATUS_AFTER_S"
            )
        read.check()
        data_dir = environ.get("TM_DATA_DIR") or tempfile.mkdtemp(prefix="tm-oms-")
        return cls(
            lps,
            timedelta(milliseconds=window_ms),
            Path(data_dir),
            status_after=timedelta(seconds=status_after),
            unknown_after=timedelta(seconds=unknown_after),
            price_wait=timedelta(seconds=price_wait),
        )


_SECONDS: Final = whole_number(1, 86_400)
"""A whole number of seconds within 1..86400."""


def lp_credentials(vault: Vault, lp: str) -> tuple[str, Secret]:
    """The OMS's logon at `lp`: Vault `secret/tradingmesh/lp/<lp>` (as pricing's)."""
    username, password = vault.read_keys(f"tradingmesh/lp/{lp}", "username", "password")
    return username.reveal(), password

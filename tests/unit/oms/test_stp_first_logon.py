"""A hedge order made right after the OMS starts, before its provider's order session has logged
on, waits for that logon instead of being REJECTED / LP_UNAVAILABLE (issue #18): its clients'
orders do not pay for our restart. Past the grace, a provider that never logged on rejects."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest

from services.oms.feeds.quotes import QuoteBook
from services.oms.stp.config import StpConfig
from services.oms.stp.desk import StpDesk
from services.oms.stp.lp_orders import LpOrderRouter
from services.platform.fix import LpEndpoint
from services.platform.resources import Resources

START = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def desk(tmp_path: Path, now: list[datetime]) -> StpDesk:
    config = StpConfig(lps=(LpEndpoint("lp-alpha", "127.0.0.1", 1),), data_dir=tmp_path)
    made = StpDesk(
        cast(Resources, None),
        QuoteBook(),
        config,
        lambda lp: pytest.fail(f"no credentials are read ({lp})"),
        clock=lambda: now[0],
    )
    made.router = cast(LpOrderRouter, object())  # configured; its sessions not up yet
    made._first_logon_due = START + config.first_logon_grace
    return made


def test_the_grace_covers_configured_providers_for_a_while_after_the_start(
    tmp_path: Path,
) -> None:
    now = [START + timedelta(seconds=1)]
    stp = desk(tmp_path, now)

    assert stp._in_first_logon_grace("lp-alpha")
    assert not stp._in_first_logon_grace("lp-unknown")
    now[0] = START + timedelta(seconds=11)
    assert not stp._in_first_logon_grace("lp-alpha")


async def test_hedges_waiting_for_the_first_logon_are_sent_when_it_comes(tmp_path: Path) -> None:
    stp = desk(tmp_path, [START + timedelta(seconds=1)])
    stp._awaiting_logon["lp-alpha"].update({"h2", "h1"})

    stp._on_logon("lp-alpha")

    assert stp.worker.queued() == [
        "stored reports of lp-alpha",
        "send h1 at logon",
        "send h2 at logon",
        "hedge orders of lp-alpha not known to be sent",
    ]
    assert "lp-alpha" not in stp._awaiting_logon

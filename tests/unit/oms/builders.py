"""The rows the OMS unit tests start from: a hedge order of the STP desk, a client order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from services.oms.domain.positions import Side
from services.oms.stp.hedges import HedgeRow, HedgeStatus

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
HEDGE_ID = "0b9d2a57-8d55-4c9e-9a43-4b1f1d3c7e10"


def hedge(status: HedgeStatus = HedgeStatus.SENT, **changes: object) -> HedgeRow:
    """A buy of 1.20 EURUSD (the net of 1.50 bought and 0.30 sold) at lp-alpha, version 2."""
    row = HedgeRow(
        id=HEDGE_ID,
        symbol="EURUSD",
        side=Side.BUY,
        quantity=Decimal("1.20"),
        gross_buy_quantity=Decimal("1.50"),
        gross_sell_quantity=Decimal("0.30"),
        liquidity_provider_id="lp-alpha",
        status=status,
        created_at=NOW,
        updated_at=NOW,
        version=2,
        raw_bid=Decimal("1.10000"),
        raw_ask=Decimal("1.10010"),
    )
    return replace(row, **changes)  # type: ignore[arg-type]

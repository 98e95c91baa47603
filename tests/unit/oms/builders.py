"""The rows the OMS unit tests start from: a hedge order of the STP desk, a client order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from datetime import datetime
from decimal import Decimal

from services.oms.domain.positions import Side
from services.oms.domain.state import OrderStatus
from services.oms.model import OrderOrigin
from services.oms.model import OrderRow
from services.oms.model import OrderType
from services.oms.model import TimeInForce
from services.oms.stp.hedges import HedgeRow
from services.oms.stp.hedges import HedgeStatus

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
HEDGE_ID = "0b9d2a57-8d55-4c9e-9a43-4b1f1d3c7e10"
ORDER_ID = "0c9d3c2e-0b0b-4a5e-9d55-0f3b2f3f4a12"
ACCOUNT_ID = "7b1c1a4e-9a0f-4c57-8f7e-7f6d3d0e2b11"


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


def order(**changes: object) -> OrderRow:
    """A client's GTC limit buy of 1.00 EURUSD at 1.10000, WORKING, version 3; `changes` as
    `dataclasses.replace` takes them."""
    row = OrderRow(
        id=ORDER_ID,
        account_id=ACCOUNT_ID,
        client_order_id="c-1",
        request_fingerprint="0" * 64,
        symbol="EURUSD",
        side=Side.BUY,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        status=OrderStatus.WORKING,
        quantity=Decimal("1.00"),
        origin=OrderOrigin.CLIENT,
        created_at=NOW,
        updated_at=NOW,
        version=3,
        price=Decimal("1.10000"),
    )
    return replace(row, **changes)  # type: ignore[arg-type]

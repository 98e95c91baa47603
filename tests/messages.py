"""Contract messages that unit and integration tests alike build, with their usual terms: a
client group, an FX pair and an index. Each takes keyword changes for what a test varies."""

from __future__ import annotations

import uuid
from typing import Any

from tradingmesh.account.v1 import account_pb2
from tradingmesh.common.v1 import pricing_pb2 as common_pricing_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.pricing.v1 import pricing_pb2

EVERY_DAY = [
    pricing_pb2.TradingSession(day=pricing_pb2.DayOfWeek.ValueType(d), end_minute=1440)
    for d in range(1, 8)
]


def client_group(**changes: Any) -> account_pb2.ClientGroup:
    """A USD group with a name of its own: leverage 100, margin call at 100 %, stop-out at 50 %,
    MARKET execution, netting, no markup (in points), no commission."""
    terms: dict[str, Any] = {
        "name": f"it-{uuid.uuid4().hex[:12]}",
        "currency": "USD",
        "leverage": 100,
        "margin_call_level": "100",
        "stop_out_level": "50",
        "execution_mode": types_pb2.EXECUTION_MODE_MARKET,
        "position_mode": types_pb2.POSITION_MODE_NETTING,
        "spread_markup_type": common_pricing_pb2.MARKUP_TYPE_POINTS,
        "spread_markup": "0",
        "commission_per_lot": "0",
    }
    return account_pb2.ClientGroup(**{**terms, **changes})


def fx_instrument(**changes: Any) -> pricing_pb2.Instrument:
    """EURUSD: 5 digits, a contract of 100,000, lots from 0.01 to 100 in steps of 0.01, a 1 %
    margin rate; no sessions."""
    terms: dict[str, Any] = {
        "symbol": "EURUSD",
        "description": "Euro vs US Dollar",
        "asset_class": pricing_pb2.ASSET_CLASS_FX,
        "base_currency": "EUR",
        "quote_currency": "USD",
        "digits": 5,
        "tick_size": "0.00001",
        "contract_size": "100000",
        "min_lot": "0.01",
        "max_lot": "100",
        "lot_step": "0.01",
        "margin_rate": "0.01",
    }
    return pricing_pb2.Instrument(**{**terms, **changes})


def index_instrument(symbol: str, **changes: Any) -> pricing_pb2.Instrument:
    """An index quoted in USD (no base currency): 1 digit, a contract of 1, lots from 0.1 to 500
    in steps of 0.1, a 5 % margin rate, open all day every day."""
    terms: dict[str, Any] = {
        "symbol": symbol,
        "description": "Integration test index",
        "asset_class": pricing_pb2.ASSET_CLASS_INDEX,
        "quote_currency": "USD",
        "digits": 1,
        "tick_size": "0.1",
        "contract_size": "1",
        "min_lot": "0.1",
        "max_lot": "500",
        "lot_step": "0.1",
        "margin_rate": "0.05",
        "sessions": EVERY_DAY,
    }
    return pricing_pb2.Instrument(**{**terms, **changes})

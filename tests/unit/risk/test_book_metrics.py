"""The book's gauges: clients' net and LP coverage per symbol, accounts per margin state."""

from __future__ import annotations

from decimal import Decimal

from services.risk.metrics import BookCollector
from services.risk.model import Side
from tests.unit.risk.builders import account
from tests.unit.risk.builders import broker
from tests.unit.risk.builders import position
from tradingmesh.trading.margin import RiskStatus

D = Decimal


def test_the_book_is_collected_per_symbol_and_per_margin_state() -> None:
    state = broker()
    first = account(state, "1000.00")
    second = account(state, "1000.00", account_id="00000000-0000-4000-8000-0000000000a2")
    position(state, first, "EURUSD", Side.BUY, "2", "1.10000")
    position(state, second, "EURUSD", Side.SELL, "0.505", "1.10100")
    state.add_coverage("EURUSD", D("1.5"))
    state.statuses[second.id] = RiskStatus.MARGIN_CALL

    families = {family.name: family for family in BookCollector(state).collect()}

    def samples(name: str) -> dict[str, float]:
        return {next(iter(s.labels.values())): s.value for s in families[name].samples}

    assert samples("tradingmesh_risk_client_net_centilots") == {"EURUSD": 149}  # 1.495 cut
    assert samples("tradingmesh_risk_coverage_centilots") == {"EURUSD": 150}
    accounts = samples("tradingmesh_risk_accounts")
    assert accounts["OK"] == 1
    assert accounts["MARGIN_CALL"] == 1
    assert set(accounts) == {status.name for status in RiskStatus}

"""The broker's book as Prometheus gauges, computed from the working set when scraped.

Quantities are exported as whole numbers of hundredths of a lot (`centilots`): a gauge is a
binary float, and an integer is exact in one, where 0.1 lot is not (the money rule). A quantity
finer than 0.01 lot is cut toward zero here only; the exact figures are
RiskAdminService.GetExposure's.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import ROUND_DOWN
from decimal import Decimal
from typing import Final

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.platform.metrics import REGISTRY
from services.risk.state import RiskState
from tradingmesh.trading.margin import RiskStatus

__all__ = ["BookCollector", "centilots", "register"]

_HUNDRED: Final = Decimal(100)


def centilots(lots: Decimal) -> int:
    """`lots` in hundredths of a lot, cut toward zero."""
    return int((lots * _HUNDRED).to_integral_value(rounding=ROUND_DOWN))


class BookCollector(Collector):
    """Per symbol: the clients' net position and the STP coverage at LPs; per margin state: how
    many accounts with positions are in it."""

    def __init__(self, state: RiskState) -> None:
        self._state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        # Scrapes run in the metrics server's thread while the event loop changes the working
        # set: each collection is first copied whole (list() and dict() copy without yielding).
        state = self._state
        net: dict[str, Decimal] = {}
        for position in list(state.positions.values()):
            net[position.symbol] = net.get(position.symbol, Decimal(0)) + position.signed_quantity
        yield _gauges(
            "tradingmesh_risk_client_net_centilots",
            "The clients' net open position per symbol, in hundredths of a lot (+ long)",
            "symbol",
            {symbol: centilots(lots) for symbol, lots in sorted(net.items())},
        )
        yield _gauges(
            "tradingmesh_risk_coverage_centilots",
            "The broker's net STP coverage at LPs per symbol, in hundredths of a lot (+ long)",
            "symbol",
            {symbol: centilots(lots) for symbol, lots in sorted(dict(state.coverage).items())},
        )
        counts = dict.fromkeys(RiskStatus, 0)
        for status in list(state.statuses.values()):
            counts[status] += 1
        holding = len(state.accounts_with_positions())
        counts[RiskStatus.OK] = max(holding - sum(counts.values()) + counts[RiskStatus.OK], 0)
        yield _gauges(
            "tradingmesh_risk_accounts",
            "Accounts holding positions or in a margin episode, by margin state",
            "status",
            {status.name: count for status, count in counts.items()},
        )


def _gauges(
    name: str, documentation: str, label: str, values: dict[str, float]
) -> GaugeMetricFamily:
    """A gauge family with one sample per value of its one label."""
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for value, sample in values.items():
        family.add_metric([value], sample)
    return family


def register(state: RiskState) -> BookCollector:
    """Registers the collector in the process's registry (once per process)."""
    collector = BookCollector(state)
    REGISTRY.register(collector)
    return collector

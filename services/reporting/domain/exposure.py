"""The broker summary's net client exposure (ADR 0012, "Broker views"): each instrument's net
open lots valued in the reporting currency as GetExposureHistory values a net position.

Pure: the store reads the net lots per instrument and the mids; this module values and orders
them.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from tradingmesh.trading.money import exact_product

__all__ = ["InstrumentExposure", "client_exposure", "net_notional"]

_ZERO: Final = Decimal(0)

# An amount in a currency -> the amount in the reporting currency, None without a rate.
Convert = Callable[[Decimal, str], Decimal | None]


def net_notional(
    net: Decimal,
    contract_size: Decimal,
    base: str,
    quote: str,
    mid: Decimal | None,
    reporting_currency: str,
    convert: Convert,
) -> Decimal | None:
    """The notional of `net` lots in the reporting currency, signed like `net`: lots x contract
    size when the base currency is the reporting one (exact, no price needed); otherwise x the
    mid, in the quote currency, converted. None without a mid or a rate."""
    if base == reporting_currency:
        return exact_product(net, contract_size)
    if mid is None:
        return None
    return convert(exact_product(net, contract_size, mid), quote)


@dataclass(frozen=True)
class InstrumentExposure:
    symbol: str
    net_quantity: Decimal
    notional: Decimal | None


def client_exposure(
    nets: Mapping[str, Decimal],
    instruments: Mapping[str, tuple[str, str, Decimal]],
    mids: Mapping[str, Decimal],
    reporting_currency: str,
    convert: Convert,
) -> list[InstrumentExposure]:
    """Every non-zero net position valued, the largest absolute notional first (unvalued ones
    last), ties by symbol. `instruments`: symbol -> (base, quote, contract size)."""
    valued = []
    for symbol, net in nets.items():
        if net == 0:
            continue
        base, quote, contract_size = instruments.get(
            symbol, (reporting_currency, reporting_currency, Decimal(1))
        )
        notional = net_notional(
            net, contract_size, base, quote, mids.get(symbol), reporting_currency, convert
        )
        valued.append(InstrumentExposure(symbol, net, notional))
    valued.sort(key=lambda e: (e.notional is None, -abs(e.notional or _ZERO), e.symbol))
    return valued

"""The broker summary's net client exposure: net lots valued in the reporting currency as the
exposure history values them, ordered by size (ADR 0012, "Broker views")."""

from __future__ import annotations

from decimal import Decimal

from services.reporting.domain.exposure import client_exposure
from services.reporting.domain.exposure import net_notional

D = Decimal
INSTRUMENTS = {
    "EURUSD": ("EUR", "USD", D("100000")),
    "USDJPY": ("USD", "JPY", D("100000")),
    "EURGBP": ("EUR", "GBP", D("100000")),
    "XAUUSD": ("XAU", "USD", D("100")),
}
GBPUSD_MID = D("1.25")


def to_usd(amount: Decimal, currency: str) -> Decimal | None:
    """The rates of the example: USD as it is, GBP at the GBPUSD mid, nothing else."""
    if currency == "USD":
        return amount
    if currency == "GBP":
        return amount * GBPUSD_MID
    return None


def test_a_quote_currency_position_is_valued_at_the_mid() -> None:
    # 0.30 x 100000 x 1.10530 = 33159.0 USD
    assert net_notional(D("0.3"), D("100000"), "EUR", "USD", D("1.10530"), "USD", to_usd) == D(
        "33159.0"
    )


def test_a_base_currency_position_needs_no_price() -> None:
    # -1.5 x 100000 = -150000 USD, whatever USDJPY trades at.
    assert net_notional(D("-1.5"), D("100000"), "USD", "JPY", None, "USD", to_usd) == D("-150000")


def test_a_cross_is_converted_and_a_missing_price_or_rate_leaves_it_unvalued() -> None:
    # -0.2 x 100000 x 0.85 = -17000 GBP; x 1.25 = -21250 USD
    assert net_notional(D("-0.2"), D("100000"), "EUR", "GBP", D("0.85"), "USD", to_usd) == D(
        "-21250"
    )
    assert net_notional(D("1"), D("100000"), "EUR", "GBP", None, "USD", to_usd) is None
    assert net_notional(D("1"), D("100000"), "EUR", "CHF", D("0.95"), "USD", to_usd) is None


def test_positions_are_ordered_by_absolute_notional_unvalued_last_and_flat_ones_left_out() -> None:
    nets = {
        "EURUSD": D("0.3"),  # 33159.0
        "USDJPY": D("-1.5"),  # -150000
        "EURGBP": D("-0.2"),  # -21250
        "XAUUSD": D("2"),  # no mid: unvalued
        "GBPUSD": D("0"),  # flat
    }
    mids = {"EURUSD": D("1.10530"), "EURGBP": D("0.85")}

    exposure = client_exposure(nets, INSTRUMENTS, mids, "USD", to_usd)

    assert [(e.symbol, e.net_quantity, e.notional) for e in exposure] == [
        ("USDJPY", D("-1.5"), D("-150000")),
        ("EURUSD", D("0.3"), D("33159.0")),
        ("EURGBP", D("-0.2"), D("-21250")),
        ("XAUUSD", D("2"), None),
    ]

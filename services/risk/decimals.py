"""Decimal strings for the wire (ADR 0001): amounts with their currency's decimals, other numbers
without trailing zeros, never an exponent."""

from __future__ import annotations

from decimal import Decimal

from tradingmesh.trading.money import round_money

__all__ = ["money_text", "number_text", "parse_decimal"]


def money_text(amount: Decimal, currency: str) -> str:
    """An amount of `currency` with exactly its minor unit's decimals: "2170.00", "-3.50"."""
    return format(round_money(amount, currency), "f")


def number_text(value: Decimal) -> str:
    """A quantity, price or level without trailing zeros: "0.5", "100000", "1.10025"."""
    normalized = value.normalize()
    if normalized == normalized.to_integral_value():
        return format(normalized.quantize(Decimal(1)), "f")
    return format(normalized, "f")


def parse_decimal(text: str) -> Decimal:
    """A decimal string from a message whose contract already checked it."""
    return Decimal(text).normalize()

"""Decimal strings for the wire (ADR 0001): amounts with their currency's decimals, other numbers
without trailing zeros, never an exponent."""

from __future__ import annotations

from decimal import Decimal

__all__ = ["parse_decimal"]


def parse_decimal(text: str) -> Decimal:
    """A decimal string from a message whose contract already checked it."""
    return Decimal(text).normalize()

"""The broker's day: swap terms, the daily rollover that charges swaps (ADR 0010)."""

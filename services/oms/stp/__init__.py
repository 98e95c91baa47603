"""The STP desk and the FIX order sessions to the liquidity providers, with their hedge orders."""

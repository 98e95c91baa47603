"""Stand-ins for the outside world that the dev stack and the tests run as real processes.

lp    FIX 4.4 liquidity providers (QuickFIX acceptors): prices, and fills for STP orders.
"""

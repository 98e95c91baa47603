"""The risk service. Pre-trade checks, margin, exposure, margin calls and stop-outs (issue #6)."""

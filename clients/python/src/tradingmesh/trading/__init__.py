"""Trading arithmetic shared by the platform's services and partners' code (ADR 0007).

- `money`: exact products, the one rounding rule (half to even, once, to the currency's minor
  unit), currency conversion, commission;
- `margin`: required margin, equity, free margin, margin level, the stop-out order.
"""

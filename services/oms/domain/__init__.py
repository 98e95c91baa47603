"""The pure domain of the trading core (ADR 0007): no gRPC, SQL or NATS here.

- `state`: the order status machine, one table of (status, event) -> status, and `apply`;
- `positions`: fills applied to positions (netting and hedging), average price, P&L;
- `validation`: order-entry rules that need the instrument (lot step, digits, stops).

Everything is exact `Decimal`; amounts are rounded once, to the account currency's minor unit,
half to even (`money.round_money`). The money rule and the margin arithmetic, which the risk
service shares, live in the SDK as `tradingmesh.trading.money` and `tradingmesh.trading.margin`
(ADR 0007).
"""

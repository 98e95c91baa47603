import assert from "node:assert/strict";
import { test } from "node:test";

import { ErrorReason } from "@tradingmesh/sdk";
import { OrderStatus } from "@tradingmesh/sdk/gen/tradingmesh/common/v1/trading_pb";
import { Side } from "@tradingmesh/sdk/gen/tradingmesh/common/v1/types_pb";

import { describeOrder, type OrderSummary } from "../src/lib/orders.js";

const base: OrderSummary = {
  status: OrderStatus.FILLED,
  side: Side.BUY,
  quantity: "0.10",
  symbol: "EURUSD",
  statusReason: ErrorReason.UNSPECIFIED,
  statusMessage: "",
  requotePrice: "",
  averageFillPrice: "1.08512",
  price: "",
  stopPrice: "",
};

test("a fill names its status and price", () => {
  assert.deepEqual(describeOrder(base), { kind: "ok", text: "FILLED: Buy 0.10 EURUSD at 1.08512." });
});

test("a working limit order shows its price", () => {
  const outcome = describeOrder({ ...base, status: OrderStatus.WORKING, averageFillPrice: "", price: "1.05000" });
  assert.equal(outcome.text, "WORKING: Buy 0.10 EURUSD at 1.05000.");
});

test("a requote offers the new price", () => {
  const outcome = describeOrder({
    ...base,
    status: OrderStatus.REJECTED,
    side: Side.SELL,
    statusReason: ErrorReason.REQUOTE,
    requotePrice: "1.08490",
  });
  assert.equal(outcome.kind, "requote");
  assert.equal(outcome.requotePrice, "1.08490");
  assert.ok(outcome.text.startsWith("REJECTED"));
});

test("a rejection says why from its reason", () => {
  const outcome = describeOrder({
    ...base,
    status: OrderStatus.REJECTED,
    statusReason: ErrorReason.INSUFFICIENT_MARGIN,
    statusMessage: "server text",
  });
  assert.deepEqual(outcome, { kind: "rejected", text: "REJECTED: Buy 0.10 EURUSD. Not enough free margin." });
});

import assert from "node:assert/strict";
import { test } from "node:test";

import { Decimal } from "@tradingmesh/sdk";

import { nextBar } from "../src/lib/candles.js";
import { dayRange } from "../src/lib/dates.js";
import {
  DASH,
  chartPriceText,
  chartUnits,
  decimalText,
  direction,
  moneyText,
  priceText,
  signClass,
  spreadText,
} from "../src/lib/format.js";

test("quote prices print exactly from units", () => {
  assert.equal(priceText(108512n, 5), "1.08512");
  assert.equal(priceText(108510n, 5), "1.08510");
  assert.equal(priceText(234567n, 2), "2345.67");
  assert.equal(spreadText(108512n, 108527n, 5), "0.00015");
  // 0.1 + 0.2 style traps stay exact.
  assert.equal(spreadText(10n, 30n, 2), "0.20");
});

test("direction of a change", () => {
  assert.equal(direction(undefined, 5n), "flat");
  assert.equal(direction(5n, 5n), "flat");
  assert.equal(direction(5n, 6n), "up");
  assert.equal(direction(6n, 5n), "down");
});

test("money keeps its digits and groups thousands", () => {
  assert.equal(moneyText("12345.6"), "12,345.60");
  assert.equal(moneyText("-1234567.891"), "-1,234,567.891");
  assert.equal(moneyText("0"), "0.00");
  assert.equal(moneyText("-0.5"), "-0.50");
  assert.equal(moneyText(""), DASH);
  assert.equal(moneyText(undefined), DASH);
  assert.equal(moneyText("100000000000000000.01"), "100,000,000,000,000,000.01");
  assert.equal(decimalText(""), DASH);
  assert.equal(decimalText("1.10"), "1.10");
});

test("sign classes", () => {
  assert.equal(signClass("1.5"), "pos");
  assert.equal(signClass("-0.01"), "neg");
  assert.equal(signClass("0.00"), "");
  assert.equal(signClass(""), "");
});

test("chart units are integers and print back exactly", () => {
  assert.equal(chartUnits("1.0851", 5), 108510);
  assert.equal(chartUnits("2345.67", 2), 234567);
  assert.equal(chartPriceText(108510, 5), "1.08510");
  assert.equal(chartPriceText(108510.4, 5), "1.08510");
  assert.equal(chartPriceText(234567, 2), "2345.67");
  assert.equal(chartUnits(Decimal.fromUnits(108512n, 5), 5), 108512);
  assert.equal(chartUnits(Decimal.fromUnits(10851n, 4), 5), 108510);
  assert.throws(() => chartUnits("1.085123", 5));
  assert.throws(() => chartUnits("99999999999.99999", 5));
});

test("the open candle follows the ticks", () => {
  const first = nextBar(undefined, 100, 125, 60);
  assert.deepEqual(first, { time: 120, open: 100, high: 100, low: 100, close: 100 });
  const second = nextBar(first, 103, 150, 60);
  assert.deepEqual(second, { time: 120, open: 100, high: 103, low: 100, close: 103 });
  const third = nextBar(second, 98, 179, 60);
  assert.deepEqual(third, { time: 120, open: 100, high: 103, low: 98, close: 98 });
  assert.deepEqual(nextBar(third, 99, 180, 60), { time: 180, open: 99, high: 99, low: 99, close: 99 });
  assert.equal(nextBar(third, 99, 60, 60), undefined);
});

test("a day range covers whole local days", () => {
  const { start, end } = dayRange("2026-12-01", "2026-12-01");
  assert.equal(end - start, 86400n);
  const week = dayRange("2026-12-01", "2026-12-07");
  assert.equal(week.end - week.start, 7n * 86400n);
});

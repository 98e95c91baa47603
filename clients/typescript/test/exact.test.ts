// The exact decimal helpers: the rules of the contracts and of the Python SDK's tradingmesh.exact.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  Decimal,
  InexactValueError,
  InvalidDecimalError,
  addDecimals,
  compareDecimals,
  formatDecimal,
  fromUnits,
  isDecimal,
  parseDecimal,
  subtractDecimals,
  toUnits,
} from "../dist/exact.js";

describe("parseDecimal", () => {
  test("keeps the value and the scale as written", () => {
    const price = parseDecimal("1.10");

    assert.equal(price.units, 110n);
    assert.equal(price.scale, 2);
    assert.equal(price.toString(), "1.10");
  });

  test("reads negative values, whole numbers and the widest values the wire allows", () => {
    assert.equal(parseDecimal("-12.50").units, -1250n);
    assert.equal(parseDecimal("100").scale, 0);
    const widest = "-999999999999999999.999999999999";
    assert.equal(parseDecimal(widest).toString(), widest);
  });

  for (const text of [
    "", "1e5", "1E+2", "+1", " 1", "1 ", "1.", ".5", "-", "--1", "NaN", "Infinity", "0x10",
    "1,5", "1.0000000000001", "1234567890123456789", "١٢",
  ]) {
    test(`refuses ${JSON.stringify(text)}`, () => {
      assert.throws(() => parseDecimal(text), InvalidDecimalError);
      assert.equal(isDecimal(text), false);
    });
  }

  test("refuses what is not a string, numbers above all", () => {
    assert.throws(() => parseDecimal(0.1 as unknown as string), InvalidDecimalError);
    assert.equal(isDecimal(1), false);
  });
});

describe("formatDecimal", () => {
  test("keeps the scale and writes no negative zero", () => {
    assert.equal(formatDecimal(parseDecimal("1.10")), "1.10");
    assert.equal(formatDecimal(parseDecimal("-0.00")), "0.00");
    assert.equal(formatDecimal(parseDecimal("-0.5")), "-0.5");
    assert.equal(formatDecimal(100n), "100");
    assert.equal(formatDecimal(fromUnits(5n, 3)), "0.005");
  });

  test("refuses a value that needs more digits than the wire allows", () => {
    assert.throws(() => formatDecimal(fromUnits(1n, 13)), InexactValueError);
    assert.throws(() => formatDecimal(10n ** 18n), InexactValueError);
    assert.equal(formatDecimal(10n ** 18n - 1n), "999999999999999999");
  });

  test("refuses a JavaScript number", () => {
    assert.throws(() => formatDecimal(0.1 as unknown as bigint), TypeError);
  });

  test("round-trips every wire string unchanged", () => {
    const texts = ["0", "0.0", "1.08512", "-3.20", "007.50", "123456789012345678.123456789012"];
    for (const text of texts) {
      const expected = text === "007.50" ? "7.50" : text;
      assert.equal(formatDecimal(parseDecimal(text)), expected);
    }
  });
});

describe("fixed-point units (the quote stream)", () => {
  test("fromUnits is units times ten to the minus scale", () => {
    assert.equal(fromUnits(108512n, 5).toString(), "1.08512");
    assert.equal(fromUnits(-5n, 2).toString(), "-0.05");
    assert.equal(fromUnits(0n, 3).toString(), "0.000");
  });

  test("toUnits pads to a larger scale and refuses to drop a digit", () => {
    assert.equal(toUnits("1.0851", 5), 108510n);
    assert.equal(toUnits("1.08510", 4), 10851n);
    assert.throws(() => toUnits("1.085123", 5), InexactValueError);
  });

  test("a scale must be a whole number of zero or more", () => {
    assert.throws(() => fromUnits(1n, -1), RangeError);
    assert.throws(() => fromUnits(1n, 1.5), RangeError);
    assert.throws(() => fromUnits(1 as unknown as bigint, 2), TypeError);
  });

  test("withScale shows a price at its instrument's digits without rounding", () => {
    assert.equal(parseDecimal("1.5").withScale(5).toString(), "1.50000");
    assert.throws(() => parseDecimal("1.234").withScale(2), InexactValueError);
  });
});

describe("arithmetic and comparison", () => {
  test("sums and differences are exact where binary floats are not", () => {
    assert.equal(addDecimals("0.1", "0.2"), "0.3");
    assert.notEqual(0.1 + 0.2, 0.3); // why this module exists
    assert.equal(subtractDecimals("1.08524", "1.08512"), "0.00012");
    assert.equal(addDecimals("1.10", "0.005"), "1.105");
    assert.equal(subtractDecimals("1", "1.50"), "-0.50");
  });

  test("sums keep full precision at the wire's widest values", () => {
    const big = "999999999999999998.999999999999";
    assert.equal(addDecimals(big, "0.000000000001"), "999999999999999999.000000000000");
    assert.throws(() => addDecimals(big, "1.000000000001"), InexactValueError);
  });

  test("products are exact, with the sum of the scales", () => {
    const notional = parseDecimal("0.10").times("100000").times("1.08512");
    assert.equal(notional.toString(), "10851.2000000");
    assert.ok(notional.equals("10851.2"));
  });

  test("compare is by value, whatever the scale", () => {
    assert.equal(compareDecimals("1.10", "1.1"), 0);
    assert.equal(compareDecimals("-2", "1.5"), -1);
    assert.equal(compareDecimals("0.00001", "0"), 1);
    assert.equal(parseDecimal("-0.5").sign(), -1);
    assert.ok(parseDecimal("0.000").isZero());
    assert.equal(parseDecimal("-1.5").abs().toString(), "1.5");
    assert.equal(parseDecimal("1.5").negated().toString(), "-1.5");
  });

  test("a Decimal never becomes a JavaScript number, but prints as its text", () => {
    const price = Decimal.parse("1.08512");

    assert.throws(() => +(price as unknown as number), TypeError);
    assert.throws(() => Math.max(price as unknown as number), TypeError);
    assert.equal(`${price}`, "1.08512");
    assert.equal(JSON.stringify({ price }), '{"price":"1.08512"}');
  });

  test("arithmetic refuses numbers and malformed strings", () => {
    assert.throws(() => parseDecimal("1").plus(0.5 as unknown as string), TypeError);
    assert.throws(() => parseDecimal("1").plus("1e3"), InvalidDecimalError);
  });
});

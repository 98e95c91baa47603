/**
 * Exact numbers on the wire, never JavaScript numbers.
 *
 * tradingmesh never sends a price, quantity or amount as a float. Request and response fields
 * carry decimal strings ("1.08512", "-12.50"); the quote stream carries fixed-point integers (units
 * and a scale). A JavaScript `number` is a binary float ("0.1 + 0.2 !== 0.3"), so this module keeps
 * every value as a `Decimal`: a `bigint` of units and a decimal scale, value = units × 10^-scale.
 * Parsing, formatting, comparison, addition, subtraction and multiplication are exact; nothing
 * rounds silently. The rules are the contracts' (`tradingmesh/common/v1/rules.proto`) and the
 * Python SDK's (`tradingmesh.exact`): an optional leading minus, at most 18 digits before the
 * point and 12 after it, no exponent, no other sign, no spaces.
 */

/** At most this many digits before the point (the contracts' `decimal` rules). */
export const MAX_INTEGER_DIGITS = 18;
/** At most this many digits after the point (the contracts' `decimal` rules). */
export const MAX_FRACTION_DIGITS = 12;

const WIRE_DECIMAL = new RegExp(
  `^(-?)([0-9]{1,${MAX_INTEGER_DIGITS}})(?:\\.([0-9]{1,${MAX_FRACTION_DIGITS}}))?$`,
);
const TEN = 10n;

/** The text is not a decimal string as the contracts define it. */
export class InvalidDecimalError extends Error {
  override name = "InvalidDecimalError";
}

/** The value cannot be put on the wire (or at the asked scale) without rounding or overflow. */
export class InexactValueError extends Error {
  override name = "InexactValueError";
}

function pow10(exponent: number): bigint {
  return TEN ** BigInt(exponent);
}

function checkScale(scale: number): void {
  if (!Number.isSafeInteger(scale) || scale < 0) {
    throw new RangeError(`scale must be a whole number >= 0, got ${String(scale)}`);
  }
}

function abs(value: bigint): bigint {
  return value < 0n ? -value : value;
}

/**
 * An exact decimal value: `units` × 10^-`scale`. Immutable. The scale is kept as written
 * ("1.10" has scale 2), like Python's `Decimal`; arithmetic results take the larger scale (sum,
 * difference) or the sum of the scales (product), so nothing is lost.
 *
 * A Decimal refuses to become a JavaScript number: `+d`, `d * 2` and `Math.max(d)` throw.
 * `String(d)` and template literals give its plain text.
 */
export class Decimal {
  /** The value's digits as an integer (negative for a negative value). */
  readonly units: bigint;
  /** The number of digits after the point. */
  readonly scale: number;

  private constructor(units: bigint, scale: number) {
    this.units = units;
    this.scale = scale;
  }

  /** The exact value of a fixed-point integer: units × 10^-scale (the quote stream's prices). */
  static fromUnits(units: bigint, scale: number): Decimal {
    if (typeof units !== "bigint") {
      throw new TypeError(`units must be a bigint, got ${typeof units}`);
    }
    checkScale(scale);
    return new Decimal(units, scale);
  }

  /** A whole number, e.g. `Decimal.of(100n)`. */
  static of(value: bigint): Decimal {
    return Decimal.fromUnits(value, 0);
  }

  /** Parses a wire decimal string; see `parseDecimal`. */
  static parse(text: string): Decimal {
    return parseDecimal(text);
  }

  /** This value's units at another scale, which must not lose a non-zero digit. */
  toUnits(scale: number): bigint {
    checkScale(scale);
    if (scale >= this.scale) {
      return this.units * pow10(scale - this.scale);
    }
    const divisor = pow10(this.scale - scale);
    if (this.units % divisor !== 0n) {
      throw new InexactValueError(`${this.toString()} has more than ${scale} decimal places`);
    }
    return this.units / divisor;
  }

  /**
   * The same value written with exactly `scale` fraction digits: "1.5" at scale 5 is "1.50000"
   * (e.g. a price shown at its instrument's digits). Refuses to drop a non-zero digit.
   */
  withScale(scale: number): Decimal {
    return new Decimal(this.toUnits(scale), scale);
  }

  plus(other: Decimal | string): Decimal {
    const [a, b, scale] = aligned(this, toDecimal(other));
    return new Decimal(a + b, scale);
  }

  minus(other: Decimal | string): Decimal {
    const [a, b, scale] = aligned(this, toDecimal(other));
    return new Decimal(a - b, scale);
  }

  /** The exact product (e.g. quantity × contract size × price); its scale is the sum of both. */
  times(other: Decimal | string): Decimal {
    const b = toDecimal(other);
    return new Decimal(this.units * b.units, this.scale + b.scale);
  }

  negated(): Decimal {
    return new Decimal(-this.units, this.scale);
  }

  abs(): Decimal {
    return new Decimal(abs(this.units), this.scale);
  }

  /** -1, 0 or 1 as this value is below, equal to or above the other (scales do not matter). */
  compare(other: Decimal | string): -1 | 0 | 1 {
    const [a, b] = aligned(this, toDecimal(other));
    return a < b ? -1 : a > b ? 1 : 0;
  }

  /** Equal in value: "1.10" equals "1.1". */
  equals(other: Decimal | string): boolean {
    return this.compare(other) === 0;
  }

  /** -1, 0 or 1. */
  sign(): -1 | 0 | 1 {
    return this.units < 0n ? -1 : this.units > 0n ? 1 : 0;
  }

  isZero(): boolean {
    return this.units === 0n;
  }

  /** Plain text keeping the scale, without the wire's digit limits: "-0.50", "100". */
  toString(): string {
    const digits = abs(this.units).toString().padStart(this.scale + 1, "0");
    const whole = digits.slice(0, digits.length - this.scale);
    const fraction = this.scale > 0 ? `.${digits.slice(digits.length - this.scale)}` : "";
    return `${this.units < 0n ? "-" : ""}${whole}${fraction}`;
  }

  /** The wire form; see `formatDecimal`. */
  toWire(): string {
    return formatDecimal(this);
  }

  toJSON(): string {
    return this.toString();
  }

  [Symbol.toPrimitive](hint: string): string {
    if (hint === "number") {
      throw new TypeError("a Decimal is never converted to a JavaScript number (it would round)");
    }
    return this.toString();
  }
}

function toDecimal(value: Decimal | string): Decimal {
  if (value instanceof Decimal) return value;
  if (typeof value === "string") return parseDecimal(value);
  throw new TypeError(
    `expected a Decimal or a decimal string, got ${typeof value} (numbers are never exact)`,
  );
}

function aligned(a: Decimal, b: Decimal): [bigint, bigint, number] {
  const scale = Math.max(a.scale, b.scale);
  return [a.toUnits(scale), b.toUnits(scale), scale];
}

/** Whether the text is a wire decimal string ("1.25", "-0.5", "100"). */
export function isDecimal(text: unknown): text is string {
  return typeof text === "string" && WIRE_DECIMAL.test(text);
}

/**
 * Parses a wire decimal string ("1.25", "-0.5", "100") into an exact `Decimal`.
 *
 * The scale is kept: "1.10" has scale 2. Exponents, signs other than a leading minus, spaces,
 * "NaN" and "Infinity" are refused (`InvalidDecimalError`), as the servers refuse them.
 */
export function parseDecimal(text: string): Decimal {
  const match = typeof text === "string" ? WIRE_DECIMAL.exec(text) : null;
  if (match === null) {
    throw new InvalidDecimalError(
      `${JSON.stringify(text) ?? String(text)} is not a decimal string such as "-12.50" (no ` +
        `exponent, at most ${MAX_INTEGER_DIGITS} integer and ${MAX_FRACTION_DIGITS} fraction ` +
        "digits)",
    );
  }
  const [, minus, whole, fraction = ""] = match;
  const magnitude = BigInt(`${whole ?? "0"}${fraction}`);
  return Decimal.fromUnits(minus === "-" ? -magnitude : magnitude, fraction.length);
}

/**
 * Formats an exact value as a wire decimal string, keeping its scale: "1.10" stays "1.10", a
 * bigint 100n gives "100", "-0.00" gives "0.00" (no "-0" on the wire). Throws
 * `InexactValueError` if the value needs more digits than the wire allows (round it yourself
 * first, with the rounding your business rule demands), and `TypeError` for a number.
 */
export function formatDecimal(value: Decimal | bigint): string {
  let decimal: Decimal;
  if (value instanceof Decimal) {
    decimal = value;
  } else if (typeof value === "bigint") {
    decimal = Decimal.of(value);
  } else {
    throw new TypeError(
      `expected a Decimal or a bigint, got ${typeof value} (numbers are never exact)`,
    );
  }
  const text = decimal.toString();
  if (!WIRE_DECIMAL.test(text)) {
    throw new InexactValueError(
      `${text} needs more than ${MAX_INTEGER_DIGITS} integer or ${MAX_FRACTION_DIGITS} ` +
        "fraction digits",
    );
  }
  return text;
}

/** The exact value of a fixed-point integer; `fromUnits(108512n, 5)` is 1.08512. */
export function fromUnits(units: bigint, scale: number): Decimal {
  return Decimal.fromUnits(units, scale);
}

/** The fixed-point integer of a value at a scale, which must be whole: ("1.0851", 5) → 108510n. */
export function toUnits(value: Decimal | string, scale: number): bigint {
  return toDecimal(value).toUnits(scale);
}

/** Compares two decimal strings (or Decimals) by value: -1, 0 or 1. */
export function compareDecimals(a: Decimal | string, b: Decimal | string): -1 | 0 | 1 {
  return toDecimal(a).compare(b);
}

/** The exact sum of two decimal strings, as a wire string ("1.10" + "0.005" = "1.105"). */
export function addDecimals(a: Decimal | string, b: Decimal | string): string {
  return formatDecimal(toDecimal(a).plus(b));
}

/** The exact difference of two decimal strings, as a wire string (e.g. ask − bid = spread). */
export function subtractDecimals(a: Decimal | string, b: Decimal | string): string {
  return formatDecimal(toDecimal(a).minus(b));
}

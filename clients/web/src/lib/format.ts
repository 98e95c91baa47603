/**
 * Display helpers. Prices, quantities and money stay exact: they come as decimal strings or as
 * integer units with a scale, and are formatted with the SDK's Decimal, never through a
 * JavaScript number (see README, "The money rule").
 */

import { Decimal, fromUnits, parseDecimal, toUnits } from "@tradingmesh/sdk";

export const DASH = "—";

/** A quote tick's price (integer units at a scale) as text: (108512n, 5) → "1.08512". */
export function priceText(units: bigint, scale: number): string {
  return fromUnits(units, scale).toString();
}

/** The spread of a tick, ask − bid, exact: (108512n, 108527n, 5) → "0.00015". */
export function spreadText(bidUnits: bigint, askUnits: bigint, scale: number): string {
  return fromUnits(askUnits - bidUnits, scale).toString();
}

export type Direction = "up" | "down" | "flat";

/** The direction of a price change (by units at the same scale). */
export function direction(previous: bigint | undefined, next: bigint): Direction {
  if (previous === undefined || previous === next) return "flat";
  return next > previous ? "up" : "down";
}

export function arrow(d: Direction): string {
  return d === "up" ? "▲" : d === "down" ? "▼" : "";
}

/** A decimal string for display: "" and undefined become a dash; the text is kept exact. */
export function decimalText(value: string | undefined): string {
  return value === undefined || value === "" ? DASH : value;
}

/**
 * Money with a thousands separator and at least `minScale` fraction digits, exact:
 * ("12345.6", 2) → "12,345.60", ("-0.5", 2) → "-0.50".
 */
export function moneyText(value: string | undefined, minScale = 2): string {
  if (value === undefined || value === "") return DASH;
  let d = parseDecimal(value);
  if (d.scale < minScale) d = d.withScale(minScale);
  const text = d.toString();
  const negative = text.startsWith("-");
  const body = negative ? text.slice(1) : text;
  const [whole = "0", fraction] = body.split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${negative ? "-" : ""}${grouped}${fraction === undefined ? "" : `.${fraction}`}`;
}

/** The sign of a decimal string, for a P&L class: "pos", "neg" or "" (zero or empty). */
export function signClass(value: string | undefined): "pos" | "neg" | "" {
  if (value === undefined || value === "") return "";
  const sign = parseDecimal(value).sign();
  return sign > 0 ? "pos" : sign < 0 ? "neg" : "";
}

/**
 * A price string as integer units at the instrument's digits (for the chart, whose numbers are
 * then exact integers): ("1.0851", 5) → 108510. Throws if the price has more digits or the
 * units would not be exact in a double.
 */
export function chartUnits(price: string | Decimal, digits: number): number {
  const units = toUnits(price, digits);
  if (units > BigInt(Number.MAX_SAFE_INTEGER) || units < -BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RangeError(`price ${String(price)} at ${digits} digits is too large for the chart`);
  }
  return Number(units);
}

/**
 * The chart's price formatter: the chart's value is units (an integer for every price we feed
 * it; axis labels may fall between, those are rounded to the nearest unit) printed as the
 * decimal string at the instrument's digits.
 */
export function chartPriceText(value: number, digits: number): string {
  if (!Number.isFinite(value)) return "";
  return Decimal.fromUnits(BigInt(Math.round(value)), digits).toString();
}

/** A quantity for the ticket: trims spaces; "" stays "" (the server's validation says why). */
export function cleanDecimalInput(text: string): string {
  return text.trim();
}

/** A timestamp (seconds + nanos) as local "YYYY-MM-DD HH:MM:SS". */
export function timeText(ts: { seconds: bigint; nanos: number } | undefined): string {
  if (ts === undefined) return DASH;
  const date = new Date(Number(ts.seconds) * 1000);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(
    date.getHours(),
  )}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}
